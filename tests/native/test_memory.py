"""Emulated memory, and the promise that no caller makes the C core touch
anything outside it; contexts as plain bytes in memory."""

from __future__ import annotations

import errno

import pytest

from lfafs.xlat import PAGE, Attr, Context, Memory, XlatError

from .conftest import transient_ctx

RW = Attr.RW_DATA | Attr.REALM


def test_memory_bounds(memory):
    memory.write64(memory.base_pa, 0x1122)
    assert memory.read64(memory.base_pa) == 0x1122
    for pa in (memory.base_pa - 8, memory.end_pa - 4):
        with pytest.raises(XlatError) as e:
            memory.read(pa, 8)
        assert e.value.errno == errno.EFAULT
    with pytest.raises(XlatError):
        memory.write(memory.end_pa, b"x")


@pytest.mark.parametrize(("size", "base"), [(0, 0), (PAGE + 1, 0), (PAGE, 1), (-1, 0), (PAGE, 1 << 52)])
def test_bad_memory_geometry_is_refused(size, base):
    with pytest.raises(XlatError):
        Memory(size, base_pa=base)


def test_large_memory_is_sparse():
    mem = Memory(16 << 30)  # 16 GB costs nothing until touched
    mem.write64(mem.end_pa - 8, 1)
    assert mem.read64(mem.end_pa - 8) == 1


def test_save_and_load_round_trip(layout, memory, mmu_on):
    ctx = transient_ctx(layout, 64)
    va = ctx.map(0x4000_0000, 3 * PAGE, RW)
    pa = layout.take(Context.context_bytes())
    ctx.save(pa)
    again = Context.load(memory, pa)
    assert again.descriptors(0, 64) == ctx.descriptors(0, 64)
    assert again.map(0x5000_0000, PAGE, RW) == va + 3 * PAGE
    again.check()


def test_load_rejects_a_corrupted_context(layout, memory):
    ctx = transient_ctx(layout, 8)
    pa = layout.take(Context.context_bytes())
    ctx.save(pa)
    memory.write64(pa + 48, memory.end_pa)  # tables_pa past the end of memory
    with pytest.raises(XlatError) as e:
        Context.load(memory, pa)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(XlatError):
        Context.load(memory, memory.end_pa - 8)


def test_descriptor_pointing_outside_memory_is_efault_not_a_crash(layout, memory, mmu_on):
    ctx = transient_ctx(layout, 8)
    entry_pa = ctx.tables_pa  # base table entry 0 -> L2 table
    memory.write64(entry_pa, (1 << 47) | 3)  # a table far outside memory
    with pytest.raises(XlatError) as e:
        ctx.map(0x4000_0000, PAGE, RW)
    assert e.value.errno == errno.EIO
    with pytest.raises(XlatError) as e:
        ctx.walk(0)
    assert e.value.errno == errno.EFAULT
    with pytest.raises(XlatError) as e:
        ctx.check()
    assert e.value.errno == errno.EIO


def test_check_detects_a_descriptor_changed_behind_the_allocator(layout, memory, mmu_on):
    ctx = transient_ctx(layout, 8)
    ctx.check()
    l3 = ctx.llt(0).tte_pa(PAGE)
    memory.write64(l3, (1 << 55) | (1 << 56))  # reserved behind the bitmap's back
    with pytest.raises(XlatError) as e:
        ctx.check()
    assert "bitmap" in str(e.value)


def test_check_detects_a_corrupted_summary_tree(layout, memory, mmu_on):
    ctx = transient_ctx(layout, 4096)
    ctx.check()
    # layout (va_bitmap.h): 64-byte header, 64 words (4096 pages), then the
    # 12-byte tree nodes; node 1 is the root
    root = ctx.alloc_pa + 64 + 64 * 8 + 12
    memory.write(root + 8, b"\x07\x00\x00\x00")  # root.max
    with pytest.raises(XlatError) as e:
        ctx.check()
    assert "summary" in str(e.value)


def test_check_rejects_a_pending_leaf_outside_the_tree(layout, memory, mmu_on):
    ctx = transient_ctx(layout, 4096)
    memory.write64(ctx.alloc_pa, 1 << 40)  # header.pending
    with pytest.raises(XlatError) as e:
        ctx.check()
    assert "summary" in str(e.value)
    # the allocator does not follow it either: a 2-page search still works
    memory.write64(ctx.alloc_pa, 1 << 40)
    assert ctx.find_va(2 * PAGE) == 0


def test_stitching_contexts_on_different_memories_is_refused(layout):
    a = transient_ctx(layout, 8)
    other = Memory(8 << 20)
    from .conftest import Layout

    b = transient_ctx(Layout(other), 8)
    with pytest.raises(XlatError):
        a.stitch_l1(b, 0, 1 << 30)
