"""Unmap on its fast paths keeps every guarantee (native/xlat_l3.c; docs/rmm-lfa.md,
"The runtime L3 API").

A batch of one-page unmaps walks once per L3 table and a range unmap checks
and writes whole tables at a time; both must do exactly what one unmap per
element does: all or nothing per element, descriptors, bitmap, summary tree
and parent bit-56 flags exact, one TLBI entry per element, and no byte of
memory written by an element that fails.  TF-RMM's own unmap, run for the
benchmark (native/xlat_reference.h), frees the same pages but is not all or
nothing."""

from __future__ import annotations

import array
import errno

import pytest

from lfafs.xlat import PAGE, TRANSIENT_DESC, VA_ALLOCATED, Attr, Memory, Region, XlatBatchError

from .conftest import DRAM_BASE, Layout, err, transient_ctx
from .pool import POOL_BASE, build_pool

RW = Attr.RW_DATA | Attr.REALM
PA = 0x8000_0000
STATIC_PA = 0x9000_0000
# Three L3 tables: transient pages 0-699, two static pages, transient 702-1099, then invalid zeros.
REGIONS = [
    Region.transient(0, 700 * PAGE),
    Region(va=700 * PAGE, pa=STATIC_PA, size=2 * PAGE, attr=RW, granularity=PAGE),
    Region.transient(702 * PAGE, 398 * PAGE),
]


def twin():
    """Two identical contexts in two memories: one for the path under test, one for the reference."""
    out = []
    for _ in range(2):
        mem = Memory(4 << 20, base_pa=DRAM_BASE)
        ctx = Layout(mem).context(REGIONS, va_size=1 << 30)
        mem.mmu_on = True
        ctx.map_batch([PA] * 1098, PAGE, RW)  # every transient page
        mem.clear_tlbi()
        out.append((mem, ctx))
    return out


def snapshot(mem: Memory) -> bytes:
    return mem.read(mem.base_pa, mem.size)


def test_a_batch_of_pages_leaves_memory_byte_for_byte_as_single_unmaps_do():
    (mem, ctx), (ref_mem, ref) = twin()
    # in and out of order, across the three tables and around the static pages
    vas = [p * PAGE for p in (0, 1, 2, 511, 512, 699, 702, 703, 1023, 1024, 1099, 5, 3, 600, 6)]
    ctx.unmap_batch(vas, PAGE)
    for va in vas:
        ref.unmap(va, PAGE)
    assert snapshot(mem) == snapshot(ref_mem)
    assert mem.tlbi == ref_mem.tlbi
    ctx.check()


def test_a_batch_that_empties_the_pool_clears_every_parent_flag():
    mem = Memory(8 << 20, base_pa=DRAM_BASE)
    ctx = build_pool(mem, mem.base_pa, mem.base_pa + (4 << 20))
    mem.mmu_on = True
    n = ctx.free_pages
    vas = ctx.map_batch(array.array("Q", [0x1_0000_0000] * n), PAGE, RW)
    assert ctx.descriptor(POOL_BASE, level=1) & VA_ALLOCATED
    mem.clear_tlbi()
    ctx.unmap_batch(vas, PAGE)
    assert ctx.free_pages == n and ctx.longest_free_run == n
    assert not ctx.descriptor(POOL_BASE, level=1) & VA_ALLOCATED
    assert not ctx.descriptor(POOL_BASE, level=2) & VA_ALLOCATED
    assert mem.tlbi.pages == n and mem.tlbi.syncs == n
    ctx.check()


@pytest.mark.parametrize("bad, code", [
    (1100 * PAGE, errno.EPERM),  # invalid zeros past the second region
    (700 * PAGE, errno.EPERM),  # a static page
    (3 * PAGE + 1, errno.EFAULT),  # unaligned
    (1 << 30, errno.EFAULT),  # outside the context
    (4 * PAGE, errno.EPERM),  # unmapped by an earlier element of the batch
])
def test_a_failing_element_changes_no_byte_and_the_batch_stops_there(bad, code):
    (mem, ctx), (ref_mem, ref) = twin()
    done = [4 * PAGE, 512 * PAGE, 1024 * PAGE]
    for va in done:
        ref.unmap(va, PAGE)
    with pytest.raises(XlatBatchError) as e:
        ctx.unmap_batch([*done, bad, 6 * PAGE], PAGE)
    assert e.value.errno == code
    assert e.value.done == done
    assert snapshot(mem) == snapshot(ref_mem)
    assert mem.tlbi == ref_mem.tlbi
    ctx.check()


def test_batch_errors_come_in_the_order_of_a_single_unmap(layout, memory):
    ctx = transient_ctx(layout, 64)
    memory.mmu_on = False
    assert err(ctx.unmap_batch, [0], PAGE) == errno.EACCES
    memory.mmu_on = True
    ctx.map(PA, 8 * PAGE, RW)
    assert err(ctx.unmap_batch, [1], 0) == errno.EINVAL  # size 0 before any VA check
    assert err(ctx.unmap_batch, [1], PAGE + 1) == errno.EFAULT
    assert err(ctx.unmap_batch, [1], PAGE) == errno.EFAULT
    with pytest.raises(XlatBatchError) as e:
        ctx.unmap_batch([0, (1 << 30) - PAGE], 2 * PAGE)  # the second runs past the context
    assert e.value.errno == errno.EFAULT and e.value.done == [0]
    assert ctx.descriptors(0, 3) == [TRANSIENT_DESC, TRANSIENT_DESC, ctx.descriptor(2 * PAGE)]
    ctx.check()


def test_a_context_without_a_dynamic_range_refuses_batches_with_eperm(layout, mmu_on):
    ctx = layout.context([Region(va=0, pa=STATIC_PA, size=4 * PAGE, attr=RW, granularity=PAGE)],
                         va_size=1 << 30)
    assert err(ctx.unmap_batch, [0, PAGE], PAGE) == errno.EPERM
    assert err(ctx.unmap, 0, PAGE) == errno.EPERM


def test_a_range_over_many_tables_is_exact():
    (mem, ctx), (ref_mem, ref) = twin()
    ctx.unmap(702 * PAGE, 398 * PAGE)
    for p in range(702, 1100):
        ref.unmap(p * PAGE, PAGE)
    assert ctx.descriptors(0, 1100) == ref.descriptors(0, 1100)
    assert ctx.longest_free_run == ref.longest_free_run == 398
    assert mem.tlbi.recent == ((702 * PAGE, 398),)
    ctx.check()
    ref.check()


@pytest.mark.parametrize("va, size, code", [
    (0, 701 * PAGE, errno.EPERM),  # the last page is static
    (600 * PAGE, 600 * PAGE, errno.EPERM),  # the static pages in the middle
    (702 * PAGE, 399 * PAGE, errno.EPERM),  # one page into the invalid zeros
])
def test_a_failing_range_changes_no_byte_and_issues_no_tlbi(va, size, code):
    (mem, ctx), _ = twin()
    before = snapshot(mem)
    assert err(ctx.unmap, va, size) == code
    assert snapshot(mem) == before
    assert mem.tlbi.pages == 0 and mem.tlbi.syncs == 0
    ctx.check()


def test_a_range_with_no_l3_table_fails_with_efault_before_any_later_eperm(layout, mmu_on, memory):
    # a 2 MB block-granular transient region has no L3 table: TF-RMM's get_llt fails there first
    ctx = layout.context([Region.transient(0, 64 * PAGE), Region.transient(2 << 20, 2 << 20, granularity=2 << 20)],
                         va_size=1 << 30)
    ctx.map(PA, 64 * PAGE, RW)
    before = snapshot(memory)
    assert err(ctx.unmap, 0, (2 << 20) + PAGE) == errno.EPERM  # page 64 is free, before the block
    assert err(ctx.unmap, 2 << 20, PAGE) == errno.EFAULT
    assert snapshot(memory) == before


def test_every_range_operation_checks_whole_tables_as_entry_states(ctx):
    # the one-pass masks of native/xlat_l3.c against the state machine, one table at a time
    va = ctx.reserve(40 * PAGE)
    ctx.populate(va, PA, 40 * PAGE, RW)
    assert err(ctx.populate, va, PA, 40 * PAGE, RW) == errno.EPERM  # populated, not reserved
    assert err(ctx.decommit, va, 40 * PAGE) == errno.EPERM
    ctx.commit(va, 20 * PAGE)
    assert err(ctx.commit, va, 40 * PAGE) == errno.EPERM  # half committed
    assert err(ctx.unreserve, va, 40 * PAGE) == errno.EPERM
    assert err(ctx.unmap, va, 40 * PAGE) == errno.EPERM
    ctx.unmap(va, 20 * PAGE)
    ctx.unreserve(va + 20 * PAGE, 20 * PAGE)  # populated pages may be unreserved
    assert ctx.descriptors(va, 40) == [TRANSIENT_DESC] * 40
    ctx.check()


# -- TF-RMM's unmap, for the benchmark ------------------------------------------

def tables(ctx) -> bytes:
    return ctx.memory.read(ctx.tables_pa, ctx.tables_num * PAGE)


def test_tfrmm_unmap_frees_the_same_pages_as_lfafs():
    (mem, ctx), (ref_mem, ref) = twin()
    vas = [p * PAGE for p in (0, 511, 512, 699, 1099)]
    ns = ctx.unmap_batch_as_tfrmm(vas, PAGE)
    ref.unmap_batch(vas, PAGE)
    assert ns > 0
    ctx.unmap_batch_as_tfrmm([702 * PAGE], 300 * PAGE)
    ref.unmap(702 * PAGE, 300 * PAGE)
    assert tables(ctx) == tables(ref)  # every descriptor and parent flag
    assert (ctx.free_pages, ctx.longest_free_run) == (ref.free_pages, ref.longest_free_run)
    assert mem.tlbi == ref_mem.tlbi
    ctx.check()  # the rebuilt bitmap and tree agree with the descriptors


def test_tfrmm_unmap_is_not_all_or_nothing():
    # TF-RMM xlat_unmap_l3_region(): pages before the failing one stay unmapped, TLBI covers
    # the whole range; where its debug build asserts (the static page), ours stops with EPERM
    (mem, ctx), _ = twin()
    with pytest.raises(XlatBatchError) as e:
        ctx.unmap_batch_as_tfrmm([690 * PAGE], 20 * PAGE)
    assert e.value.errno == errno.EPERM and e.value.done == []
    assert ctx.descriptors(690 * PAGE, 12) == [TRANSIENT_DESC] * 10 + ctx.descriptors(700 * PAGE, 2)
    assert ctx.descriptor(700 * PAGE) & 1  # the static page is kept
    assert mem.tlbi.recent == ((690 * PAGE, 20),)
    ctx.check()
    assert ctx.map(PA, 10 * PAGE, RW) == 690 * PAGE


def test_tfrmm_unmap_refuses_what_tfrmm_asserts_on(layout, memory):
    ctx = transient_ctx(layout, 64)
    memory.mmu_on = False
    assert err(ctx.unmap_batch_as_tfrmm, [0], PAGE) == errno.EACCES
    memory.mmu_on = True
    assert err(ctx.unmap_batch_as_tfrmm, [0], 0) == errno.EINVAL
    assert err(ctx.unmap_batch_as_tfrmm, [1], PAGE) == errno.EFAULT
    assert err(ctx.unmap_batch_as_tfrmm, [0], PAGE) == errno.EPERM  # a free page
    assert err(ctx.unmap_batch_as_tfrmm, [1 << 30], PAGE) == errno.EFAULT  # outside the context
    ctx.check()
