"""Bit 56 in parent table descriptors (TF-RMM lib/xlat/src/xlat_tables_utils.c, update_parent_flags())."""

from __future__ import annotations

from lfafs.xlat import PAGE, Attr, Region

RW = Attr.RW_DATA | Attr.REALM
ALLOC = 1 << 56
TRANS = 1 << 55
GB = 1 << 30


def test_l2_flag_set_only_when_every_transient_entry_is_allocated(layout, mmu_on):
    ctx = layout.context([Region.transient(0, 1024 * PAGE)], va_size=1 << 31)
    assert ctx.base_level == 1
    ctx.map(0, 511 * PAGE, RW)
    assert not ctx.descriptor(0, level=2) & ALLOC
    ctx.map(0, PAGE, RW)
    assert ctx.descriptor(0, level=2) & ALLOC
    assert not ctx.descriptor(0, level=1) & ALLOC  # the second L3 table is still free
    ctx.map(0, 512 * PAGE, RW)
    assert ctx.descriptor(512 * PAGE, level=2) & ALLOC
    assert ctx.descriptor(0, level=1) & ALLOC  # every transient L2 entry is full
    ctx.check()


def test_one_free_clears_the_flag_up_to_the_root(layout, mmu_on):
    ctx = layout.context([Region.transient(0, 1024 * PAGE)], va_size=1 << 31)
    ctx.map(0, 1024 * PAGE, RW)
    ctx.unmap(700 * PAGE, PAGE)
    assert not ctx.descriptor(700 * PAGE, level=2) & ALLOC
    assert not ctx.descriptor(700 * PAGE, level=1) & ALLOC
    assert ctx.descriptor(0, level=2) & ALLOC  # the other L3 table stays full
    ctx.check()


def test_reserve_counts_as_allocated_and_unreserve_frees(layout, mmu_on):
    ctx = layout.context([Region.transient(0, 512 * PAGE)], va_size=1 << 31)
    va = ctx.reserve(512 * PAGE)
    assert ctx.descriptor(0, level=2) & ALLOC
    ctx.populate(va, 0x1000_0000, 512 * PAGE, RW)
    ctx.commit(va, 512 * PAGE)
    ctx.decommit(va, 512 * PAGE)  # populate/commit/decommit leave the flags alone
    assert ctx.descriptor(0, level=2) & ALLOC
    ctx.unreserve(va, PAGE)
    assert not ctx.descriptor(0, level=2) & ALLOC
    ctx.check()


def test_transient_tables_carry_bit_55(layout):
    # TF-RMM lib/xlat/src/xlat_tables_core.c, xlat_tables_map_region()
    ctx = layout.context([Region.transient(0, 600 * PAGE)], va_size=1 << 31)
    assert ctx.descriptor(0, level=1) & TRANS
    assert ctx.descriptor(0, level=2) & TRANS
    assert ctx.descriptor(512 * PAGE, level=2) & TRANS


def test_partial_table_context_marks_the_region_table(layout):
    base = 1 << 39
    ctx = layout.context([Region.transient(base, 4 << 20)], va_size=1 << 39, partial_base=base)
    assert ctx.base_level == 1
    assert ctx.descriptor(base, level=1) & TRANS
    assert ctx.descriptor(base, level=2) & TRANS
    assert ctx.descriptor(base) == TRANS


def test_static_table_has_no_bit_55(layout):
    ctx = layout.context([Region(va=0, pa=0x4000_0000, size=PAGE, attr=RW, granularity=PAGE)],
                         va_size=1 << 31)
    assert not ctx.descriptor(0, level=2) & TRANS
