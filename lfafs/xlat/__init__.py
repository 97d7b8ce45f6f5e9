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

The implementation is split by concern, as ``native/`` is: ``_native``
(the one call helper and the errors), ``_descriptors``, ``_memory``,
``_context`` (regions and the build), ``_l3`` (the runtime L3 API),
``_allocator`` (allocator queries and the check) and ``_walk``.  The RMM's
dynamic pool built on top of it is :mod:`lfafs.xlat_low_va`.
"""

from ._context import Context, Region, Requirements, estimate_tables
from ._descriptors import PAGE, Attr, block_size, desc, desc_attr

# Importable for tests, not in __all__ (the redundant aliases say the re-export is meant).
from ._descriptors import RESERVED_DESC as RESERVED_DESC
from ._descriptors import TRANSIENT_DESC as TRANSIENT_DESC
from ._descriptors import VA_ALLOCATED as VA_ALLOCATED
from ._memory import Memory, TlbiLog
from ._native import XlatBatchError, XlatError
from ._walk import Llt, Walk

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
