"""The VA allocator: lowest-address first fit over TRANSIENT pages (docs/rmm-lfa.md,
"The VA allocator"; TF-RMM lib/xlat/src/xlat_tables_utils.c, find_available_va())."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, Attr, Region, XlatError

from .conftest import transient_ctx

RW = Attr.RW_DATA | Attr.REALM
PA = 0x8000_0000


def test_first_maps_go_to_0_4k_8k(layout, mmu_on):
    # TF-RMM lib/xlat/tests/xlat_tests_va_alloc.cpp, xlat_va_alloc_flag_propagation_tc1()
    ctx = transient_ctx(layout, 16)
    assert [ctx.map(PA + i * PAGE, PAGE, RW) for i in range(3)] == [0, PAGE, 2 * PAGE]


def test_search_restarts_from_the_base_each_call(layout, mmu_on):
    ctx = transient_ctx(layout, 16)
    vas = [ctx.map(PA, PAGE, RW) for _ in range(4)]
    ctx.unmap(vas[0], PAGE)
    assert ctx.map(PA, PAGE, RW) == 0


def test_run_continues_across_l3_tables(layout, mmu_on):
    # TF-RMM lib/xlat/tests/xlat_tests_va_alloc.cpp, xlat_va_alloc_boundaries_tc1():
    # 511 pages, then 2 pages -> page 511 (crosses into the next L3 table)
    ctx = transient_ctx(layout, 1024)
    assert ctx.map(PA, 511 * PAGE, RW) == 0
    va = ctx.map(PA, 2 * PAGE, RW)
    assert va == 511 * PAGE
    assert ctx.walk(va + PAGE).level == 3 and ctx.llt(va).table_pa != ctx.llt(va + PAGE).table_pa


def test_run_resets_on_a_non_transient_subtree(layout, mmu_on):
    # a 2 MB non-transient block between two TRANSIENT ranges breaks every run
    regions = [
        Region.transient(0, 2 << 20),
        Region(va=2 << 20, pa=0x4000_0000, size=2 << 20, attr=RW, granularity=2 << 20),
        Region.transient(4 << 20, 2 << 20),
    ]
    ctx = layout.context(regions, va_size=1 << 30)
    assert ctx.map(PA, (512 - 1) * PAGE, RW) == 0
    # 1 free page at the end of the first range + 1 at the start of the last is not a run
    assert ctx.map(PA, 2 * PAGE, RW) == 4 << 20


def test_freed_hole_is_reused_by_the_next_request_that_fits(layout, mmu_on):
    # TF-RMM lib/xlat/tests/xlat_tests_va_alloc.cpp, xlat_va_alloc_search_reset_tc1():
    # 3/1/5, free page 3, 4 pages go to page 9
    ctx = transient_ctx(layout, 512)
    assert ctx.map(PA, 3 * PAGE, RW) == 0
    assert ctx.map(PA, PAGE, RW) == 3 * PAGE
    assert ctx.map(PA, 5 * PAGE, RW) == 4 * PAGE
    ctx.unmap(3 * PAGE, PAGE)
    assert ctx.map(PA, 4 * PAGE, RW) == 9 * PAGE
    assert ctx.map(PA, PAGE, RW) == 3 * PAGE


def test_non_transient_entries_do_not_stop_a_table_counting_as_full(layout, mmu_on):
    # TF-RMM lib/xlat/tests/xlat_tests_va_alloc.cpp, xlat_va_alloc_va_end_boundary_tc1():
    # 600 of 1024 pages transient
    ctx = layout.context([Region.transient(0, 600 * PAGE)], va_size=1024 * PAGE)
    assert ctx.map(PA, 600 * PAGE, RW) == 0
    assert ctx.descriptor(512 * PAGE, level=2) & (1 << 56)
    with pytest.raises(XlatError) as e:
        ctx.map(PA, PAGE, RW)
    assert e.value.errno == errno.ENOMEM
    ctx.unmap(300 * PAGE, PAGE)
    assert ctx.map(PA, PAGE, RW) == 300 * PAGE
    with pytest.raises(XlatError):
        ctx.map(PA, PAGE, RW)


@pytest.mark.parametrize("pages", [64, 32])
def test_enomem_exactly_after_n_single_page_maps(layout, mmu_on, pages):
    # TF-RMM lib/xlat/tests/xlat_tests_va_alloc.cpp, xlat_map_l3_region_errors_tc2()
    ctx = transient_ctx(layout, pages)
    vas = [ctx.map(PA + i * PAGE, PAGE, RW) for i in range(pages)]
    assert vas == [i * PAGE for i in range(pages)]
    with pytest.raises(XlatError) as e:
        ctx.map(PA, PAGE, RW)
    assert e.value.errno == errno.ENOMEM
    ctx.check()


def test_reserved_entries_are_skipped_by_map_and_later_reserves(layout, mmu_on):
    # TF-RMM xlat_reserve_va_l3_region(): reserved entries carry bit 56
    ctx = transient_ctx(layout, 16)
    r = ctx.reserve(2 * PAGE)
    assert r == 0
    assert ctx.map(PA, PAGE, RW) == 2 * PAGE
    assert ctx.reserve(PAGE) == 3 * PAGE
    ctx.populate(r, PA, 2 * PAGE, RW)
    ctx.commit(r, 2 * PAGE)
    ctx.decommit(r, 2 * PAGE)
    # decommitted entries stay reserved: the next map does not take them
    assert ctx.map(PA, PAGE, RW) == 4 * PAGE


def test_non_transient_entries_are_never_handed_out(layout, mmu_on):
    # TF-RMM's latent defect (docs/rmm-lfa.md, "What differs from TF-RMM, and
    # why"; find_available_va()): a partially transient L3 table whose
    # last entries map static pages.  Free the last two transient pages and
    # ask for three: TF-RMM (NDEBUG) returns a run overlapping the static
    # pages; lfafs answers -ENOMEM and leaves the static mapping alone.
    regions = [
        Region.transient(0, 510 * PAGE),
        Region(va=510 * PAGE, pa=0x9000_0000, size=2 * PAGE, attr=RW, granularity=PAGE),
    ]
    ctx = layout.context(regions, va_size=1 << 30)
    static = ctx.descriptor(510 * PAGE)
    assert ctx.map(PA, 510 * PAGE, RW) == 0
    ctx.unmap(508 * PAGE, 2 * PAGE)
    with pytest.raises(XlatError) as e:
        ctx.map(PA, 3 * PAGE, RW)
    assert e.value.errno == errno.ENOMEM
    assert ctx.descriptor(510 * PAGE) == static
    assert ctx.map(PA, 2 * PAGE, RW) == 508 * PAGE


def test_checkerboard_pool_refuses_two_pages_without_touching_static_pages(layout, mmu_on):
    regions = [
        Region.transient(0, 1022 * PAGE),
        Region(va=1022 * PAGE, pa=0x9000_0000, size=2 * PAGE, attr=RW, granularity=PAGE),
    ]
    ctx = layout.context(regions, va_size=1 << 30)
    ctx.map_batch([PA] * 1022, PAGE, RW)
    ctx.unmap_batch(range(0, 1022 * PAGE, 2 * PAGE), PAGE)
    assert ctx.longest_free_run == 1
    with pytest.raises(XlatError) as e:
        ctx.map(PA, 2 * PAGE, RW)
    assert e.value.errno == errno.ENOMEM
    ctx.check()


def test_scan_policy_finds_the_same_va_as_the_bitmap(layout, mmu_on):
    ctx = transient_ctx(layout, 2048)
    ctx.map_batch([PA] * 700, PAGE, RW)
    ctx.unmap_batch([5 * PAGE, 6 * PAGE, 100 * PAGE, 511 * PAGE, 512 * PAGE, 513 * PAGE], PAGE)
    for n in (1, 2, 3, 4, 1000):
        assert ctx.find_va(n * PAGE) == ctx.find_va(n * PAGE, policy="scan")
    assert ctx.find_va(3 * PAGE) == 511 * PAGE


def test_scan_policy_reads_lpa2_tables(layout, mmu_on):
    # scan() is compiled once per OA encoding (native/xlat_alloc.c)
    ctx = layout.context([Region.transient(0, 1100 * PAGE)], va_size=1 << 52, lpa2=True)
    assert ctx.base_level == -1
    vas = ctx.map_batch([PA] * 600, PAGE, RW, policy="scan")
    assert list(vas) == [p * PAGE for p in range(600)]
    ctx.unmap_batch([5 * PAGE, 6 * PAGE, 511 * PAGE, 512 * PAGE, 513 * PAGE], PAGE)
    for n in (1, 2, 3, 4, 500):
        assert ctx.find_va(n * PAGE, policy="scan") == ctx.find_va(n * PAGE)
    ctx.check()


def test_scan_policy_skips_transient_ranges_not_built_down_to_l3(layout, mmu_on):
    # a free TRANSIENT block at L2 has no table under it: skipped as if full, never followed
    ctx = layout.context([Region.transient(0, 2 << 20, granularity=2 << 20),
                          Region.transient(2 << 20, 8 * PAGE)], va_size=1 << 30)
    assert ctx.find_va(PAGE, policy="scan") == ctx.find_va(PAGE) == 2 << 20
    assert ctx.map_batch([PA] * 8, PAGE, RW, policy="scan")[-1] == (2 << 20) + 7 * PAGE
    with pytest.raises(XlatError) as e:
        ctx.find_va(PAGE, policy="scan")
    assert e.value.errno == errno.ENOMEM
    ctx.check()


def test_allocation_is_deterministic():
    from lfafs.xlat import Memory

    from .conftest import Layout

    results = []
    for _ in range(2):
        mem = Memory(8 << 20)
        mem.mmu_on = True
        ctx = transient_ctx(Layout(mem), 256)
        vas = [ctx.map(0, n * PAGE, RW) for n in (3, 1, 7, 2, 2, 5)]
        ctx.unmap(vas[1], PAGE)  # a 1-page hole at page 3
        ctx.unmap(vas[3], 2 * PAGE)  # a 2-page hole at page 11
        vas.append(ctx.map(0, 2 * PAGE, RW))
        results.append(vas)
    assert results[0] == results[1]
    assert results[0][-1] == 11 * PAGE
