"""The RMM's dynamic VA pool, built the way TF-RMM's xlat_low_va_dyn_setup does
(spec rmm-lfa 1.10): a partial context at the 512 GB-aligned pool base, a
TRANSIENT region, and the table array mapped at the top of the pool."""

from __future__ import annotations

from lfafs.xlat import PAGE, Attr, Context, Memory, Region, estimate_tables

GB = 1 << 30
POOL_BASE = 1 << 39


def build_pool(memory: Memory, tables_pa: int, alloc_pa: int, *, pool_size: int = GB) -> Context:
    ntables = estimate_tables([Region.transient(POOL_BASE, pool_size)]) + 1  # + the L1 table
    t = ntables * PAGE
    tables_va = POOL_BASE + pool_size - t
    regions = [
        Region.transient(POOL_BASE, pool_size - t),
        Region(va=tables_va, pa=tables_pa, size=t, attr=Attr.RW_DATA | Attr.REALM, granularity=PAGE),
    ]
    return Context(memory, regions, va_size=1 << 39, partial_base=POOL_BASE, tables_pa=tables_pa,
                   ntables=ntables, tables_va=tables_va, alloc_pa=alloc_pa)
