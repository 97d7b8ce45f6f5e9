"""The RMM's 1 GB dynamic VA pool, for the native tests."""

from __future__ import annotations

from lfafs.xlat import Context, Memory
from lfafs.xlat_low_va import GB, pool_layout
from lfafs.xlat_low_va import build_pool as _build

POOL_BASE = 1 << 39
__all__ = ["GB", "POOL_BASE", "build_pool"]


def build_pool(memory: Memory, tables_pa: int, alloc_pa: int, *, pool_size: int = GB) -> Context:
    return _build(memory, pool_layout(POOL_BASE, pool_size), tables_pa, alloc_pa)
