"""Shared pattern pages (docs/decisions/0012-shared-pattern-pages.md): runs of
whole pages that hold one repeated 64-bit value, the dynamic VA pool's
freshly built L3 tables above all, become private views of one per-process
file.  Every node reads the same host pages; a write gets the writer its
own copy; zeroing reads zeros, not the pattern; joining windows keeps every
byte; and a node costs far less host memory than its tables."""

from __future__ import annotations

import array
import errno
import gc
import os
import subprocess
import sys

import pytest

from lfafs.xlat import PAGE, Attr, Context, Memory, Region
from lfafs.xlat._native import ffi, lib
from lfafs.xlat_low_va import GB, build_pool, pool_layout

from .conftest import DRAM_BASE

MB = 1 << 20
RW = Attr.RW_DATA | Attr.REALM
MIN = lib.PMEM_SHARE_MIN_PAGES
VALUE = 0x0123_4567_89AB_CDEF
WORD = VALUE.to_bytes(8, "little")


def share(mem: Memory, pa: int, n: int) -> int:
    return lib.pmem_share(mem._mem, pa, n)


def shared(mem: Memory) -> tuple[int, int]:
    """(runs, bytes) the store has shared."""
    out = ffi.new("uint64_t[2]")
    lib.pmem_shared(mem._mem, out, out + 1)
    return int(out[0]), int(out[1])


def pattern(pages: int, word: bytes = WORD) -> bytes:
    return word * (pages * PAGE // 8)


def host(mem: Memory, window: int = 0) -> int:
    """Host address of a window of mem."""
    return int(ffi.cast("uintptr_t", mem._mem.win[window]))


def mapping_kb(addr: int, key: str) -> int:
    """A field of /proc/self/smaps, in kB, for the host mapping that holds addr."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rollup_kb(key: str) -> int:
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def pool_in(mem: Memory, tables_pa: int | None = None):
    layout = pool_layout(1 << 39, GB)
    tables_pa = mem.base_pa if tables_pa is None else tables_pa
    return layout, build_pool(mem, layout, tables_pa, tables_pa + layout.tables_bytes)


# -- what is shared -----------------------------------------------------------------------------


def test_a_pool_build_shares_its_transient_tables_as_one_run():
    mem = Memory(64 * MB, base_pa=DRAM_BASE, window=GB)
    layout, ctx = pool_in(mem)
    runs, nbytes = shared(mem)
    assert runs == 1
    assert layout.tables_bytes - 8 * PAGE <= nbytes <= layout.tables_bytes
    assert ctx.descriptors(layout.base, 4) == [lib.TRANSIENT_DESC] * 4
    ctx.check()
    mem.mmu_on = True
    vas = ctx.map_batch(array.array("Q", [0x1_0000_0000 + i * PAGE for i in range(3000)]), PAGE, RW)
    ctx.check()
    assert [ctx.walk(va).pa for va in vas[::500]] == [0x1_0000_0000 + i * PAGE for i in range(0, 3000, 500)]


def test_runs_are_maximal_whole_pages_of_one_non_zero_value_and_long_enough():
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    other = (0x55).to_bytes(8, "little")
    base = mem.base_pa + 4 * PAGE
    data = pattern(MIN - 1) + bytes(PAGE) + pattern(40) + pattern(20, other) + pattern(MIN)
    mem.write(base, data)
    odd = base + (MIN + 30) * PAGE + 8 * 100  # one word differs: the run of 40 is cut in two
    mem.write64(odd, 1)
    mem.write(base + len(data) + PAGE, pattern(64, bytes(8)))  # zeros: never shared
    assert share(mem, mem.base_pa, mem.size) == 0
    runs, nbytes = shared(mem)
    # 40 pages cut at page 30 of them: 30 and 9 (too short); 20 of the other value; MIN more.
    assert (runs, nbytes) == (3, (30 + 20 + MIN) * PAGE)
    expect = bytearray(data)
    expect[odd - base:odd - base + 8] = (1).to_bytes(8, "little")
    assert mem.read(base, len(data)) == bytes(expect)
    assert share(mem, mem.base_pa, mem.size) == 0  # again: nothing new
    assert shared(mem) == (3, nbytes)


def test_sharing_reads_only_what_it_is_given_and_maps_nothing_new():
    mem = Memory(4 * GB, base_pa=DRAM_BASE, window=GB)
    assert share(mem, mem.base_pa, mem.size) == 0 and mem.mapped_bytes == 0
    mem.write(mem.base_pa + GB, pattern(64))
    assert share(mem, mem.base_pa + GB + PAGE, 32 * PAGE - 1) == 0  # 31 whole pages inside
    assert shared(mem) == (1, 31 * PAGE)
    assert mem.mapped_bytes == GB
    assert share(mem, mem.end_pa - PAGE, 2 * PAGE) == -errno.EFAULT
    assert share(mem, mem.base_pa - PAGE, PAGE) == -errno.EFAULT
    assert share(mem, mem.end_pa, 0) == 0


def test_pattern_pages_are_copied_on_write_for_the_writer_alone():
    a = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    b = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    for mem in (a, b):
        mem.write(mem.base_pa, pattern(64))
        assert share(mem, mem.base_pa, 64 * PAGE) == 0
    a.write64(a.base_pa + 5 * PAGE + 8, 7)
    a.write(a.base_pa + 10 * PAGE, b"\x01" * PAGE)
    assert b.read(b.base_pa, 64 * PAGE) == pattern(64)
    expect = bytearray(pattern(64))
    expect[5 * PAGE + 8:5 * PAGE + 16] = (7).to_bytes(8, "little")
    expect[10 * PAGE:11 * PAGE] = b"\x01" * PAGE
    assert a.read(a.base_pa, 64 * PAGE) == bytes(expect)


def test_a_run_longer_than_the_cap_is_shared_in_parts():
    """A pattern file never grows past PMEM_SHARE_MAX_PAGES: a longer run is several, each its own mapping."""
    cap = lib.PMEM_SHARE_MAX_PAGES
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    mem.write(mem.base_pa, pattern(cap + MIN + 3))
    mem.write(mem.base_pa + 2 * cap * PAGE, pattern(cap + MIN - 1))
    assert share(mem, mem.base_pa, mem.size) == 0
    # cap + (MIN + 3), then cap and MIN - 1 pages left over: too short.
    assert shared(mem) == (3, (2 * cap + MIN + 3) * PAGE)
    assert mem.read(mem.base_pa, (cap + MIN + 3) * PAGE) == pattern(cap + MIN + 3)
    assert mem.read(mem.base_pa + 2 * cap * PAGE, (cap + MIN - 1) * PAGE) == pattern(cap + MIN - 1)


def test_pools_share_over_the_window_the_tests_run_with():
    """Whatever LFAFS_PMEM_WINDOW says (.ci/sanitize), a pool's tables are shared where a window can hold a run."""
    mem = Memory(64 * MB, base_pa=DRAM_BASE)
    if mem.WINDOW < 2 * MIN * PAGE:
        pytest.skip(f"windows of {mem.WINDOW} bytes hold no run of {MIN} pages behind a table")
    layout, ctx = pool_in(mem)
    assert shared(mem)[0] >= 1
    mem.mmu_on = True
    ctx.map_batch(array.array("Q", [0x1_0000_0000] * 100), PAGE, RW)
    ctx.check()


# -- what costs host memory -----------------------------------------------------------------------


def test_writing_a_shared_page_what_it_holds_keeps_it_shared():
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    mem.write(mem.base_pa, pattern(64))
    assert share(mem, mem.base_pa, 64 * PAGE) == 0
    run = host(mem)
    mem.read(mem.base_pa, 64 * PAGE)
    assert mapping_kb(run, "Anonymous") == 0
    mem.write(mem.base_pa, pattern(64))  # the same contents, whole pages
    mem.write(mem.base_pa + 3 * PAGE + 8, WORD * 100)  # and part of one
    mem.write64(mem.base_pa + 9 * PAGE, VALUE)
    assert mapping_kb(run, "Anonymous") == 0
    assert shared(mem) == (1, 64 * PAGE)
    mem.write64(mem.base_pa + 5 * PAGE, 7)  # a change: that page alone is copied
    assert mapping_kb(run, "Anonymous") == PAGE // 1024
    assert mem.read(mem.base_pa, 64 * PAGE) == pattern(5) + (7).to_bytes(8, "little") + pattern(59)[8:]


def test_short_zeroing_writes_only_the_pages_that_are_not_zero():
    """Less than 64 KB is written, not handed back: page by page, so zero pages stay unwritten."""
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    mem.write64(mem.base_pa + 7 * PAGE, 1)  # one page of fifteen holds data
    anon = mapping_kb(host(mem), "Anonymous")
    mem.zero(mem.base_pa, 15 * PAGE)
    mem.write(mem.base_pa + 16 * PAGE, bytes(15 * PAGE))
    assert mapping_kb(host(mem), "Anonymous") == anon
    assert mem.read(mem.base_pa, 40 * PAGE) == bytes(40 * PAGE)
    # Over a shared run: the pages already zero stay as they are.
    mem.write(mem.base_pa, pattern(64))
    assert share(mem, mem.base_pa, 64 * PAGE) == 0
    run = host(mem)
    mem.zero(mem.base_pa + 2 * PAGE, 2 * PAGE)  # changes two pages: their copies
    assert mapping_kb(run, "Anonymous") == 2 * PAGE // 1024
    mem.zero(mem.base_pa, 8 * PAGE)  # two zero already, six changed
    assert mapping_kb(run, "Anonymous") == 8 * PAGE // 1024
    assert mem.read(mem.base_pa, 64 * PAGE) == bytes(8 * PAGE) + pattern(56)


# -- zeroing: the pattern must not come back ----------------------------------------------------


def test_zeroing_a_shared_run_reads_zeros_not_the_pattern():
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    mem.write(mem.base_pa, pattern(64))
    share(mem, mem.base_pa, 64 * PAGE)
    mem.write(mem.base_pa + 20 * PAGE, b"\x09" * PAGE)  # a copied page inside what is zeroed
    mem.zero(mem.base_pa + 16 * PAGE + 3, 32 * PAGE)  # partial pages at both ends, 31 whole ones
    expect = bytearray(pattern(64))
    expect[16 * PAGE + 3:48 * PAGE + 3] = bytes(32 * PAGE)
    assert mem.read(mem.base_pa, 64 * PAGE) == bytes(expect)
    assert shared(mem) == (2, (17 + 16) * PAGE)  # pages 0-16 and 48-63 still shared
    mem.zero(mem.base_pa, 64 * PAGE)
    assert mem.read(mem.base_pa, 64 * PAGE) == bytes(64 * PAGE)
    assert shared(mem) == (0, 0)


def test_writing_zero_pages_over_a_shared_run_reads_zeros():
    mem = Memory(16 * MB, base_pa=DRAM_BASE, window=GB)
    mem.write(mem.base_pa, pattern(64))
    share(mem, mem.base_pa, 64 * PAGE)
    mem.write(mem.base_pa + 8 * PAGE, bytes(40 * PAGE))  # handed back: must not read the pattern
    mem.write(mem.base_pa + 60 * PAGE, bytes(PAGE))  # short: written
    expect = bytearray(pattern(64))
    expect[8 * PAGE:48 * PAGE] = bytes(40 * PAGE)
    expect[60 * PAGE:61 * PAGE] = bytes(PAGE)
    assert mem.read(mem.base_pa, 64 * PAGE) == bytes(expect)
    # Zero again over what is now anonymous and still shared, then share it all again.
    mem.zero(mem.base_pa, 64 * PAGE)
    assert mem.read(mem.base_pa, 64 * PAGE) == bytes(64 * PAGE)
    mem.write(mem.base_pa, pattern(64))
    assert share(mem, mem.base_pa, 64 * PAGE) == 0 and shared(mem) == (1, 64 * PAGE)
    mem.zero(mem.base_pa + 4 * PAGE, 56 * PAGE)
    assert mem.read(mem.base_pa, 64 * PAGE) == pattern(4) + bytes(56 * PAGE) + pattern(4)


def test_a_table_array_rebuilt_over_shared_tables_is_zeroed_first():
    """ctx init zeroes its array with pmem_clear: over shared tables that must give zeros too."""
    mem = Memory(64 * MB, base_pa=DRAM_BASE, window=GB)
    layout, _ = pool_in(mem)
    assert shared(mem)[0] == 1
    regions = [Region(va=0, pa=mem.base_pa + 32 * MB, size=2 * MB, attr=RW, granularity=PAGE)]
    req = Context.requirements(regions, va_size=GB)
    ctx = Context(mem, regions, va_size=GB, tables_pa=mem.base_pa, ntables=layout.tables)
    assert req.tables < layout.tables
    unused = mem.base_pa + req.tables * PAGE
    assert mem.read(unused, (layout.tables - req.tables) * PAGE) == bytes((layout.tables - req.tables) * PAGE)
    assert ctx.walk(5 * PAGE).pa == mem.base_pa + 32 * MB + 5 * PAGE
    ctx.check()


def test_zeroing_a_whole_window_forgets_its_runs():
    mem = Memory(4 * GB, base_pa=DRAM_BASE, window=GB)
    for w in (1, 2):
        mem.write(mem.base_pa + w * GB + 64 * PAGE, pattern(32))
    share(mem, mem.base_pa, mem.size)
    assert shared(mem) == (2, 64 * PAGE)
    mem.zero(mem.base_pa + GB, GB)
    assert shared(mem) == (1, 32 * PAGE)
    assert mem.mapped_bytes == GB
    assert mem.read(mem.base_pa + GB + 64 * PAGE, 32 * PAGE) == bytes(32 * PAGE)
    mem.write(mem.base_pa + GB + 64 * PAGE, b"\x03" * 100)
    assert mem.read(mem.base_pa + GB + 64 * PAGE, 101) == b"\x03" * 100 + b"\0"
    assert mem.read(mem.base_pa + 2 * GB + 64 * PAGE, 32 * PAGE) == pattern(32)


# -- joining windows that hold runs --------------------------------------------------------------


def test_a_join_copies_a_window_with_shared_and_unshared_segments_intact():
    """A VA bitmap spans windows 4 and 5; window 4 holds a run, part of it zeroed, part copied.
    A window of several host mappings is copied, not moved: its runs are given up."""
    window = 256 << 10  # 64 pages
    mem = Memory(8 * MB, base_pa=DRAM_BASE, window=window)
    w4 = mem.base_pa + 4 * window
    mem.write(w4, pattern(48))
    marker = w4 + window + 50 * PAGE  # window 5, past the bitmap: plain memory
    mem.write64(marker, 0x77)
    assert share(mem, w4, 48 * PAGE) == 0
    mem.zero(w4 + 16 * PAGE, 16 * PAGE)  # 64 KB: a fresh anonymous segment in the middle
    mem.write64(w4 + 40 * PAGE, 0x1234)  # a copied page in the last shared part
    assert shared(mem) == (2, 32 * PAGE)
    expect = bytearray(pattern(48))
    expect[16 * PAGE:32 * PAGE] = bytes(16 * PAGE)
    expect[40 * PAGE:40 * PAGE + 8] = (0x1234).to_bytes(8, "little")

    layout = pool_layout(1 << 39, GB)
    tables_pa = mem.base_pa + 16 * window
    alloc_pa = w4 + 48 * PAGE  # the bitmap starts in window 4 and runs on into window 5
    assert w4 + window < alloc_pa + layout.alloc_bytes(tables_pa) < marker
    host = [mem._mem.win[4], mem._mem.win[5]]
    ctx = build_pool(mem, layout, tables_pa, alloc_pa)
    moved = [mem._mem.win[4], mem._mem.win[5]]
    assert moved != host and int(ffi.cast("uintptr_t", moved[1])) - int(ffi.cast("uintptr_t", moved[0])) == window
    assert mem.read(w4, 48 * PAGE) == bytes(expect)
    assert mapping_kb(int(ffi.cast("uintptr_t", moved[0])), "Anonymous") >= 31 * PAGE // 1024  # copies now
    mem.mmu_on = True
    ctx.map_batch(array.array("Q", [0x1_0000_0000] * 2000), PAGE, RW)
    ctx.check()
    assert mem.read(w4, 48 * PAGE) == bytes(expect)
    assert mem.read64(marker) == 0x77
    # The moved window still zeroes and shares correctly.
    mem.zero(w4, 16 * PAGE)
    assert mem.read(w4, 48 * PAGE) == bytes(32 * PAGE) + bytes(expect[32 * PAGE:])
    mem.write(w4, pattern(32))
    assert share(mem, w4, 48 * PAGE) == 0
    assert mem.read(w4, 32 * PAGE) == pattern(32)


def test_pools_over_small_windows_share_and_join_and_fill():
    """Windows of 64 pages: each holds its own run of a pool's tables, and bitmaps join across them."""
    window = 256 << 10
    mem = Memory(32 * MB, base_pa=DRAM_BASE, window=window)
    layout = pool_layout(1 << 39, GB)
    tables_pa = mem.base_pa + 3 * PAGE
    first = build_pool(mem, layout, tables_pa, tables_pa + layout.tables_bytes)
    runs, _ = shared(mem)
    assert runs >= 7
    # A second pool right behind the first: its bitmap joins windows next to the first's runs.
    second_pa = tables_pa + layout.tables_bytes + layout.alloc_bytes(tables_pa) + 5 * PAGE
    second = build_pool(mem, layout, second_pa, second_pa + layout.tables_bytes)
    mem.mmu_on = True
    for ctx in (first, second):
        n = ctx.free_pages
        ctx.map_batch(array.array("Q", [0x1_0000_0000] * n), PAGE, RW)
        assert ctx.free_pages == 0
        ctx.check()
    first.check()


# -- limits --------------------------------------------------------------------------------------


_MANY_VALUES = """
import errno
from lfafs.xlat import PAGE, Memory
from lfafs.xlat._native import ffi, lib
mem = Memory(64 << 20, base_pa=0x8000_0000, window=1 << 30)
datas = []
for i in range(12):
    data = (0x1000 + i).to_bytes(8, "little") * (32 * PAGE // 8)
    mem.write(mem.base_pa + i * 64 * PAGE, data)
    datas.append(data)
rets = [lib.pmem_share(mem._mem, mem.base_pa + i * 64 * PAGE, 32 * PAGE) for i in range(12)]
assert all(r in (0, -errno.ENOMEM) for r in rets), rets
assert rets.count(0) == 8, rets
out = ffi.new("uint64_t[2]")
lib.pmem_shared(mem._mem, out, out + 1)
assert out[0] == 8, out[0]
assert all(mem.read(mem.base_pa + i * 64 * PAGE, 32 * PAGE) == datas[i] for i in range(12))
print("ok")
"""


def test_values_past_the_pattern_table_are_left_unshared_and_intact():
    """One pattern file per value, eight per process: in a process of its own, to keep this one's table."""
    out = subprocess.run([sys.executable, "-c", _MANY_VALUES], capture_output=True, text=True, timeout=60,
                         env=os.environ)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# -- cost ----------------------------------------------------------------------------------------


def test_pool_tables_cost_a_fraction_of_their_size_per_node_even_when_read():
    """A 1 GB pool's 2 MB of tables: built, they cost almost nothing; read, the pages are shared."""
    nodes = 8
    keep = [pool_in(Memory(64 * MB, base_pa=DRAM_BASE, window=GB))]  # pattern file grown already
    gc.collect()
    rss, pss = rollup_kb("Rss"), rollup_kb("Pss")
    for _ in range(nodes):
        keep.append(pool_in(Memory(64 * MB, base_pa=DRAM_BASE, window=GB)))
    table_kb = keep[0][0].tables_bytes // 1024
    built = (rollup_kb("Rss") - rss) / nodes
    assert built < table_kb / 4, f"{built} kB per node for {table_kb} kB of tables"
    for _, ctx in keep[1:]:
        ctx.check()  # reads every table
    read = (rollup_kb("Pss") - pss) / nodes
    assert read < table_kb / 2, f"{read} kB per node after reading {table_kb} kB of tables"
