"""Software walks of a context: what the CPU would reach for a VA."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import attrs

from ._descriptors import Attr, desc_attr
from ._native import U64_MAX, XlatError, call, ffi, lib, u64

if TYPE_CHECKING:
    from ._memory import Memory


@attrs.frozen
class Walk:
    """Result of a software walk: the entry where it stopped."""

    va: int
    level: int
    descriptor: int
    pa: int | None  # None when the entry is not a valid block or page

    @property
    def attr(self) -> Attr | None:
        return None if self.pa is None else desc_attr(self.descriptor)


@attrs.frozen
class Llt:
    """The last-level table a walk reached (TF-RMM struct xlat_llt_info)."""

    table_pa: int
    base_va: int
    level: int
    entries: int

    def tte_pa(self, va: int) -> int | None:
        """PA of the entry for ``va``, or None below the table or past its end (xlat_get_tte_ptr)."""
        llt = ffi.new("struct xlat_llt *", (self.table_pa, self.base_va, self.level, self.entries))
        out = ffi.new("uint64_t *")
        try:
            return call("tte_pa", lib.xlat_get_tte_pa, llt, u64("va", va), out, out=out)
        except XlatError as e:
            if e.errno == errno.EFAULT:
                return None
            raise


class Walkers:
    """The walker half of :class:`~lfafs.xlat.Context` (native/xlat_walk.h)."""

    memory: Memory
    _ctx: Any

    def descriptor(self, va: int, level: int = 3) -> int:
        """The raw entry for ``va`` at ``level`` (default: the L3 entry).

        Raises XlatError(ENOENT) when the walk stops above ``level``.
        """
        d = ffi.new("uint64_t *")
        lvl = ffi.new("int32_t *")
        return call("descriptor", lib.xlat_read_desc, self.memory._env, self._ctx, u64("va", va), level, d, lvl,
                    lock=self.memory.lock, detail=f"va={va:#x} level={level}", out=d)

    def _l3_range(self, va: int, pages: int):
        out = ffi.new("uint64_t[]", max(u64("pages", pages), 1))
        call("descriptors", lib.xlat_read_l3_range, self.memory._env, self._ctx, u64("va", va), pages, out,
             lock=self.memory.lock, detail=f"va={va:#x} pages={pages}")
        return out

    def descriptors(self, va: int, pages: int) -> list[int]:
        """The raw L3 entries of ``pages`` consecutive pages from ``va``."""
        return [int(x) for x in ffi.unpack(self._l3_range(va, pages), pages)]

    def descriptors_bytes(self, va: int, pages: int) -> bytes:
        """As :meth:`descriptors`, as little-endian bytes (for fast comparison)."""
        return bytes(ffi.buffer(self._l3_range(va, pages), 8 * pages))

    def walk(self, va: int) -> Walk:
        """VA -> (PA, attributes, level), through the PA<->VA delta when remapped and the MMU is on."""
        pa = ffi.new("uint64_t *")
        d = ffi.new("uint64_t *")
        lvl = ffi.new("int32_t *")
        call("walk", lib.xlat_walk, self.memory._env, self._ctx, u64("va", va), pa, d, lvl,
             lock=self.memory.lock, detail=f"va={va:#x}")
        return Walk(va=va, level=int(lvl[0]), descriptor=int(d[0]), pa=None if pa[0] == U64_MAX else int(pa[0]))

    def llt(self, va: int) -> Llt:
        """The last-level table for ``va``, also for unmapped VAs (xlat_get_llt_from_va)."""
        out = ffi.new("struct xlat_llt *")
        call("llt", lib.xlat_get_llt_from_va, self.memory._env, self._ctx, u64("va", va), out,
             lock=self.memory.lock, detail=f"va={va:#x}")
        return Llt(table_pa=int(out.table_pa), base_va=int(out.base_va), level=int(out.level),
                   entries=int(out.entries))

    def contig_pa(self, va: int, top_va: int) -> tuple[int, int | None]:
        """(bytes, first PA) of valid L3 pages from ``va`` mapping consecutive PAs, up to ``top_va``."""
        pa = ffi.new("uint64_t *", U64_MAX)
        n = ffi.new("uint64_t *")
        call("contig_pa", lib.xlat_get_contig_pa_level3, self.memory._env, self._ctx, u64("va", va),
             u64("top_va", top_va), pa, n, lock=self.memory.lock, detail=f"va={va:#x} top_va={top_va:#x}")
        return int(n[0]), (int(pa[0]) if n[0] else None)
