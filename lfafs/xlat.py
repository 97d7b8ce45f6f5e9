"""Stage-1 translation tables and the bitmap VA allocator, over emulated DRAM.

The Pythonic face of the native core in ``native/``.  It turns C return
codes into :class:`XlatError` once, so no caller checks raw integers, and it
never hands the C core an address it did not bounds-check itself: every
physical address is checked again in C against the :class:`Memory` buffer.

Typical use, the RMM's dynamic VA pool in miniature::

    mem = Memory(16 << 20, base_pa=0x8000_0000)
    regions = [Region.transient(va=0, size=64 * PAGE)]
    req = Context.requirements(regions, va_size=1 << 30)
    ctx = Context(mem, regions, va_size=1 << 30,
                  tables_pa=mem.base_pa, alloc_pa=mem.base_pa + req.tables * PAGE)
    mem.mmu_on = True
    va = ctx.map(0x9000_0000, PAGE, Attr.RW_DATA | Attr.REALM)
"""

from __future__ import annotations

import array
import enum
import errno as _errno
import mmap
import os
import threading
from collections.abc import Iterable, Sequence

import attrs

from lfafs._xlat_native import ffi, lib

__all__ = [
    "PAGE",
    "Attr",
    "Context",
    "Llt",
    "Memory",
    "Region",
    "Requirements",
    "TlbiLog",
    "Walk",
    "XlatBatchError",
    "XlatError",
    "block_size",
    "desc",
    "desc_attr",
    "estimate_tables",
]

PAGE = 4096
TRANSIENT_DESC = 1 << 55
VA_ALLOCATED = 1 << 56
RESERVED_DESC = TRANSIENT_DESC | VA_ALLOCATED
_U64 = (1 << 64) - 1
_POLICIES = {"bitmap": lib.XLAT_POLICY_BITMAP, "scan": lib.XLAT_POLICY_SCAN}


def block_size(level: int) -> int:
    """Bytes mapped by one entry of a table at ``level`` (4 KB granule)."""
    return 1 << (12 + 9 * (3 - level))


class XlatError(OSError):
    """A native-core call failed; ``errno`` is the C return code, negated."""

    def __init__(self, err: int, op: str, detail: str = "") -> None:
        msg = f"{op}: {os.strerror(err)}"
        if detail:
            msg += f" ({detail})"
        super().__init__(err, msg)
        self.op = op

    def __str__(self) -> str:
        return self.strerror or ""


class XlatBatchError(XlatError):
    """A batch stopped at element ``len(done)``; ``done`` holds what succeeded."""

    def __init__(self, err: int, op: str, done: list[int]) -> None:
        super().__init__(err, op, f"element {len(done)} failed, {len(done)} done")
        self.done = done


def _check(rc: int, op: str, detail: str = "") -> None:
    if rc != 0:
        raise XlatError(-rc, op, detail)


def _u64(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
        raise XlatError(_errno.EINVAL, name, f"expected an integer in [0, 2**64), got {value!r}")
    return value


class Attr(enum.IntFlag, boundary=enum.KEEP):
    """TF-RMM's MT_* attribute word (lib/xlat/include/xlat_tables.h), bit for bit.

    TYPE is bits [3:0] (DEVICE 0, MEMORY 2, TRANSIENT 3); the zero-valued
    members (DEVICE, RO, REALM, EXECUTE) exist so that combinations read as
    they do in TF-RMM: ``Attr.RW_DATA | Attr.REALM``.
    """

    DEVICE = 0
    RO = 0
    REALM = 0
    EXECUTE = 0
    MEMORY = 2
    TRANSIENT = 3
    RW = 1 << 4
    EXECUTE_NEVER = 1 << 5
    CONT = 1 << 6
    NG = 1 << 7
    NS = 1 << 8
    AP_UNPRIV = 1 << 9
    EXEC_UNPRIV = 1 << 10
    AP_AMEC = 1 << 11
    CODE = MEMORY
    RO_DATA = MEMORY | EXECUTE_NEVER
    RW_DATA = MEMORY | RW | EXECUTE_NEVER
    RW_DEV = RW | EXECUTE_NEVER


def desc(attr: int, pa: int, level: int = 3, *, lpa2: bool = False) -> int:
    """The block or page descriptor TF-RMM's xlat_desc() writes."""
    return int(lib.xlat_desc(_u64("attr", int(attr)), _u64("pa", pa), level, lpa2))


def desc_attr(descriptor: int) -> Attr:
    """The MT_* attribute word a descriptor encodes."""
    return Attr(int(lib.xlat_desc_attr(_u64("descriptor", descriptor))))


@attrs.frozen
class Region:
    """One entry of a context's memory map (TF-RMM struct xlat_mmap_region).

    VAs are absolute, also in a partial-table context.  ``granularity``
    defaults to the largest block size (1 GB), as TF-RMM's MAP_REGION does.
    """

    va: int = attrs.field()
    size: int = attrs.field()
    attr: int = attrs.field(default=Attr.TRANSIENT, converter=int)
    pa: int = attrs.field(default=0)
    granularity: int = attrs.field(default=1 << 30)

    @classmethod
    def transient(cls, va: int, size: int, granularity: int = PAGE) -> Region:
        """A dynamic range: invalid TRANSIENT entries at ``granularity`` (MAP_REGION_TRANSIENT)."""
        return cls(va=va, size=size, attr=Attr.TRANSIENT, pa=0, granularity=granularity)

    @property
    def end(self) -> int:
        return self.va + self.size


def _region_array(regions: Sequence[Region]):
    regions = list(regions)
    if not regions:
        raise XlatError(_errno.EINVAL, "regions", "at least one region is needed")
    arr = ffi.new("struct xlat_region[]", len(regions))
    for i, r in enumerate(regions):
        if not isinstance(r, Region):
            raise XlatError(_errno.EINVAL, "regions", f"element {i} is not a Region: {r!r}")
        arr[i].base_pa = _u64("region.pa", r.pa)
        arr[i].base_va = _u64("region.va", r.va)
        arr[i].size = _u64("region.size", r.size)
        arr[i].attr = _u64("region.attr", r.attr)
        arr[i].granularity = _u64("region.granularity", r.granularity)
    return arr, len(regions)


def estimate_tables(regions: Sequence[Region]) -> int:
    """L3 plus L2 tables the regions need (TF-RMM xlat_estimate_num_l3_l2_tables).

    Regions must be sorted by VA, page aligned and non-overlapping; like
    TF-RMM this is not checked.  L0 and L1 tables are not counted.
    """
    regions = list(regions)
    if not regions:
        return 0
    arr, n = _region_array(regions)
    return int(lib.xlat_estimate_num_l3_l2_tables(arr, n))


@attrs.frozen
class TlbiLog:
    """TLB maintenance issued so far: one TLBI VAE2IS per page, one DSB ISH; ISB per call."""

    pages: int
    syncs: int
    recent: tuple[tuple[int, int], ...]  # (va, pages), oldest first, at most 64


class Memory:
    """Emulated DRAM: one sparse anonymous mapping; untouched pages cost nothing.

    It also carries the state of the CPU that uses it: the MMU enable bit
    (SCTLR_EL2.M) and the log of TLB invalidations.  One lock serialises
    every native call on this memory, so no two threads ever run C on it at
    once.
    """

    def __init__(self, size: int, *, base_pa: int = 0) -> None:
        _u64("size", size)
        _u64("base_pa", base_pa)
        if size == 0 or size % PAGE or base_pa % PAGE or base_pa + size > 1 << 52:
            raise XlatError(
                _errno.EINVAL, "Memory",
                f"size {size:#x} and base_pa {base_pa:#x} must be non-zero 4 KB multiples below 2**52",
            )
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        try:
            self._map = mmap.mmap(-1, size, flags=flags)
        except OSError as e:
            raise XlatError(e.errno or _errno.ENOMEM, "Memory",
                            f"the host refused a sparse mapping of {size:#x} bytes; use a smaller DRAM size") from e
        self._buf = ffi.from_buffer(self._map)
        self._env = ffi.new("struct xlat_env *")
        _check(lib.xlat_env_init(self._env, self._buf, base_pa, size), "Memory")
        self.lock = threading.RLock()
        self.base_pa = base_pa
        self.size = size

    @property
    def end_pa(self) -> int:
        return self.base_pa + self.size

    def _offset(self, pa: int, n: int, op: str) -> int:
        _u64("pa", pa)
        _u64("length", n)
        if pa < self.base_pa or pa + n > self.end_pa:
            raise XlatError(
                _errno.EFAULT, op,
                f"[{pa:#x}, {pa + n:#x}) is outside memory [{self.base_pa:#x}, {self.end_pa:#x})",
            )
        return pa - self.base_pa

    def read(self, pa: int, n: int) -> bytes:
        off = self._offset(pa, n, "read")
        with self.lock:
            return self._map[off:off + n]

    def write(self, pa: int, data: bytes) -> None:
        off = self._offset(pa, len(data), "write")
        with self.lock:
            self._map[off:off + len(data)] = data

    def read64(self, pa: int) -> int:
        return int.from_bytes(self.read(pa, 8), "little")

    def write64(self, pa: int, value: int) -> None:
        self.write(pa, _u64("value", value).to_bytes(8, "little"))

    def zero(self, pa: int, n: int) -> None:
        off = self._offset(pa, n, "zero")
        chunk = bytes(min(n, 1 << 20))
        with self.lock:
            for start in range(off, off + n, len(chunk) or 1):
                end = min(start + len(chunk), off + n)
                self._map[start:end] = chunk[: end - start]

    @property
    def mmu_on(self) -> bool:
        """SCTLR_EL2.M of the emulated CPU: the runtime L3 API needs it set, stitching clear."""
        return bool(self._env.mmu_on)

    @mmu_on.setter
    def mmu_on(self, value: bool) -> None:
        with self.lock:
            self._env.mmu_on = 1 if value else 0

    @property
    def tlbi(self) -> TlbiLog:
        with self.lock:
            log = self._env.tlbi
            count, head = log.count, log.head
            ring = lib.XLAT_TLBI_RING
            recent = tuple(
                (int(log.ring[(head - count + i) % ring].va), int(log.ring[(head - count + i) % ring].pages))
                for i in range(count)
            )
            return TlbiLog(pages=int(log.pages), syncs=int(log.syncs), recent=recent)

    def clear_tlbi(self) -> None:
        with self.lock:
            lib.xlat_tlbi_clear(self._env)


@attrs.frozen
class Requirements:
    """What a context needs before it can be built."""

    tables: int  # 4 KB tables, the base table included
    alloc_bytes: int  # bitmap and summary tree of the VA allocator (0: no dynamic range)


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
        rc = lib.xlat_get_tte_pa(llt, _u64("va", va), out)
        if rc == -_errno.EFAULT:
            return None
        _check(rc, "tte_pa")
        return int(out[0])


_CHECK_WHAT = {
    1: "table address outside memory",
    2: "dynamic entry in no valid state",
    3: "bitmap disagrees with descriptor bit 56",
    4: "summary tree disagrees with the bitmap",
    5: "table descriptor bit 56 disagrees with its child table",
    6: "context fields out of range",
}


class Context:
    """A translation context: its tables, and for TRANSIENT ranges the VA allocator.

    Mirrors TF-RMM's ``struct xlat_ctx``: configured from a region list,
    built once into ``ntables`` tables at ``tables_pa`` (no table is ever
    allocated afterwards), optionally with its tables remapped at
    ``tables_va`` so that walks with the MMU on use the PA<->VA delta.
    """

    def __init__(
        self,
        memory: Memory,
        regions: Sequence[Region],
        *,
        va_size: int,
        tables_pa: int,
        ntables: int | None = None,
        alloc_pa: int | None = None,
        partial_base: int = 0,
        tables_va: int | None = None,
        lpa2: bool = False,
    ) -> None:
        if not isinstance(memory, Memory):
            raise XlatError(_errno.EINVAL, "Context", "memory must be an lfafs.xlat.Memory")
        self.memory = memory
        self._ctx = self._configure(regions, va_size, partial_base, lpa2)
        req = self._requirements(self._ctx)
        ntables = req.tables if ntables is None else _u64("ntables", ntables)
        if req.alloc_bytes and alloc_pa is None:
            raise XlatError(
                _errno.EINVAL, "Context",
                f"TRANSIENT regions need alloc_pa: {req.alloc_bytes} bytes for the VA bitmap",
            )
        alloc_pa = 0 if alloc_pa is None else _u64("alloc_pa", alloc_pa)
        with memory.lock:
            if tables_va is None:
                rc = lib.xlat_ctx_init(memory._env, self._ctx, _u64("tables_pa", tables_pa), ntables, alloc_pa)
            else:
                rc = lib.xlat_ctx_init_remapped(
                    memory._env, self._ctx, _u64("tables_pa", tables_pa), ntables,
                    _u64("tables_va", tables_va), alloc_pa,
                )
        _check(rc, "Context", f"{req.tables} tables needed, {ntables} given")
        self._out = ffi.new("uint64_t[2]")

    # -- construction -------------------------------------------------------

    @staticmethod
    def _configure(regions: Sequence[Region], va_size: int, partial_base: int, lpa2: bool):
        arr, n = _region_array(regions)
        ctx = ffi.new("struct xlat_ctx *")
        rc = lib.xlat_ctx_cfg_init(
            ctx, arr, n, _u64("partial_base", partial_base), _u64("va_size", va_size),
            lib.XLAT_F_LPA2 if lpa2 else 0,
        )
        _check(rc, "configure")
        return ctx

    @staticmethod
    def _requirements(ctx) -> Requirements:
        out = ffi.new("uint64_t[2]")
        _check(lib.xlat_ctx_requirements(ctx, out, out + 1), "requirements")
        return Requirements(tables=int(out[0]), alloc_bytes=int(out[1]))

    @classmethod
    def requirements(
        cls, regions: Sequence[Region], *, va_size: int, partial_base: int = 0, lpa2: bool = False
    ) -> Requirements:
        """Exact table count and allocator bytes a context of these regions needs."""
        return cls._requirements(cls._configure(regions, va_size, partial_base, lpa2))

    @classmethod
    def load(cls, memory: Memory, pa: int) -> Context:
        """Rebuild a context from the plain bytes :meth:`save` wrote at ``pa``.

        This is how a newly activated RMM image recovers the dynamic context
        from glob_data: nothing but emulated memory crosses over.
        """
        self = cls.__new__(cls)
        self.memory = memory
        self._ctx = ffi.new("struct xlat_ctx *")
        self._out = ffi.new("uint64_t[2]")
        with memory.lock:
            rc = lib.xlat_ctx_load(memory._env, self._ctx, _u64("pa", pa))
        _check(rc, "load", f"no valid context at {pa:#x}")
        return self

    def save(self, pa: int) -> None:
        """Write the context as plain bytes (``context_bytes()`` of them) at ``pa``."""
        with self.memory.lock:
            _check(lib.xlat_ctx_save(self.memory._env, self._ctx, _u64("pa", pa)), "save")

    @staticmethod
    def context_bytes() -> int:
        return int(lib.xlat_ctx_bytes())

    # -- geometry -------------------------------------------------------------

    base_va = property(lambda self: int(self._ctx.base_va))
    va_size = property(lambda self: int(self._ctx.va_size))
    base_level = property(lambda self: int(self._ctx.base_level))
    tables_pa = property(lambda self: int(self._ctx.tables_pa))
    tables_num = property(lambda self: int(self._ctx.tables_num))
    tables_used = property(lambda self: int(self._ctx.next_table))
    tables_va = property(lambda self: int(self._ctx.tbls_va) if self.remapped else None)
    tables_va_to_pa_diff = property(lambda self: int(self._ctx.tbls_va_to_pa_diff))
    remapped = property(lambda self: bool(self._ctx.flags & (1 << 10)))
    lpa2 = property(lambda self: bool(self._ctx.flags & lib.XLAT_F_LPA2))
    max_mapped_pa = property(lambda self: int(self._ctx.max_mapped_pa))
    alloc_pa = property(lambda self: int(self._ctx.alloc_pa))
    alloc_bytes = property(lambda self: int(self._ctx.alloc_bytes))
    alloc_va = property(lambda self: int(self._ctx.alloc_va))
    alloc_pages = property(lambda self: int(self._ctx.alloc_pages))

    @property
    def regions(self) -> tuple[Region, ...]:
        """The memory map, VAs absolute (TF-RMM keeps them relative to a partial base)."""
        out = []
        for i in range(self._ctx.nregions):
            r = self._ctx.regions[i]
            out.append(Region(va=int(r.base_va) + self.base_va, size=int(r.size), attr=int(r.attr),
                              pa=int(r.base_pa), granularity=int(r.granularity)))
        return tuple(out)

    @property
    def free_pages(self) -> int:
        return self._stats()[0]

    @property
    def longest_free_run(self) -> int:
        return self._stats()[1]

    def _stats(self) -> tuple[int, int]:
        with self.memory.lock:
            _check(lib.xlat_alloc_stats(self.memory._env, self._ctx, self._out, self._out + 1), "stats")
            return int(self._out[0]), int(self._out[1])

    # -- runtime L3 API -------------------------------------------------------

    def _call(self, fn, op: str, *args) -> int:
        """Run one native call under the memory lock; bad Python values become EINVAL."""
        try:
            with self.memory.lock:
                return fn(self.memory._env, self._ctx, *args)
        except (OverflowError, TypeError) as e:
            raise XlatError(_errno.EINVAL, op, f"arguments must be integers in [0, 2**64): {e}") from None

    @staticmethod
    def _fail(rc: int, op: str, **args: int) -> None:
        if rc:
            raise XlatError(-rc, op, " ".join(f"{k}={v:#x}" for k, v in args.items()))

    def map(self, pa: int, size: int, attr: int) -> int:
        """Map ``size`` bytes at ``pa`` at a VA the allocator picks (lowest first fit)."""
        # The hot path: no per-call allocation, errors formatted only on failure.
        mem = self.memory
        try:
            with mem.lock:
                rc = lib.xlat_map_l3_region(mem._env, self._ctx, pa, size, attr, self._out)
                va = self._out[0]
        except (OverflowError, TypeError) as e:
            raise XlatError(_errno.EINVAL, "map", f"arguments must be integers in [0, 2**64): {e}") from None
        if rc:
            self._fail(rc, "map", pa=pa, size=size)
        return va

    def unmap(self, va: int, size: int) -> None:
        rc = self._call(lib.xlat_unmap_l3_region, "unmap", va, size)
        if rc:
            self._fail(rc, "unmap", va=va, size=size)

    def reserve(self, size: int) -> int:
        out = ffi.new("uint64_t *")
        self._fail(self._call(lib.xlat_reserve_va_l3_region, "reserve", size, out), "reserve", size=size)
        return int(out[0])

    def populate(self, va: int, pa: int, size: int, attr: int) -> None:
        rc = self._call(lib.xlat_populate_va_l3_region, "populate", va, pa, size, int(attr))
        self._fail(rc, "populate", va=va, pa=pa, size=size)

    def commit(self, va: int, size: int) -> None:
        self._fail(self._call(lib.xlat_commit_va_l3_region, "commit", va, size), "commit", va=va, size=size)

    def decommit(self, va: int, size: int) -> None:
        rc = self._call(lib.xlat_decommit_va_l3_region, "decommit", va, size)
        self._fail(rc, "decommit", va=va, size=size)

    def depopulate(self, va: int, size: int) -> None:
        rc = self._call(lib.xlat_depopulate_va_l3_region, "depopulate", va, size)
        self._fail(rc, "depopulate", va=va, size=size)

    def unreserve(self, va: int, size: int) -> None:
        rc = self._call(lib.xlat_unreserve_va_l3_region, "unreserve", va, size)
        self._fail(rc, "unreserve", va=va, size=size)

    def map_batch(self, pas: Iterable[int], size: int, attr: int, *, policy: str = "bitmap") -> array.array:
        """Map one ``size``-byte range per PA in one native call; returns the VAs (``array('Q')``).

        The batch stops at the first failing element, which changes nothing;
        :class:`XlatBatchError` then carries the VAs of the elements done.
        ``policy="scan"`` picks VAs with TF-RMM's descriptor scan instead of
        the bitmap (same answers, for comparison).
        """
        if policy not in _POLICIES:
            raise XlatError(_errno.EINVAL, "map_batch", f"policy must be one of {sorted(_POLICIES)}")
        if isinstance(pas, array.array) and pas.typecode == "Q":
            n = len(pas)  # already unsigned 64-bit: no per-element check needed
            cpas = ffi.from_buffer("uint64_t[]", pas) if n else ffi.new("uint64_t[1]")
        else:
            pas = [_u64("pa", p) for p in pas]
            n = len(pas)
            cpas = ffi.new("uint64_t[]", pas) if n else ffi.new("uint64_t[1]")
        vas = ffi.new("uint64_t[]", max(n, 1))
        with self.memory.lock:
            rc = lib.xlat_map_l3_batch(self.memory._env, self._ctx, cpas, n, _u64("size", size),
                                       _u64("attr", int(attr)), _POLICIES[policy], vas, self._out)
            done = int(self._out[0])
        result = array.array("Q")
        result.frombytes(ffi.buffer(vas, 8 * done))
        if rc != 0:
            raise XlatBatchError(-rc, "map_batch", list(result))
        return result

    def unmap_batch(self, vas: Iterable[int], size: int) -> None:
        """Unmap ``size`` bytes at each VA in one native call; stops at the first failure."""
        if isinstance(vas, array.array) and vas.typecode == "Q":
            n = len(vas)
            cvas = ffi.from_buffer("uint64_t[]", vas) if n else ffi.new("uint64_t[1]")
        else:
            vas = [_u64("va", v) for v in vas]
            n = len(vas)
            cvas = ffi.new("uint64_t[]", vas) if n else ffi.new("uint64_t[1]")
        with self.memory.lock:
            rc = lib.xlat_unmap_l3_batch(self.memory._env, self._ctx, cvas, n, _u64("size", size), self._out)
            done = int(self._out[0])
        if rc != 0:
            raise XlatBatchError(-rc, "unmap_batch", [int(v) for v in vas[:done]])

    def find_va(self, size: int, *, policy: str = "bitmap") -> int:
        """The VA ``map`` would pick for ``size`` bytes now, without allocating."""
        if policy not in _POLICIES:
            raise XlatError(_errno.EINVAL, "find_va", f"policy must be one of {sorted(_POLICIES)}")
        with self.memory.lock:
            rc = lib.xlat_find_va(self.memory._env, self._ctx, _u64("size", size), _POLICIES[policy], self._out)
            _check(rc, "find_va", f"size={size:#x}")
            return int(self._out[0])

    def find_va_repeated(self, size: int, reps: int, *, policy: str = "bitmap") -> int | None:
        """Benchmark support: run the VA search ``reps`` times in one native call.

        Returns the VA found, or None when no run of ``size`` bytes is free.
        """
        if policy not in _POLICIES:
            raise XlatError(_errno.EINVAL, "find_va", f"policy must be one of {sorted(_POLICIES)}")
        with self.memory.lock:
            rc = lib.xlat_find_va_repeat(self.memory._env, self._ctx, _u64("size", size), _POLICIES[policy],
                                         _u64("reps", reps), self._out)
            if rc == -_errno.ENOMEM:
                return None
            _check(rc, "find_va", f"size={size:#x}")
            return int(self._out[0])

    # -- walkers --------------------------------------------------------------

    def descriptor(self, va: int, level: int = 3) -> int:
        """The raw entry for ``va`` at ``level`` (default: the L3 entry).

        Raises XlatError(ENOENT) when the walk stops above ``level``.
        """
        d = ffi.new("uint64_t *")
        lvl = ffi.new("int32_t *")
        with self.memory.lock:
            rc = lib.xlat_read_desc(self.memory._env, self._ctx, _u64("va", va), level, d, lvl)
        _check(rc, "descriptor", f"va={va:#x} level={level}")
        return int(d[0])

    def descriptors(self, va: int, pages: int) -> list[int]:
        """The raw L3 entries of ``pages`` consecutive pages from ``va``."""
        out = ffi.new("uint64_t[]", max(_u64("pages", pages), 1))
        with self.memory.lock:
            rc = lib.xlat_read_l3_range(self.memory._env, self._ctx, _u64("va", va), pages, out)
        _check(rc, "descriptors", f"va={va:#x} pages={pages}")
        return [int(x) for x in ffi.unpack(out, pages)]

    def descriptors_bytes(self, va: int, pages: int) -> bytes:
        """As :meth:`descriptors`, as little-endian bytes (for fast comparison)."""
        out = ffi.new("uint64_t[]", max(_u64("pages", pages), 1))
        with self.memory.lock:
            rc = lib.xlat_read_l3_range(self.memory._env, self._ctx, _u64("va", va), pages, out)
        _check(rc, "descriptors", f"va={va:#x} pages={pages}")
        return bytes(ffi.buffer(out, 8 * pages))

    def walk(self, va: int) -> Walk:
        """VA -> (PA, attributes, level), through the PA<->VA delta when remapped and the MMU is on."""
        pa = ffi.new("uint64_t *")
        d = ffi.new("uint64_t *")
        lvl = ffi.new("int32_t *")
        with self.memory.lock:
            rc = lib.xlat_walk(self.memory._env, self._ctx, _u64("va", va), pa, d, lvl)
        _check(rc, "walk", f"va={va:#x}")
        return Walk(va=va, level=int(lvl[0]), descriptor=int(d[0]), pa=None if pa[0] == _U64 else int(pa[0]))

    def llt(self, va: int) -> Llt:
        """The last-level table for ``va``, also for unmapped VAs (xlat_get_llt_from_va)."""
        out = ffi.new("struct xlat_llt *")
        with self.memory.lock:
            rc = lib.xlat_get_llt_from_va(self.memory._env, self._ctx, _u64("va", va), out)
        _check(rc, "llt", f"va={va:#x}")
        return Llt(table_pa=int(out.table_pa), base_va=int(out.base_va), level=int(out.level),
                   entries=int(out.entries))

    def contig_pa(self, va: int, top_va: int) -> tuple[int, int | None]:
        """(bytes, first PA) of valid L3 pages from ``va`` mapping consecutive PAs, up to ``top_va``."""
        pa = ffi.new("uint64_t *", _U64)
        n = ffi.new("uint64_t *")
        with self.memory.lock:
            rc = lib.xlat_get_contig_pa_level3(self.memory._env, self._ctx, _u64("va", va),
                                               _u64("top_va", top_va), pa, n)
        _check(rc, "contig_pa", f"va={va:#x} top_va={top_va:#x}")
        return int(n[0]), (int(pa[0]) if n[0] else None)

    # -- whole-context operations ---------------------------------------------

    def check(self) -> None:
        """Verify the pool: entry states, bitmap == bit 56, summary tree, parent flags."""
        rep = ffi.new("struct xlat_check_report *")
        with self.memory.lock:
            rc = lib.xlat_check(self.memory._env, self._ctx, rep)
        if rc:
            what = _CHECK_WHAT.get(int(rep.what), "inconsistent")
            raise XlatError(-rc, "check", f"{what} at va={int(rep.va):#x} level={int(rep.level)}")

    def stitch_l1(self, child: Context, va: int, size: int) -> int:
        """Copy ``child``'s L1 entries for [va, va + size) into this context's L1 table.

        Returns how many L1 entries were stitched.  Like TF-RMM this returns
        0 without stitching when this context's walk for ``va`` ends at a
        level other than 1.
        """
        if not isinstance(child, Context) or child.memory is not self.memory:
            raise XlatError(_errno.EINVAL, "stitch_l1", "child must be a Context on the same Memory")
        out = ffi.new("uint32_t *")
        with self.memory.lock:
            rc = lib.xlat_stitch_tables_l1(self.memory._env, self._ctx, child._ctx,
                                           _u64("va", va), _u64("size", size), out)
        _check(rc, "stitch_l1", f"va={va:#x} size={size:#x}")
        return int(out[0])
