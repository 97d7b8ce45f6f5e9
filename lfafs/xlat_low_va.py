"""The RMM's low VA: the dynamic VA pool as TF-RMM's xlat_low_va builds it.

Layer 1, beside :mod:`lfafs.xlat` as TF-RMM's lib/xlat_low_va sits beside
lib/xlat.  As lib/xlat_low_va/src/xlat_low_va.c, xlat_low_va_dyn_setup():
the pool is a partial-table context at a 512 GB-aligned base with base
level 1.  Its regions are one TRANSIENT range and, at the top of the pool,
an RW mapping of the pool's own table array, so that the tables can be
walked with the MMU on through the PA<->VA delta.  The table array is one
contiguous block of (estimate + 1) tables: the estimate counts L2 and L3
tables, the +1 is the L1 table.
"""

from __future__ import annotations

import attrs

from lfafs.xlat import PAGE, Attr, Context, Memory, Region, block_size, estimate_tables

GB = block_size(1)
L0_SPAN = block_size(0)
POOL_CTX_VA_SIZE = L0_SPAN  # 512 GB: base level 1


def pool_base(static_regions_end: int) -> int:
    """round_up(max(1 GB, highest static end), 512 GB) (TF-RMM find_va_pool_base(), fcaa35b0)."""
    top = max(GB, static_regions_end)
    return (top + L0_SPAN - 1) // L0_SPAN * L0_SPAN


@attrs.frozen
class PoolLayout:
    """Where the pool and its tables go; computed before any memory is reserved."""

    base: int
    size: int
    tables: int  # 513 * G + 1 for a pool of G gigabytes

    @property
    def tables_bytes(self) -> int:
        return self.tables * PAGE

    @property
    def tables_va(self) -> int:
        return self.base + self.size - self.tables_bytes

    def regions(self, tables_pa: int) -> list[Region]:
        return [
            Region.transient(self.base, self.size - self.tables_bytes),
            Region(va=self.tables_va, pa=tables_pa, size=self.tables_bytes,
                   attr=Attr.RW_DATA | Attr.REALM, granularity=PAGE),
        ]

    def alloc_bytes(self, tables_pa: int) -> int:
        """Bytes of the VA bitmap and its summary tree."""
        return Context.requirements(self.regions(tables_pa), va_size=POOL_CTX_VA_SIZE,
                                    partial_base=self.base).alloc_bytes


def pool_layout(base: int, size: int) -> PoolLayout:
    if size <= 0 or size % GB or size >= L0_SPAN:
        raise ValueError(f"RMM_VA_POOL_SIZE must be a multiple of 1 GB below 512 GB, got {size:#x}")
    if base % L0_SPAN:
        raise ValueError(f"the pool base must be 512 GB aligned, got {base:#x}")
    return PoolLayout(base=base, size=size, tables=estimate_tables([Region.transient(base, size)]) + 1)


def build_pool(memory: Memory, layout: PoolLayout, tables_pa: int, alloc_pa: int) -> Context:
    """Build the dynamic context with its tables remapped inside the pool (MMU off)."""
    return Context(memory, layout.regions(tables_pa), va_size=POOL_CTX_VA_SIZE,
                   partial_base=layout.base, tables_pa=tables_pa, ntables=layout.tables,
                   tables_va=layout.tables_va, alloc_pa=alloc_pa)
