"""Node memory: host memory and address space per node against DRAM size, two stores side by side.

Run ``.venv/bin/python tools/bench_node_memory.py [--json]``.  It measured the
figures of docs/decisions/0008-sparse-dram.md; ``node_memory()`` returns the
same dict as the ``lfafs bench`` suites (lfafs/service/bench/), so it can be
registered there as it is.

The two stores are the same native code with two window sizes:

- ``sparse``: the default, 1 GiB windows, each mapped when first written;
- ``one mapping``: one window as large as the DRAM, i.e. the whole DRAM as a
  single MAP_NORESERVE mapping made from C, option (b) of the decision.

A node here is what layer 1 sees of one lfafs node: DRAM at 0x8000_0000, an
RMM carve-out at its top holding a 1 GB dynamic VA pool (tables and bitmap)
and the granule array (2 bytes per 4 KB granule, zeroed as TF-RMM's boot
does), 1,000 pages mapped in the pool, 64 granules delegated across DRAM, a
few pages of glob_data and shared buffer, and 1 MB of RMM image at the
bottom.  The full platform cannot yet boot DRAM above its profile cap.
"""

from __future__ import annotations

import array
import json
import random
import subprocess
import sys
import time

from lfafs.xlat import PAGE, Attr, Context, Memory, XlatError
from lfafs.xlat_low_va import GB, build_pool, pool_layout

DRAM_BASE = 0x8000_0000
SIZES = {"2G": 2 << 30, "64G": 64 << 30, "1.5T": 1536 << 30, "4T": 4 << 40}
GRANULE_ENTRY = 2
IMAGE_BYTES = 1 << 20
POOL_BASE = 1 << 39
RW = Attr.RW_DATA | Attr.REALM


def one_window(size: int) -> int:
    """The window that makes the whole DRAM one mapping (the last window ends with the DRAM)."""
    return 1 << (size - 1).bit_length()


def _status(key: str) -> int:
    """A /proc/self/status figure, in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def make_node(size: int, window: int | None, seed: int = 0) -> tuple[Memory, Context]:
    """One node's DRAM, written as an lfafs node writes it (see the module doc)."""
    mem = Memory(size, base_pa=DRAM_BASE, window=window)
    granules = size // PAGE * GRANULE_ENTRY
    layout = pool_layout(POOL_BASE, GB)
    carve_top = mem.end_pa - PAGE
    gran_pa = (carve_top - granules) & ~(PAGE - 1)
    alloc_pa = gran_pa - ((layout.alloc_bytes(0) + PAGE - 1) // PAGE) * PAGE
    tables_pa = alloc_pa - layout.tables_bytes
    glob_pa = tables_pa - 4 * PAGE
    mem.write(DRAM_BASE + (128 << 20), bytes(range(256)) * (IMAGE_BYTES // 256))  # the RMM image
    mem.zero(gran_pa, granules)  # every granule NS
    mem.zero(glob_pa, 4 * PAGE)
    mem.write(glob_pa, b"\x01" * 512)  # glob_data and the shared buffer
    mem.write(carve_top, b"\x02" * 64)
    ctx = build_pool(mem, layout, tables_pa, alloc_pa)
    mem.mmu_on = True
    ctx.map_batch(array.array("Q", [DRAM_BASE] * 1000), PAGE, RW)
    rng = random.Random(seed)
    for _ in range(64):  # RMI_GRANULE_DELEGATE somewhere in DRAM: its entry, then the granule scrubbed
        idx = rng.randrange(size // PAGE - granules // PAGE - 4096)
        mem.write(gran_pa + idx * GRANULE_ENTRY, b"\x01\x00")
        mem.zero(DRAM_BASE + idx * PAGE, PAGE)
    return mem, ctx


def _per_node(size: int, window: int | None, nodes: int) -> dict:
    make_node(2 << 30, window)  # warm up imports and the allocator
    rss0, vm0, maps0 = _status("VmRSS"), _status("VmSize"), _maps()
    t0 = time.perf_counter()
    kept = [make_node(size, window, seed=i) for i in range(nodes)]
    dt = time.perf_counter() - t0
    out = {
        "rss_kB_per_node": (_status("VmRSS") - rss0) / nodes,
        "address_space_MB_per_node": (_status("VmSize") - vm0) / 1024 / nodes,
        "mappings_per_node": (_maps() - maps0) / nodes,
        "build_ms_per_node": dt / nodes * 1e3,
    }
    del kept
    return out


def _access_ns(window: int | None, size: int = 64 << 30, calls: int = 20000) -> dict:
    """Cost per access: Python reads and writes, and the C core's L3 map/unmap through a pool."""
    mem, ctx = make_node(size, window)
    rng = random.Random(7)
    pas = [DRAM_BASE + rng.randrange(size // PAGE // 2) * PAGE for _ in range(calls)]
    written = [DRAM_BASE + (128 << 20) + (i % 256) * PAGE for i in range(calls)]

    def best(fn) -> float:
        out = float("inf")
        for _ in range(3):
            t0 = time.perf_counter_ns()
            fn()
            out = min(out, (time.perf_counter_ns() - t0) / calls)
        return out

    def batch() -> None:
        vas = ctx.map_batch(array.array("Q", [DRAM_BASE] * calls), PAGE, RW)
        ctx.unmap_batch(vas, PAGE)

    return {
        "read64_never_written_ns": best(lambda: [mem.read64(pa) for pa in pas]),
        "read64_written_ns": best(lambda: [mem.read64(pa) for pa in written]),
        "write64_ns": best(lambda: [mem.write64(pa, 1) for pa in written]),
        "read_4k_ns": best(lambda: [mem.read(pa, PAGE) for pa in written]),
        "c_map_unmap_pair_ns": best(batch),
    }


_FIT = """
import sys
from lfafs.xlat import Memory, XlatError
size, window, cap = int(sys.argv[1]), (int(sys.argv[2]) or None), int(sys.argv[3])
nodes = []
try:
    while len(nodes) < cap:
        m = Memory(size, base_pa=0x8000_0000, window=window)
        m.write64(m.base_pa, 1)
        m.write64(m.end_pa - 8, 1)
        nodes.append(m)
except XlatError:
    pass
print(len(nodes))
"""


def nodes_that_fit(size: int, window: int | None, cap: int) -> int:
    """Nodes of ``size`` DRAM, each writing its first and last page, one process holds (up to ``cap``).

    Run in a child process: exhausting the address space would starve this one.
    """
    out = subprocess.run([sys.executable, "-c", _FIT, str(size), str(window or 0), str(cap)],
                         check=True, capture_output=True, text=True)
    return int(out.stdout)


def node_memory(nodes: int = 10, fit_cap: int = 10_000) -> dict:
    """RSS, address space and mappings per node for each DRAM size, sparse store against one mapping."""
    out: dict = {}
    for name, size in SIZES.items():
        out[f"sparse_{name}"] = _per_node(size, None, nodes)
        out[f"one_mapping_{name}"] = _per_node(size, one_window(size), min(nodes, 8))
    out["access_sparse"] = _access_ns(None)
    out["access_one_mapping"] = _access_ns(one_window(64 << 30))
    out["nodes_that_fit"] = {
        f"sparse_1.5T (cap {fit_cap})": nodes_that_fit(SIZES["1.5T"], None, fit_cap),
        "one_mapping_1.5T": nodes_that_fit(SIZES["1.5T"], one_window(SIZES["1.5T"]), fit_cap),
        "one_mapping_4T": nodes_that_fit(SIZES["4T"], one_window(SIZES["4T"]), fit_cap),
    }
    return out


def _render(result: dict) -> str:
    lines = ["node memory"]
    for key, value in result.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines.extend(f"    {k:<36} {v:>12,.1f}" if isinstance(v, float) else f"    {k:<36} {v:>12,}"
                         for k, v in value.items())
        else:
            lines.append(f"  {key:<40} {value:>12,.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        result = node_memory()
    except XlatError as e:
        sys.exit(f"bench_node_memory: {e}")
    print(json.dumps(result) if "--json" in sys.argv else _render(result))
