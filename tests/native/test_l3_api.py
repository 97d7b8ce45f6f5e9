"""Runtime L3 API: error codes and their order, the entry state machine, TLBI
(TF-RMM lib/xlat/src/xlat_tables_utils.c, xlat_map_l3_region() to
xlat_unreserve_va_l3_region() and xlat_apply_va_l3_entry(); docs/rmm-lfa.md,
"The runtime L3 API").  The deliberate differences are in test_differences.py."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, RESERVED_DESC, TRANSIENT_DESC, Attr, XlatError

from .conftest import err, transient_ctx

RW = Attr.RW_DATA | Attr.REALM
PA = 0x8000_0000


# -- map -------------------------------------------------------------------

def test_map_error_order(ctx):
    # TF-RMM xlat_map_l3_region(): -EFAULT (alignment) before -EINVAL (size 0) before -EFAULT (TRANSIENT)
    assert err(ctx.map, PA + 1, 0, Attr.TRANSIENT) == errno.EFAULT
    assert err(ctx.map, PA, 1, RW) == errno.EFAULT
    assert err(ctx.map, PA, 0, Attr.TRANSIENT) == errno.EINVAL
    assert err(ctx.map, PA, PAGE, Attr.TRANSIENT) == errno.EFAULT
    assert err(ctx.map, PA, 65 * PAGE, RW) == errno.ENOMEM


def test_failed_map_changes_nothing(ctx):
    before = ctx.descriptors(0, 64)
    for args in ((PA + 1, PAGE, RW), (PA, 0, RW), (PA, PAGE, Attr.TRANSIENT), (PA, 65 * PAGE, RW)):
        with pytest.raises(XlatError):
            ctx.map(*args)
    assert ctx.descriptors(0, 64) == before
    assert ctx.free_pages == 64


@pytest.mark.parametrize("call", ["map", "reserve", "map_batch", "find_va"])
def test_a_failing_multi_page_search_changes_no_byte_of_memory(ctx, memory, call):
    # A one-page map leaves a pending leaf in the summary tree (native/va_bitmap.h);
    # a multi-page search that then fails must not write the tree back either.
    ctx.map(PA, PAGE, RW)
    before = memory.read(memory.base_pa, memory.size)
    fail = {
        "map": lambda: ctx.map(PA, 64 * PAGE, RW),
        "reserve": lambda: ctx.reserve(64 * PAGE),
        "map_batch": lambda: ctx.map_batch([PA], 64 * PAGE, RW),
        "find_va": lambda: ctx.find_va(64 * PAGE),
    }[call]
    with pytest.raises(XlatError) as e:
        fail()
    assert e.value.errno == errno.ENOMEM
    assert memory.read(memory.base_pa, memory.size) == before
    assert ctx.map(PA, 63 * PAGE, RW) == PAGE
    ctx.check()


def test_statistics_and_check_change_no_byte_of_memory(ctx, memory):
    ctx.map(PA, PAGE, RW)  # leaves a pending leaf for them to fold in
    before = memory.read(memory.base_pa, memory.size)
    assert (ctx.free_pages, ctx.longest_free_run) == (63, 63)
    ctx.check()
    assert memory.read(memory.base_pa, memory.size) == before


def test_map_rejects_unknown_attribute_bits_and_unencodable_pa(ctx):
    assert err(ctx.map, PA, PAGE, 1 << 20) == errno.EINVAL
    assert err(ctx.map, PA, PAGE, 1) == errno.EINVAL  # type 1 is reserved
    assert err(ctx.map, 1 << 48, PAGE, RW) == errno.ERANGE


def test_map_writes_descriptor_with_bits_55_and_56(ctx):
    va = ctx.map(0x4000_0000, 2 * PAGE, RW)
    assert ctx.descriptors(va, 2) == [0x01E0_0000_4000_0703, 0x01E0_0000_4000_1703]


# -- unmap -----------------------------------------------------------------

def test_unmap_errors(ctx, layout):
    # TF-RMM xlat_unmap_l3_region()
    ctx.map(PA, PAGE, RW)
    assert err(ctx.unmap, 1, PAGE) == errno.EFAULT
    assert err(ctx.unmap, 0, 1) == errno.EFAULT
    assert err(ctx.unmap, 1 << 30, PAGE) == errno.EFAULT  # outside the context
    assert err(ctx.unmap, 0, 0) == errno.EINVAL  # TF-RMM asserts; we refuse


def test_unmap_outside_any_l3_table_is_efault(layout, mmu_on):
    # the walk for 4 MB stops at level 2: no L3 table covers it
    ctx = transient_ctx(layout, 8)
    assert ctx.llt(4 << 20).level == 2
    assert err(ctx.unmap, 4 << 20, PAGE) == errno.EFAULT


def test_unmap_restores_exact_free_value(ctx):
    va = ctx.map(PA, 3 * PAGE, RW)
    ctx.unmap(va + PAGE, PAGE)  # any sub-range may be freed
    assert ctx.descriptors(va, 3)[1] == TRANSIENT_DESC
    assert ctx.descriptors(va, 3)[0] != TRANSIENT_DESC


# -- reserve / populate / commit / decommit / depopulate / unreserve -------

@pytest.mark.parametrize("op", ["commit", "decommit", "depopulate", "unreserve"])
def test_range_calls_reject_unaligned_or_zero_and_outside(ctx, op):
    # TF-RMM xlat_commit_va_l3_region() and its siblings
    fn = getattr(ctx, op)
    assert err(fn, 1, PAGE) == errno.EINVAL
    assert err(fn, 0, 1) == errno.EINVAL
    assert err(fn, 0, 0) == errno.EINVAL
    assert err(fn, 1 << 30, PAGE) == errno.EFAULT


def test_reserve_and_populate_argument_errors(ctx):
    assert err(ctx.reserve, 1) == errno.EINVAL
    assert err(ctx.reserve, 0) == errno.EINVAL
    assert err(ctx.reserve, 65 * PAGE) == errno.ENOMEM
    va = ctx.reserve(PAGE)
    assert err(ctx.populate, va + 1, PA, PAGE, RW) == errno.EINVAL
    assert err(ctx.populate, va, PA + 1, PAGE, RW) == errno.EINVAL
    assert err(ctx.populate, va, PA, 0, RW) == errno.EINVAL
    assert err(ctx.populate, va, PA, PAGE, Attr.TRANSIENT) == errno.EINVAL
    assert err(ctx.populate, 1 << 30, PA, PAGE, RW) == errno.EFAULT


def test_full_life_cycle_of_an_entry(ctx):
    # the state machine of TF-RMM xlat_apply_va_l3_entry()
    va = ctx.reserve(2 * PAGE)
    assert ctx.descriptors(va, 2) == [RESERVED_DESC] * 2
    ctx.populate(va, 0x2000_0000, 2 * PAGE, RW)
    populated = ctx.descriptor(va)
    assert populated == 0x01E0_0000_2000_0702  # valid bit clear, bit 1 set, OA = PA
    assert ctx.contig_pa(va, va + 2 * PAGE) == (0, None)
    ctx.commit(va, PAGE)  # partial commit
    assert ctx.descriptor(va) == populated | 1  # only bit 0 changes
    assert ctx.descriptor(va + PAGE) == populated + 0x1000
    ctx.commit(va + PAGE, PAGE)
    assert ctx.contig_pa(va, va + 2 * PAGE) == (2 * PAGE, 0x2000_0000)
    ctx.decommit(va + PAGE, PAGE)  # partial decommit
    assert ctx.descriptor(va + PAGE) == populated + 0x1000
    assert ctx.contig_pa(va, va + 2 * PAGE) == (PAGE, 0x2000_0000)
    ctx.depopulate(va + PAGE, PAGE)
    assert ctx.descriptor(va + PAGE) == RESERVED_DESC
    ctx.unmap(va, PAGE)  # unmap accepts COMMITTED made by reserve/populate/commit
    assert ctx.descriptor(va) == TRANSIENT_DESC
    ctx.unreserve(va + PAGE, PAGE)
    assert ctx.descriptor(va + PAGE) == TRANSIENT_DESC
    ctx.check()


def test_unreserve_accepts_reserved_and_populated(ctx):
    va = ctx.reserve(2 * PAGE)
    ctx.populate(va + PAGE, PA, PAGE, RW)
    ctx.unreserve(va, 2 * PAGE)
    assert ctx.descriptors(va, 2) == [TRANSIENT_DESC] * 2
    assert ctx.free_pages == 64


def test_populate_sub_ranges_with_different_pas(ctx):
    va = ctx.reserve(4 * PAGE)
    ctx.populate(va, 0x1000_0000, 2 * PAGE, RW)
    ctx.populate(va + 2 * PAGE, 0x5000_0000, 2 * PAGE, Attr.RW_DEV | Attr.NS)
    ctx.commit(va, 4 * PAGE)
    assert [ctx.walk(va + i * PAGE).pa for i in range(4)] == [
        0x1000_0000, 0x1000_1000, 0x5000_0000, 0x5000_1000]
    assert ctx.walk(va + 3 * PAGE).attr == Attr.RW_DEV | Attr.NS


# -- TLBI ------------------------------------------------------------------

def test_unmap_and_decommit_issue_one_tlbi_per_page(ctx, memory):
    # TF-RMM xlat_unmap_l3_region() and xlat_decommit_va_l3_region() invalidate the TLB
    memory.clear_tlbi()
    va = ctx.map(PA, 3 * PAGE, RW)
    r = ctx.reserve(2 * PAGE)
    ctx.populate(r, PA, 2 * PAGE, RW)
    ctx.commit(r, 2 * PAGE)
    assert memory.tlbi.pages == 0  # map, populate and commit issue none
    ctx.unmap(va, 3 * PAGE)
    ctx.decommit(r, 2 * PAGE)
    log = memory.tlbi
    assert log.pages == 5
    assert log.syncs == 2
    assert log.recent == ((va, 3), (r, 2))


def test_failed_unmap_issues_no_tlbi(ctx, memory):
    ctx.map(PA, PAGE, RW)
    memory.clear_tlbi()
    with pytest.raises(XlatError):
        ctx.unmap(0, 2 * PAGE)  # page 1 is free
    assert memory.tlbi.pages == 0
    assert ctx.descriptor(0) & 1  # page 0 still mapped


def test_tlbi_ring_keeps_the_last_64(ctx, memory):
    memory.clear_tlbi()
    for _ in range(70):
        va = ctx.map(PA, PAGE, RW)
        ctx.unmap(va, PAGE)
    log = memory.tlbi
    assert log.pages == 70 and log.syncs == 70 and len(log.recent) == 64


# -- MMU state ---------------------------------------------------------------

def test_runtime_calls_need_the_mmu_on(layout, memory):
    ctx = transient_ctx(layout, 8)
    memory.mmu_on = False
    assert err(ctx.map, PA, PAGE, RW) == errno.EACCES
    assert err(ctx.reserve, PAGE) == errno.EACCES
    memory.mmu_on = True
    assert ctx.map(PA, PAGE, RW) == 0


# -- batches -----------------------------------------------------------------

def test_map_batch_writes_into_a_given_array_in_place(ctx):
    import array

    out = array.array("Q", [7, 7, 7])
    assert ctx.map_batch([PA, PA, PA], PAGE, RW, out=out) is out
    assert list(out) == [0, PAGE, 2 * PAGE]
    for bad in (array.array("Q", [0, 0]), array.array("q", [0, 0, 0]), [0, 0, 0]):
        assert err(lambda o=bad: ctx.map_batch([PA, PA, PA], PAGE, RW, out=o)) == errno.EINVAL
    assert ctx.free_pages == 61
