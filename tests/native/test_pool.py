"""The 1 GB RMM pool: table count and capacity (TF-RMM lib/xlat_low_va/src/xlat_low_va.c,
xlat_low_va_dyn_setup(); docs/rmm-lfa.md, "Contexts")."""

from __future__ import annotations

import array
import errno

import pytest

from lfafs.xlat import PAGE, Attr, Memory, XlatError

from .pool import GB, POOL_BASE, build_pool

RW = Attr.RW_DATA | Attr.REALM


@pytest.fixture
def pool():
    mem = Memory(8 << 20, base_pa=0x8000_0000)
    ctx = build_pool(mem, mem.base_pa, mem.base_pa + (4 << 20))
    mem.mmu_on = True
    return mem, ctx


def test_pool_uses_513g_plus_1_tables_at_its_top(pool):
    _, ctx = pool
    assert ctx.tables_num == 514 and ctx.tables_used == 514
    assert ctx.base_level == 1
    top = POOL_BASE + GB - 514 * PAGE
    assert ctx.tables_va == top
    w = ctx.walk(top)
    assert w.pa == ctx.tables_pa
    assert not w.descriptor & (1 << 55)  # the table mapping is not transient
    assert ctx.descriptor(top, level=2) & (1 << 55)  # table #510 is partly transient
    assert not ctx.descriptor(POOL_BASE + GB - PAGE, level=2) & (1 << 55)  # table #511 is not


def test_pool_holds_exactly_261630_pages(pool):
    _, ctx = pool
    assert ctx.free_pages == 261_630
    pas = array.array("Q", [0x1_0000_0000] * 261_630)
    vas = ctx.map_batch(pas, PAGE, RW)
    assert vas[0] == POOL_BASE and vas[-1] == POOL_BASE + 261_629 * PAGE
    with pytest.raises(XlatError) as e:
        ctx.map(0x1_0000_0000, PAGE, RW)
    assert e.value.errno == errno.ENOMEM
    assert ctx.descriptor(POOL_BASE, level=1) & (1 << 56)
    ctx.unmap(POOL_BASE + 200_000 * PAGE, PAGE)
    assert not ctx.descriptor(POOL_BASE, level=1) & (1 << 56)
    assert ctx.map(0x1_0000_0000, PAGE, RW) == POOL_BASE + 200_000 * PAGE
    ctx.check()


def test_first_allocation_lands_at_the_pool_base(pool):
    _, ctx = pool
    assert ctx.map(0x8800_0000, 5 * PAGE, RW) == POOL_BASE
