"""Stitching a child's L1 entries into a parent (TF-RMM lib/xlat/src/xlat_tables_utils.c,
xlat_stitch_tables_l1(); lib/xlat/tests/xlat_tests_stitch.cpp)."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, Attr, Region, XlatError

from .pool import GB, POOL_BASE, build_pool

RW = Attr.RW_DATA | Attr.REALM


@pytest.fixture
def pair(layout, memory):
    """A static context whose VA pool is TRANSIENT at L1, and the pool itself."""
    static = layout.context(
        [Region(va=0x8000_0000, pa=0x8000_0000, size=2 << 20, attr=RW, granularity=PAGE),
         Region.transient(POOL_BASE, 2 * GB, granularity=GB)],
        va_size=1 << 46,
    )
    child = build_pool(memory, layout.take(514 * PAGE), layout.take(128 << 10))
    return static, child


def test_stitch_copies_l1_entries_and_both_resolve_to_the_same_tables(pair, memory):
    static, child = pair
    assert static.base_level == 0
    assert static.descriptor(POOL_BASE, level=1) == 1 << 55
    assert static.stitch_l1(child, POOL_BASE, GB) == 1
    assert static.descriptor(POOL_BASE, level=1) == child.descriptor(POOL_BASE, level=1)
    assert static.llt(POOL_BASE).table_pa == child.llt(POOL_BASE).table_pa
    memory.mmu_on = True
    va = child.map(0x9000_0000, PAGE, RW)
    assert static.walk(va).pa == 0x9000_0000


def test_stitch_needs_the_mmu_off(pair, memory):
    static, child = pair
    memory.mmu_on = True
    with pytest.raises(XlatError) as e:
        static.stitch_l1(child, POOL_BASE, GB)
    assert e.value.errno == errno.EACCES


@pytest.mark.parametrize(("va", "size"), [(POOL_BASE + PAGE, GB), (POOL_BASE, GB + PAGE), (POOL_BASE, 0),
                                          (POOL_BASE - GB, 2 * GB)])
def test_stitch_needs_1gb_alignment_and_no_l0_crossing(pair, va, size):
    static, child = pair
    with pytest.raises(XlatError) as e:
        static.stitch_l1(child, va, size)
    assert e.value.errno == errno.EINVAL


def test_stitch_range_may_end_exactly_on_the_l0_boundary(layout, memory):
    base = POOL_BASE
    static = layout.context([Region.transient(base + 511 * GB, GB, granularity=GB)], va_size=1 << 46)
    child = layout.context([Region.transient(base + 511 * GB, 2 << 20)], va_size=1 << 39, partial_base=base)
    assert static.stitch_l1(child, base + 511 * GB, GB) == 1


def test_stitch_refuses_parent_entries_that_are_not_transient_desc(layout, memory):
    static = layout.context(
        [Region.transient(POOL_BASE, GB, granularity=GB),
         Region(va=POOL_BASE + GB, pa=0x1_4000_0000, size=GB, attr=RW, granularity=GB)],
        va_size=1 << 46,
    )
    child = build_pool(memory, layout.take(1027 * PAGE), layout.take(256 << 10), pool_size=2 * GB)
    before = static.descriptor(POOL_BASE, level=1)
    with pytest.raises(XlatError) as e:
        static.stitch_l1(child, POOL_BASE, 2 * GB)  # the second L1 entry is a block
    assert e.value.errno == errno.EPERM
    assert static.descriptor(POOL_BASE, level=1) == before


def test_stitching_twice_is_the_quirk_not_a_second_copy(pair):
    static, child = pair
    assert static.stitch_l1(child, POOL_BASE, GB) == 1
    # the walk now continues past L1, so TF-RMM's quirk applies
    assert static.stitch_l1(child, POOL_BASE, GB) == 0


def test_stitch_into_a_walk_ending_elsewhere_returns_zero_and_changes_nothing(layout, memory):
    # TF-RMM quirk (docs/rmm-lfa.md, "What differs from TF-RMM, and why"):
    # the parent's walk ends at L0, not L1
    static = layout.context([Region(va=0, pa=0x8000_0000, size=2 << 20, attr=RW, granularity=PAGE)],
                            va_size=1 << 46)
    child = build_pool(memory, layout.take(514 * PAGE), layout.take(128 << 10))
    before = memory.read(static.tables_pa, static.tables_num * PAGE)
    assert static.llt(POOL_BASE).level == 0
    assert static.stitch_l1(child, POOL_BASE, GB) == 0
    assert memory.read(static.tables_pa, static.tables_num * PAGE) == before
