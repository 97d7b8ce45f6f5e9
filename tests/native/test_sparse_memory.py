"""Emulated DRAM as a sparse store (docs/decisions/0008-sparse-dram.md): a node
costs host memory for the pages it writes and address space for the windows
it writes, whatever its DRAM size; never-written memory reads as zero; zeroing
hands memory back; accesses across window boundaries work; nothing outside
the DRAM is ever reached."""

from __future__ import annotations

import array
import errno
import gc
import os
import random
import subprocess
import sys

import pytest

from lfafs.xlat import PAGE, Attr, Context, Memory, XlatError
from lfafs.xlat_low_va import GB, build_pool, pool_layout

from .conftest import DRAM_BASE, Layout, transient_ctx

TB = 1 << 40
MB = 1 << 20
SMALL_WINDOW = 16 << 10  # four pages: boundaries everywhere
RW = Attr.RW_DATA | Attr.REALM


def status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def scattered_pages(mem: Memory, n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [mem.base_pa + rng.randrange(mem.size // PAGE) * PAGE for _ in range(n)]


# -- cost ---------------------------------------------------------------------------------------


def test_a_4tb_node_and_reads_of_its_untouched_memory_cost_no_host_memory():
    pages = None
    gc.collect()
    before = status_kb("VmRSS")
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    pages = scattered_pages(mem, 5000)
    for pa in pages:
        assert mem.read64(pa) == 0
    for pa in pages[:500]:
        assert mem.read(pa, PAGE) == bytes(PAGE)
    assert status_kb("VmRSS") - before < 8 * 1024
    assert mem.mapped_bytes == 0


def test_writing_n_pages_costs_about_n_pages():
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    n = 2000
    pages = sorted(set(scattered_pages(mem, n, seed=2)))[:1500] + [mem.base_pa + i * PAGE for i in range(500)]
    payload = b"\xa5" * 64
    gc.collect()
    before = status_kb("VmRSS")
    for pa in pages:
        mem.write(pa + 128, payload)
    grown = status_kb("VmRSS") - before
    assert len(pages) * 4 * 0.9 <= grown <= len(pages) * 4 + 4 * 1024
    for pa in pages:
        assert mem.read(pa + 128, 64) == payload


def test_zeroing_written_memory_gives_its_whole_pages_back():
    mem = Memory(64 << 30, base_pa=DRAM_BASE)
    start = mem.base_pa + 3 * GB - 40 * PAGE  # across a window boundary
    mem.write(start, b"\x5a" * (1000 * PAGE))
    gc.collect()
    before = status_kb("VmRSS")
    mem.zero(start + 10, 1000 * PAGE - 20)  # partial pages at both ends
    assert before - status_kb("VmRSS") >= 990 * 4
    assert mem.read(start, 10) == b"\x5a" * 10
    assert mem.read(start + 10, 1000 * PAGE - 20) == bytes(1000 * PAGE - 20)
    assert mem.read(start + 1000 * PAGE - 10, 10) == b"\x5a" * 10


def test_zeroing_whole_windows_gives_their_address_space_back():
    mem = Memory(8 << 30, base_pa=DRAM_BASE, window=GB)
    for pa in range(mem.base_pa, mem.end_pa, GB):
        mem.write64(pa + GB // 2, 1)
    assert mem.mapped_bytes == mem.size
    mem.zero(mem.base_pa, mem.size)
    assert mem.mapped_bytes == 0
    assert mem.read64(mem.base_pa + GB // 2) == 0


def test_zeroing_never_written_memory_costs_nothing():
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    gc.collect()
    before = status_kb("VmRSS")
    mem.zero(mem.base_pa, mem.size)
    mem.zero(mem.base_pa + 12345, 3 * GB)
    assert mem.mapped_bytes == 0
    assert status_kb("VmRSS") - before < 1024


def test_writing_whole_pages_of_zeros_costs_nothing():
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    mem.write(mem.base_pa + 5 * GB, bytes(4 * MB))
    assert mem.mapped_bytes == 0
    mem.write(mem.base_pa, b"\x01" * PAGE * 16)
    zeros = bytes(PAGE * 16)
    gc.collect()
    before = status_kb("VmRSS")
    mem.write(mem.base_pa, zeros)  # handed back, not written
    assert before - status_kb("VmRSS") >= 15 * 4
    assert mem.read(mem.base_pa, PAGE * 16) == bytes(PAGE * 16)


def test_a_granule_array_for_4tb_costs_only_the_granules_used():
    """The RMM's granule array: 2 bytes per granule, zeroed at boot, then used sparsely."""
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    entries = mem.size // PAGE
    array_pa = mem.end_pa - entries * 2 - PAGE
    gc.collect()
    before = status_kb("VmRSS")
    mem.zero(array_pa, entries * 2)  # 2 GB, every granule NS
    rng = random.Random(3)
    used = [rng.randrange(entries) for _ in range(100)]
    for idx in used:
        mem.write(array_pa + idx * 2, b"\x02\x00")
    assert status_kb("VmRSS") - before <= 100 * 4 + 2 * 1024
    assert mem.mapped_bytes <= 3 * GB


def test_many_large_nodes_fit_in_one_process():
    """200 nodes of 1.5 TB: one 1:1 mapping each would need 300 TB of a 128 TiB address space."""
    gc.collect()
    vm_before = status_kb("VmSize")
    nodes = []
    for _ in range(200):
        mem = Memory(1536 << 30, base_pa=DRAM_BASE)
        mem.write64(mem.base_pa, 1)
        mem.write64(mem.end_pa - 8, 2)
        nodes.append(mem)
    assert all(m.read64(m.end_pa - 8) == 2 for m in nodes)
    per_node = sum(m.mapped_bytes for m in nodes) / len(nodes)
    assert per_node <= 2 * GB
    assert (status_kb("VmSize") - vm_before) * 1024 <= 200 * 2 * GB + 256 * MB


def test_a_memory_gives_its_windows_back_when_it_goes():
    gc.collect()
    vm_before = status_kb("VmSize")
    mem = Memory(16 << 30, base_pa=DRAM_BASE, window=GB)
    for pa in range(mem.base_pa, mem.end_pa, GB):
        mem.write64(pa, 1)
    assert status_kb("VmSize") - vm_before >= 15 * GB // 1024
    del mem
    gc.collect()
    assert status_kb("VmSize") - vm_before < 64 * 1024


# -- meaning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [SMALL_WINDOW, None])
def test_writes_read_back_across_window_boundaries(window):
    mem = Memory(4 * GB if window is None else 64 * MB, base_pa=DRAM_BASE, window=window)
    boundary = mem.base_pa + 2 * mem.window
    data = bytes(random.Random(4).randrange(256) for _ in range(3 * SMALL_WINDOW + 5))
    start = boundary - SMALL_WINDOW - 3
    mem.write(start, data)
    assert mem.read(start, len(data)) == data
    assert mem.read(start - 7, 7) == bytes(7)
    mem.write64(boundary - 4, 0x1122334455667788)
    assert mem.read64(boundary - 4) == 0x1122334455667788
    assert mem.read(boundary - 4, 8) == (0x1122334455667788).to_bytes(8, "little")
    mem.zero(boundary - 2, 4)
    assert mem.read64(boundary - 4) == 0x1122000000007788


def test_fresh_memory_reads_zero_everywhere_including_its_last_byte():
    mem = Memory(3 * GB + 5 * PAGE, base_pa=DRAM_BASE)
    assert mem.read(mem.end_pa - 1, 1) == b"\0"
    mem.write(mem.end_pa - 1, b"\x07")  # the last, short window
    assert mem.read(mem.end_pa - 2, 2) == b"\0\x07"
    assert mem.read(mem.end_pa, 0) == b""


@pytest.mark.parametrize("op", ["read", "write", "zero"])
@pytest.mark.parametrize("where", ["before", "straddling_the_end", "past_the_end", "wrapping"])
def test_out_of_range_accesses_are_refused(op, where):
    mem = Memory(4 * TB, base_pa=DRAM_BASE)
    pa, n = {"before": (DRAM_BASE - 8, 8), "straddling_the_end": (mem.end_pa - 4, 8),
             "past_the_end": (mem.end_pa, 1), "wrapping": ((1 << 64) - 8, 16)}[where]
    with pytest.raises(XlatError) as e:
        if op == "read":
            mem.read(pa, n)
        elif op == "write":
            mem.write(pa, b"\x01" * n)
        else:
            mem.zero(pa, n)
    assert e.value.errno == errno.EFAULT
    assert mem.mapped_bytes == 0


@pytest.mark.parametrize(("size", "window"), [(4 * TB, 3 << 20), (4 * TB, 2048), (4 * TB, 1 << 53),
                                                (4 * TB, 64 << 10), (PAGE, True)])
def test_bad_windows_are_refused(size, window):
    with pytest.raises(XlatError) as e:
        Memory(size, window=window)
    assert e.value.errno == errno.EINVAL


def test_dram_beyond_the_directory_takes_larger_windows():
    mem = Memory(1 << 50, base_pa=0)  # 1 PiB: 64 TiB of windows would not do
    assert mem.window * Memory.MAX_WINDOWS >= mem.size
    mem.write64(mem.end_pa - 8, 9)
    assert mem.read64(mem.end_pa - 8) == 9


def test_a_context_saved_across_a_window_boundary_loads_back():
    mem = Memory(8 << 20, base_pa=DRAM_BASE, window=SMALL_WINDOW)
    layout = Layout(mem)
    ctx = transient_ctx(layout, 64)
    mem.mmu_on = True
    va = ctx.map(0x4000_0000, 2 * PAGE, RW)
    pa = mem.base_pa + 40 * SMALL_WINDOW - 8 * 13  # 8-aligned, straddling
    ctx.save(pa)
    again = Context.load(mem, pa)
    assert again.descriptors(0, 64) == ctx.descriptors(0, 64)
    assert again.map(0x5000_0000, PAGE, RW) == va + 2 * PAGE


def test_a_bitmap_over_windows_written_apart_is_joined_with_their_contents():
    """The VA bitmap must be contiguous: windows mapped one by one are moved together, contents kept."""
    mem = Memory(8 << 20, base_pa=DRAM_BASE, window=SMALL_WINDOW)
    layout = pool_layout(1 << 39, GB)
    tables_pa = mem.base_pa + PAGE
    alloc_pa = tables_pa + layout.tables_bytes + PAGE  # not window aligned
    alloc_end = alloc_pa + layout.alloc_bytes(tables_pa)
    markers = {alloc_pa - 8: 0x1111, alloc_end: 0x2222, alloc_end + SMALL_WINDOW: 0x3333}
    for pa in range(alloc_pa, alloc_end, SMALL_WINDOW):
        mem.write64(pa, 0xdead)  # map every window of the bitmap on its own
    for pa, value in markers.items():
        mem.write64(pa, value)
    ctx = build_pool(mem, layout, tables_pa, alloc_pa)
    mem.mmu_on = True
    vas = ctx.map_batch(array.array("Q", [0x1_0000_0000] * 3000), PAGE, RW)
    assert len(set(vas)) == 3000
    ctx.check()
    assert {pa: mem.read64(pa) for pa in markers} == markers


def test_the_whole_pool_fills_over_small_windows():
    mem = Memory(8 << 20, base_pa=DRAM_BASE, window=SMALL_WINDOW)
    layout = pool_layout(1 << 39, GB)
    ctx = build_pool(mem, layout, mem.base_pa, mem.base_pa + layout.tables_bytes)
    mem.mmu_on = True
    n = ctx.free_pages
    ctx.map_batch(array.array("Q", [0x1_0000_0000] * n), PAGE, RW)
    assert ctx.free_pages == 0
    ctx.check()


def test_a_table_in_never_written_memory_reads_as_invalid_and_maps_nothing():
    mem = Memory(8 * GB, base_pa=DRAM_BASE)
    ctx = transient_ctx(Layout(mem), 8)
    mapped = mem.mapped_bytes
    far_table = mem.base_pa + 5 * GB  # a window nothing has written
    mem.write64(ctx.tables_pa, far_table | 3)  # base table entry 0 -> that table
    walk = ctx.walk(0)  # base level 2 (1 GB of VA), so the far table is an L3 table
    assert walk.pa is None and walk.level == 3
    assert ctx.descriptor(0) == 0 and ctx.descriptors(0, 8) == [0] * 8
    with pytest.raises(XlatError):
        ctx.check()
    assert mem.mapped_bytes == mapped
    mem.mmu_on = True
    with pytest.raises(XlatError) as e:
        ctx.map(0x4000_0000, PAGE, RW)  # the allocator's pages have no L3 table behind them
    assert e.value.errno == errno.EIO
    assert mem.read(far_table, PAGE) == bytes(PAGE)


_REFUSED = """
import errno, resource, sys
from lfafs.xlat import PAGE, Context, Memory, Region, XlatError
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
mem = Memory(4 << 40, base_pa=0x8000_0000, window=1 << 30)
mem.write64(mem.base_pa, 7)  # window 0 mapped before the limit
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20),) * 2)  # no room for another window
try:
    mem.write64(mem.base_pa + (5 << 30), 1)
except XlatError as e:
    assert e.errno == errno.ENOMEM, e
else:
    sys.exit("a write past the address-space limit succeeded")
assert mem.read64(mem.base_pa + (5 << 30)) == 0 and mem.read64(mem.base_pa) == 7
regions = [Region.transient(0, 64 * PAGE)]
req = Context.requirements(regions, va_size=1 << 30)
try:
    Context(mem, regions, va_size=1 << 30, tables_pa=mem.base_pa + (7 << 30), ntables=req.tables,
            alloc_pa=mem.base_pa + (9 << 30))
except XlatError as e:
    assert e.errno == errno.ENOMEM, e
else:
    sys.exit("a context in unmappable memory was built")
assert mem.read(mem.base_pa + (7 << 30), PAGE) == bytes(PAGE)
print("ok")
"""


@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer aborts when its own mmap meets RLIMIT_AS")
def test_a_host_that_refuses_memory_gets_an_error_not_a_crash():
    out = subprocess.run([sys.executable, "-c", _REFUSED], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
