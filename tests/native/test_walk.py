"""Walkers (TF-RMM lib/xlat/src/xlat_tables_utils.c, xlat_get_llt_from_va(),
xlat_get_tte_ptr(), xlat_get_contig_pa_level3(); docs/rmm-lfa.md, "Walkers")."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, Attr, Context, Region, XlatError

from .conftest import transient_ctx

RW = Attr.RW_DATA | Attr.REALM


def test_llt_for_unmapped_vas_reports_where_the_walk_stopped(layout):
    # TF-RMM xlat_get_llt_from_va() answers the table where find_xlat_last_table() stopped
    ctx = transient_ctx(layout, 8, va_size=1 << 31)
    assert ctx.llt(0).level == 3
    assert ctx.llt(4 << 20).level == 2  # L2 entry invalid: no L3 table
    assert ctx.llt(1 << 30).level == 1


def test_llt_outside_the_context_is_efault(layout):
    ctx = transient_ctx(layout, 8, va_size=1 << 31)
    with pytest.raises(XlatError) as e:
        ctx.llt(1 << 31)  # va == base + max_va_size
    assert e.value.errno == errno.EFAULT


def test_llt_below_a_partial_base_is_efault(layout):
    base = 1 << 39
    ctx = layout.context([Region.transient(base, PAGE)], va_size=1 << 39, partial_base=base)
    with pytest.raises(XlatError) as e:
        ctx.llt(base - PAGE)
    assert e.value.errno == errno.EFAULT


def test_tte_pa_is_none_below_the_table_or_beyond_it(layout):
    # TF-RMM xlat_get_tte_ptr() returns NULL below the table or past its end
    ctx = transient_ctx(layout, 1024, va_size=1 << 31)
    llt = ctx.llt(0)
    assert llt.tte_pa(PAGE) == llt.table_pa + 8
    assert llt.tte_pa(2 << 20) is None  # beyond the 512 entries
    llt2 = ctx.llt(2 << 20)
    assert (llt2.level, llt2.base_va) == (3, 2 << 20)
    assert llt2.tte_pa(0) is None  # below the table


def test_contig_walk_counts_valid_pages_to_top_or_pa_break(layout, mmu_on):
    # TF-RMM xlat_get_contig_pa_level3()
    ctx = transient_ctx(layout, 64)
    va = ctx.map(0x1000_0000, 4 * PAGE, RW)
    ctx.map(0x2000_0000, 2 * PAGE, RW)  # PA break after 4 pages
    assert ctx.contig_pa(va, va + 16 * PAGE) == (4 * PAGE, 0x1000_0000)
    assert ctx.contig_pa(va, va + 2 * PAGE) == (2 * PAGE, 0x1000_0000)
    assert ctx.contig_pa(va + 6 * PAGE, va + 8 * PAGE) == (0, None)


def test_contig_walk_does_not_require_transient(layout):
    regions = [Region(va=0, pa=0x4000_0000, size=8 * PAGE, attr=RW, granularity=PAGE)]
    ctx = layout.context(regions, va_size=1 << 31)
    assert ctx.contig_pa(0, 16 * PAGE) == (8 * PAGE, 0x4000_0000)


def test_contig_walk_argument_errors(layout):
    ctx = transient_ctx(layout, 8)
    for args in ((1, 2 * PAGE), (0, PAGE + 1), (PAGE, PAGE), (2 * PAGE, PAGE)):
        with pytest.raises(XlatError) as e:
            ctx.contig_pa(*args)
        assert e.value.errno == errno.EINVAL


def test_contig_walk_crosses_l3_tables(layout, mmu_on):
    ctx = transient_ctx(layout, 1024)
    ctx.map(0x1000_0000, 600 * PAGE, RW)
    assert ctx.contig_pa(0, 1024 * PAGE) == (600 * PAGE, 0x1000_0000)


def test_walk_returns_pa_attr_and_level(layout, mmu_on):
    ctx = transient_ctx(layout, 8)
    va = ctx.map(0x1234_5000, PAGE, Attr.RO_DATA | Attr.REALM)
    w = ctx.walk(va + 0x123)
    assert (w.pa, w.level, w.attr) == (0x1234_5123, 3, Attr.RO_DATA)
    assert ctx.walk(va + PAGE).pa is None


def test_descriptor_above_l3_is_enoent(layout):
    ctx = transient_ctx(layout, 8, va_size=1 << 31)
    with pytest.raises(XlatError) as e:
        ctx.descriptor(4 << 20)
    assert e.value.errno == errno.ENOENT


def remapped_pool(layout, memory):
    """A pool whose tables are mapped inside it, as TF-RMM's dynamic context."""
    base = 1 << 39
    pages = 1024
    probe = [Region.transient(base, 4 << 20)]
    ntables = Context.requirements(
        probe + [Region(va=base + (4 << 20), pa=0, size=4 * PAGE, attr=RW, granularity=PAGE)],
        va_size=1 << 39, partial_base=base).tables
    tables_pa = layout.take(ntables * PAGE)
    tables_va = base + (4 << 20)
    regions = [Region.transient(base, 4 << 20),
               Region(va=tables_va, pa=tables_pa, size=ntables * PAGE, attr=RW, granularity=PAGE)]
    req = Context.requirements(regions, va_size=1 << 39, partial_base=base)
    assert req.tables == ntables
    ctx = Context(memory, regions, va_size=1 << 39, partial_base=base, tables_pa=tables_pa,
                  ntables=ntables, tables_va=tables_va, alloc_pa=layout.take(req.alloc_bytes))
    return ctx, base, pages, tables_pa, tables_va


def test_remapped_walk_uses_the_pa_va_delta_only_with_the_mmu_on(layout, memory):
    # TF-RMM lib/xlat/src/aarch64/xlat_cmn_arch.h, remap_table_address()
    ctx, base, _, tables_pa, tables_va = remapped_pool(layout, memory)
    assert ctx.tables_va_to_pa_diff == tables_va - tables_pa
    assert ctx.walk(tables_va).pa == tables_pa  # the tables map themselves
    memory.mmu_on = True
    va = ctx.map(0x7000_0000, PAGE, RW)
    assert va == base
    assert ctx.walk(va).pa == 0x7000_0000
    ctx.check()


def test_remapped_walk_refuses_tables_outside_the_array_with_the_mmu_on(layout, memory):
    ctx, base, _, tables_pa, _ = remapped_pool(layout, memory)
    # point the L1 entry of the pool at an L2 table outside the table array
    l1 = ctx.llt(base)
    assert l1.level == 3
    l1_entry_pa = ctx.tables_pa + 0  # base table, index 0 maps the pool's first GB
    outside = layout.take(PAGE)
    old = memory.read64(l1_entry_pa)
    memory.write(outside, memory.read(old & 0x0000_FFFF_FFFF_F000, PAGE))
    memory.write64(l1_entry_pa, (old & ~0x0000_FFFF_FFFF_F000) | outside)
    assert ctx.walk(base).level == 3  # MMU off: any table in memory is reachable
    memory.mmu_on = True
    with pytest.raises(XlatError) as e:
        ctx.walk(base)
    assert e.value.errno == errno.EFAULT
