"""Regions, and a translation context built from them once (native/xlat_core.h)."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import attrs

from ._allocator import AllocatorQueries
from ._descriptors import PAGE, Attr, block_size
from ._l3 import RuntimeL3
from ._memory import Memory
from ._native import XlatError, call, ffi, lib, u64
from ._walk import Walkers


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
    granularity: int = attrs.field(default=block_size(1))

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
        raise XlatError(errno.EINVAL, "regions", "at least one region is needed")
    arr = ffi.new("struct xlat_region[]", len(regions))
    for i, r in enumerate(regions):
        if not isinstance(r, Region):
            raise XlatError(errno.EINVAL, "regions", f"element {i} is not a Region: {r!r}")
        arr[i].base_pa = u64("region.pa", r.pa)
        arr[i].base_va = u64("region.va", r.va)
        arr[i].size = u64("region.size", r.size)
        arr[i].attr = u64("region.attr", r.attr)
        arr[i].granularity = u64("region.granularity", r.granularity)
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
class Requirements:
    """What a context needs before it can be built."""

    tables: int  # 4 KB tables, the base table included
    alloc_bytes: int  # bitmap and summary tree of the VA allocator (0: no dynamic range)


class Context(RuntimeL3, AllocatorQueries, Walkers):
    """A translation context: its tables, and for TRANSIENT ranges the VA allocator.

    Mirrors TF-RMM's ``struct xlat_ctx``: configured from a region list,
    built once into ``ntables`` tables at ``tables_pa`` (no table is ever
    allocated afterwards), optionally with its tables remapped at
    ``tables_va`` so that walks with the MMU on use the PA<->VA delta.
    The runtime L3 API, the allocator's queries and the walkers come from
    the classes named after them.
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
            raise XlatError(errno.EINVAL, "Context", "memory must be an lfafs.xlat.Memory")
        self.memory = memory
        self._ctx = self._configure(regions, va_size, partial_base, lpa2)
        req = self._requirements(self._ctx)
        ntables = req.tables if ntables is None else u64("ntables", ntables)
        if req.alloc_bytes and alloc_pa is None:
            raise XlatError(
                errno.EINVAL, "Context",
                f"TRANSIENT regions need alloc_pa: {req.alloc_bytes} bytes for the VA bitmap",
            )
        alloc_pa = 0 if alloc_pa is None else u64("alloc_pa", alloc_pa)
        detail = f"{req.tables} tables needed, {ntables} given"
        if tables_va is None:
            call("Context", lib.xlat_ctx_init, memory._env, self._ctx, u64("tables_pa", tables_pa), ntables,
                 alloc_pa, lock=memory.lock, detail=detail)
        else:
            call("Context", lib.xlat_ctx_init_remapped, memory._env, self._ctx, u64("tables_pa", tables_pa),
                 ntables, u64("tables_va", tables_va), alloc_pa, lock=memory.lock, detail=detail)
        self._out = ffi.new("uint64_t[2]")

    # -- construction -------------------------------------------------------

    @staticmethod
    def _configure(regions: Sequence[Region], va_size: int, partial_base: int, lpa2: bool):
        arr, n = _region_array(regions)
        ctx = ffi.new("struct xlat_ctx *")
        call("configure", lib.xlat_ctx_cfg_init, ctx, arr, n, u64("partial_base", partial_base),
             u64("va_size", va_size), lib.XLAT_F_LPA2 if lpa2 else 0)
        return ctx

    @staticmethod
    def _requirements(ctx) -> Requirements:
        out = ffi.new("uint64_t[2]")
        call("requirements", lib.xlat_ctx_requirements, ctx, out, out + 1)
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
        call("load", lib.xlat_ctx_load, memory._env, self._ctx, u64("pa", pa),
             lock=memory.lock, detail=f"no valid context at {pa:#x}")
        return self

    def save(self, pa: int) -> None:
        """Write the context as plain bytes (``context_bytes()`` of them) at ``pa``."""
        call("save", lib.xlat_ctx_save, self.memory._env, self._ctx, u64("pa", pa), lock=self.memory.lock)

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
    remapped = property(lambda self: bool(self._ctx.flags & lib.XLAT_F_REMAPPED))
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

    # -- build-time operations --------------------------------------------------

    def stitch_l1(self, child: Context, va: int, size: int) -> int:
        """Copy ``child``'s L1 entries for [va, va + size) into this context's L1 table.

        Returns how many L1 entries were stitched.  Like TF-RMM this returns
        0 without stitching when this context's walk for ``va`` ends at a
        level other than 1.
        """
        if not isinstance(child, Context) or child.memory is not self.memory:
            raise XlatError(errno.EINVAL, "stitch_l1", "child must be a Context on the same Memory")
        out = ffi.new("uint32_t *")
        return call("stitch_l1", lib.xlat_stitch_tables_l1, self.memory._env, self._ctx, child._ctx,
                    u64("va", va), u64("size", size), out,
                    lock=self.memory.lock, detail=f"va={va:#x} size={size:#x}", out=out)
