"""The deliberate differences from TF-RMM (docs/rmm-lfa.md, "What differs from
TF-RMM, and why"), and the no-partial-effects rule."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, TRANSIENT_DESC, Attr, Context, Region, XlatError

from .conftest import err

RW = Attr.RW_DATA | Attr.REALM
PA = 0x8000_0000


def test_double_unmap_is_an_error(ctx):
    va = ctx.map(PA, PAGE, RW)
    ctx.unmap(va, PAGE)
    assert err(ctx.unmap, va, PAGE) == errno.EPERM


def test_unmap_of_a_reserved_page_is_an_error(ctx):
    va = ctx.reserve(PAGE)
    assert err(ctx.unmap, va, PAGE) == errno.EPERM
    assert ctx.descriptor(va) == 0x0180_0000_0000_0000


def test_unmap_of_a_non_transient_page_is_an_error_and_keeps_the_mapping(layout, mmu_on):
    regions = [Region.transient(0, 8 * PAGE),
               Region(va=8 * PAGE, pa=0x9000_0000, size=PAGE, attr=RW, granularity=PAGE)]
    ctx = layout.context(regions, va_size=1 << 30)
    static = ctx.descriptor(8 * PAGE)
    assert err(ctx.unmap, 8 * PAGE, PAGE) == errno.EPERM
    assert ctx.descriptor(8 * PAGE) == static


def test_commit_of_an_unpopulated_entry_is_an_error(ctx):
    va = ctx.reserve(PAGE)
    assert err(ctx.commit, va, PAGE) == errno.EPERM
    assert err(ctx.commit, 10 * PAGE, PAGE) == errno.EPERM  # a free entry
    assert ctx.descriptor(va) == 0x0180_0000_0000_0000


@pytest.mark.parametrize("op", ["populate", "commit", "decommit", "depopulate", "unreserve"])
def test_wrong_state_transitions_are_errors(ctx, op):
    va = ctx.map(PA, PAGE, RW)  # COMMITTED
    before = ctx.descriptor(va)
    args = (va, PA, PAGE, RW) if op == "populate" else (va, PAGE)
    if op == "decommit":
        ctx.decommit(va, PAGE)
        before = ctx.descriptor(va)
        assert err(ctx.decommit, va, PAGE) == errno.EPERM
    else:
        assert err(getattr(ctx, op), *args) == errno.EPERM
    assert ctx.descriptor(va) == before


def test_a_failing_range_call_leaves_earlier_pages_unchanged(ctx, memory):
    # TF-RMM's unmap is not atomic; ours fails on page 2 before touching page 0
    va = ctx.map(PA, 2 * PAGE, RW)
    before = ctx.descriptors(0, 64)
    memory.clear_tlbi()
    assert err(ctx.unmap, va, 3 * PAGE) == errno.EPERM
    assert ctx.descriptors(0, 64) == before
    assert memory.tlbi.pages == 0
    ctx.check()


def test_running_out_of_tables_is_enomem_and_writes_nothing(memory, layout):
    # TF-RMM lib/xlat/src/xlat_tables_core.c, xlat_table_get_empty() panics when
    # tables run out during init
    regions = [Region.transient(0, 4 << 20)]
    need = Context.requirements(regions, va_size=1 << 30).tables
    tables_pa = layout.take(need * PAGE)
    memory.write(tables_pa, b"\xAA" * PAGE)
    with pytest.raises(XlatError) as e:
        Context(memory, regions, va_size=1 << 30, tables_pa=tables_pa, ntables=need - 1,
                alloc_pa=layout.take(PAGE * 8))
    assert e.value.errno == errno.ENOMEM
    assert memory.read(tables_pa, PAGE) == b"\xAA" * PAGE


def test_free_transient_value_is_restored_exactly(ctx):
    va = ctx.reserve(PAGE)
    ctx.unreserve(va, PAGE)
    assert ctx.descriptor(va) == TRANSIENT_DESC
