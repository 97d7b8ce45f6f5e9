"""``lfafs bench native``: the VA allocator and the L3 API of the native core, on a 1 GB pool.

docs/performance.md, 'Native core: the VA allocator and the L3 API' records the output.
"""

from __future__ import annotations

import array
import time
from collections.abc import Callable

from lfafs.xlat import PAGE, Attr, Context, Memory
from lfafs.xlat_low_va import GB, build_pool, pool_layout

RW = Attr.RW_DATA | Attr.REALM
POOL_BASE = 1 << 39
REPEAT = 3
UNMAP_RANGE = 512 << 20


def _best(fn: Callable[[], float], repeat: int = REPEAT) -> float:
    return min(fn() for _ in range(repeat))


def _fresh_pool() -> tuple[Memory, Context]:
    layout = pool_layout(POOL_BASE, GB)
    mem = Memory(8 << 20, base_pa=0x8000_0000)
    tables_pa = mem.base_pa
    ctx = build_pool(mem, layout, tables_pa, tables_pa + layout.tables_bytes)
    mem.mmu_on = True
    return mem, ctx


def _fill(policy: str) -> float:
    """ns per single-page map while filling the whole pool, in one native batch."""
    _, ctx = _fresh_pool()
    n = ctx.free_pages
    pas = array.array("Q", [0x1_0000_0000] * n)
    vas = array.array("Q", pas)  # the result's memory, touched before the clock starts
    t0 = time.perf_counter_ns()
    ctx.map_batch(pas, PAGE, RW, policy=policy, out=vas)
    dt = time.perf_counter_ns() - t0
    assert vas[-1] == POOL_BASE + (n - 1) * PAGE
    return dt / n


def _checkerboard() -> tuple[Context, int]:
    """A full pool with every other page freed."""
    _, ctx = _fresh_pool()
    n = ctx.free_pages
    ctx.map_batch(array.array("Q", [0x1_0000_0000] * n), PAGE, RW)
    ctx.unmap_batch(array.array("Q", range(POOL_BASE, POOL_BASE + n * PAGE, 2 * PAGE)), PAGE)
    return ctx, n


def _unmap_pages(tfrmm: bool) -> float:
    """ns per page unmapping a full pool one page per element, lowest first, in one native batch."""
    _, ctx = _fresh_pool()
    n = ctx.free_pages
    vas = ctx.map_batch(array.array("Q", [0x1_0000_0000] * n), PAGE, RW)
    if tfrmm:
        dt = ctx.unmap_batch_as_tfrmm(vas, PAGE)
    else:
        t0 = time.perf_counter_ns()
        ctx.unmap_batch(vas, PAGE)
        dt = time.perf_counter_ns() - t0
    assert ctx.free_pages == n
    return dt / n


def _unmap_range_us(ctx: Context, tfrmm: bool) -> float:
    """µs to unmap 512 MB mapped by one call, in one call."""
    va = ctx.map(0x1_0000_0000, UNMAP_RANGE, RW)
    if tfrmm:
        dt = ctx.unmap_batch_as_tfrmm([va], UNMAP_RANGE)
    else:
        t0 = time.perf_counter_ns()
        ctx.unmap(va, UNMAP_RANGE)
        dt = time.perf_counter_ns() - t0
    return dt / 1e3


def _side_by_side(fn: Callable[[bool], float], rounds: int) -> tuple[float, float]:
    """Best of ``rounds`` for lfafs and for TF-RMM's way, alternating to cancel drift."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(fn(False))
        theirs.append(fn(True))
    return min(ours), min(theirs)


def _search_ns(ctx: Context, pages: int, policy: str, reps: int) -> tuple[float, int | None]:
    t0 = time.perf_counter_ns()
    va = ctx.find_va_repeated(pages * PAGE, reps, policy=policy)
    return (time.perf_counter_ns() - t0) / reps, va


def native(repeat: int = REPEAT) -> dict:
    """The native-core figures on a 1 GB pool (262,144 pages): docs/performance.md, 'Native core'."""
    out: dict = {"pool_pages": GB // PAGE}
    _, ctx = _fresh_pool()
    out["allocatable_pages"] = ctx.free_pages
    out["allocator_bytes"] = ctx.alloc_bytes
    out["fill_ns_per_map"] = _best(lambda: _fill("bitmap"), repeat)
    out["fill_ns_per_map_tfrmm_scan"] = _best(lambda: _fill("scan"), repeat)

    ctx, n = _checkerboard()
    out["checkerboard_2page_ns"], va = min(_search_ns(ctx, 2, "bitmap", 20000) for _ in range(repeat))
    assert va is None
    out["checkerboard_2page_ns_tfrmm_scan"], _ = _search_ns(ctx, 2, "scan", 20)
    # the same pool with one 2-page hole at the very top: both must find it
    ctx.unmap(POOL_BASE + (n - 1) * PAGE, PAGE)
    hole = POOL_BASE + (n - 2) * PAGE
    out["checkerboard_hole_at_top_ns"], va = min(_search_ns(ctx, 2, "bitmap", 20000) for _ in range(repeat))
    assert va == hole
    out["checkerboard_hole_at_top_ns_tfrmm_scan"], va = _search_ns(ctx, 2, "scan", 20)
    assert va == hole

    _, ctx = _fresh_pool()
    calls = 20000

    def python_pair() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            ctx.unmap(ctx.map(0x1_0000_0000, PAGE, RW), PAGE)
        return (time.perf_counter_ns() - t0) / calls

    def batch_pair() -> float:
        pas = array.array("Q", [0x1_0000_0000] * calls)
        t0 = time.perf_counter_ns()
        vas = ctx.map_batch(pas, PAGE, RW)
        ctx.unmap_batch(vas, PAGE)
        return (time.perf_counter_ns() - t0) / calls

    out["python_map_unmap_ns"] = _best(python_pair, repeat)
    out["batch_map_unmap_ns"] = _best(batch_pair, repeat)

    # Unmap beside TF-RMM's own single pass (xlat_unmap_l3_region(), native/xlat_reference.h),
    # run in the same process on the same pool; TLBI and DSB are logged, not executed, by both.
    out["unmap_ns_per_page"], out["unmap_ns_per_page_tfrmm"] = _side_by_side(_unmap_pages, repeat)
    _, ctx = _fresh_pool()
    out["unmap_512mb_us"], out["unmap_512mb_us_tfrmm"] = _side_by_side(
        lambda tfrmm: _unmap_range_us(ctx, tfrmm), 2 * repeat + 1)
    ctx.check()
    out["ratios"] = {
        "fill_tfrmm_scan_over_bitmap": out["fill_ns_per_map_tfrmm_scan"] / out["fill_ns_per_map"],
        "hole_at_top_tfrmm_scan_over_bitmap":
            out["checkerboard_hole_at_top_ns_tfrmm_scan"] / out["checkerboard_hole_at_top_ns"],
        "python_over_batch": out["python_map_unmap_ns"] / out["batch_map_unmap_ns"],
        "unmap_page_lfafs_over_tfrmm": out["unmap_ns_per_page"] / out["unmap_ns_per_page_tfrmm"],
        "unmap_512mb_lfafs_over_tfrmm": out["unmap_512mb_us"] / out["unmap_512mb_us_tfrmm"],
    }
    out["targets"] = {
        "fill_ns_per_map <= 100": out["fill_ns_per_map"] <= 100,
        "checkerboard_2page_ns <= 2000": out["checkerboard_2page_ns"] <= 2000,
        "unmap_page_lfafs_over_tfrmm <= 1": out["ratios"]["unmap_page_lfafs_over_tfrmm"] <= 1,
        "unmap_512mb_lfafs_over_tfrmm <= 1": out["ratios"]["unmap_512mb_lfafs_over_tfrmm"] <= 1,
    }
    return out
