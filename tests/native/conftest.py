"""Fixtures for the native core: emulated memory and contexts laid out in it."""

from __future__ import annotations

import os

import pytest

from lfafs.xlat import PAGE, Context, Memory, Region

DRAM_BASE = 0x8000_0000

# LFAFS_PMEM_WINDOW=16384 runs every native test over windows of 16 KB, so
# that table arrays, bitmaps and saved contexts straddle window boundaries
# everywhere and the store joins windows all the time (.ci/sanitize does).
if os.environ.get("LFAFS_PMEM_WINDOW"):
    Memory.WINDOW = int(os.environ["LFAFS_PMEM_WINDOW"], 0)


class Layout:
    """Hands out 4 KB-aligned PA ranges of one Memory, bottom up."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.next = memory.base_pa

    def take(self, size: int) -> int:
        pa = self.next
        self.next += (size + PAGE - 1) // PAGE * PAGE
        assert self.next <= self.memory.end_pa, "test memory too small"
        return pa

    def context(self, regions, *, va_size: int, extra_tables: int = 0, **kw) -> Context:
        """A context with exactly the tables it needs (plus extra_tables)."""
        req = Context.requirements(regions, va_size=va_size,
                                   partial_base=kw.get("partial_base", 0), lpa2=kw.get("lpa2", False))
        ntables = req.tables + extra_tables
        tables_pa = self.take(ntables * PAGE)
        alloc_pa = self.take(req.alloc_bytes) if req.alloc_bytes else None
        return Context(self.memory, regions, va_size=va_size, tables_pa=tables_pa,
                       ntables=ntables, alloc_pa=alloc_pa, **kw)


@pytest.fixture
def memory() -> Memory:
    return Memory(64 << 20, base_pa=DRAM_BASE)


@pytest.fixture
def layout(memory) -> Layout:
    return Layout(memory)


@pytest.fixture
def mmu_on(memory):
    memory.mmu_on = True
    return memory


@pytest.fixture
def ctx(layout, mmu_on):
    """A 64-page TRANSIENT range at VA 0, MMU on."""
    return transient_ctx(layout, 64)


def transient_ctx(layout: Layout, pages: int, *, va: int = 0, va_size: int = 1 << 30) -> Context:
    """One TRANSIENT region of `pages` pages at `va` with 4 KB granularity."""
    return layout.context([Region.transient(va, pages * PAGE)], va_size=va_size)


def err(fn, *args) -> int:
    """The errno of the XlatError that fn(*args) raises."""
    from lfafs.xlat import XlatError

    with pytest.raises(XlatError) as e:
        fn(*args)
    return e.value.errno
