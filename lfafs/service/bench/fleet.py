"""``lfafs bench fleet``: a fleet's start, memory, a wave on a mock clock, FUSE reads, status.

docs/performance.md, 'Fleet' records the output. The targets are for
10,000 nodes, which this machine (2 cores, 24 GB) runs: the default.
``LFAFS_BENCH_FLEET_NODES`` runs fewer, and each figure is then also scaled
to 10,000 linearly, saying so (every part of it, building nodes, their
memory, a wave's activations in one Trio loop, the status of every node, is
a per-node cost). The FUSE read rate is measured as is, per shard.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time

import trio
import trio.testing

TARGET_NODES = 10_000
SHARDS = 2  # one per core


def _description(path: str, nodes: int, *, latency: float | None = None) -> None:
    fault = (f'\n[[fault]]\ncomponent = "rmm"\nat = "activate"\nlatency = {{ fixed = {latency} }}\n'
             if latency else "")
    with open(path, "w") as f:
        f.write(f'[fleet]\nseed = 1\nshards = {SHARDS}\n[[cohort]]\nname = "node"\ncount = {nodes}\n'
                f'labels = {{ model = "vera" }}\n[[cohort.update]]\ncomponent = "rmm"\nversion = "1.0"\n{fault}')


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _reads_per_second(paths: list[str], threads: int, seconds: float = 2.0) -> float:
    """open/read/close of attribute files by ``threads`` threads for ``seconds``: operations per second."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def reader(k: int) -> None:
        i, n = k, 0
        while time.monotonic() < stop:
            fd = os.open(paths[i % len(paths)], os.O_RDONLY)
            os.read(fd, 4096)
            os.close(fd)
            i += threads
            n += 1
        counts[k] = n

    ts = [threading.Thread(target=reader, args=(k,)) for k in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


_READER = """
import os, sys, threading, time
paths, threads, stop = sys.argv[2:], int(sys.argv[1]), time.monotonic() + 2.0
counts = [0] * threads
def r(k):
    n = 0
    while time.monotonic() < stop:
        fd = os.open(paths[(n + k) % len(paths)], os.O_RDONLY); os.read(fd, 4096); os.close(fd); n += 1
    counts[k] = n
ts = [threading.Thread(target=r, args=(k,)) for k in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts) / 2.0)
"""


def _reads_in_namespace(root: str, node: str, rmm: str) -> float:
    """What an agent sees: /sys/firmware bound to the node's tree (lfafs fleet run), 4 reader threads."""
    import subprocess
    import sys

    from lfafs.fleet import namespaces
    from lfafs.fleet.layout import Layout

    tree = namespaces.node_tree(Layout(root), node)
    files = [f"/sys/firmware/lfa/{rmm}/{a}" for a in ("name", "current_version", "activation_capable")]
    best = 0.0
    for _ in range(2):
        r = subprocess.run(namespaces.command_line(tree, [sys.executable, "-c", _READER, "4", *files]),
                           capture_output=True, text=True, check=True)
        best = max(best, float(r.stdout))
    return best


def _up_reads_status(nodes: int) -> dict:
    from lfafs.fleet import supervisor
    from lfafs.fleet.client import FleetClient
    from lfafs.fleet.layout import Layout

    tmp = tempfile.mkdtemp(prefix="lfafs-bench-fleet-")
    desc = os.path.join(tmp, "fleet.toml")
    _description(desc, nodes)
    root = os.path.join(tmp, "root")
    out: dict = {}
    t0 = time.perf_counter()
    supervisor.up(desc, root, timeout=1800)
    out["up_s"] = time.perf_counter() - t0
    try:
        procs = supervisor.shard_processes(Layout(root))
        shard_rss = [_rss_kb(p["pid"]) for p in procs.values()]
        out["rss_total_mb"] = sum(shard_rss) / 1024
        rmm = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
        ids = sorted(os.listdir(os.path.join(root, "shards", "0", "nodes")))[:200]
        names = [os.path.join(root, "shards", "0", "nodes", n, "lfa", rmm, "name") for n in ids]
        pending = [os.path.join(root, "shards", "0", "nodes", n, "lfa", rmm, "activation_pending") for n in ids]
        out["reads_per_s_1_reader"] = max(_reads_per_second(names, 1) for _ in range(2))
        out["reads_per_s_4_readers"] = max(_reads_per_second(names, 4) for _ in range(2))
        out["smc_reads_per_s_4_readers"] = _reads_per_second(pending, 4)
        out["reads_per_s_in_a_node_namespace"] = _reads_in_namespace(root, ids[0], rmm)
        client = FleetClient.at_root(root)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            st = client.status()
            best = min(best, time.perf_counter() - t0)
        assert len(st["nodes"]) == nodes
        out["status_s"] = best
    finally:
        supervisor.down(root)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _wave(nodes: int, latency: float = 10.0) -> dict:
    """Every node activates at once, each with ``latency`` s of modelled activation, on a mock clock."""
    from lfafs.fleet.description import load
    from lfafs.fleet.roster import Roster
    from lfafs.fleet.shard import Shard

    tmp = tempfile.mkdtemp(prefix="lfafs-bench-wave-")
    desc = os.path.join(tmp, "fleet.toml")
    _description(desc, nodes, latency=latency)
    roster = Roster(load(desc), 1)
    out: dict = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            shard = Shard(roster, 0, clock="virtual")
            t0 = time.perf_counter()
            await shard.boot(nursery)
            out["build_ms_per_node_in_process"] = (time.perf_counter() - t0) * 1e3 / nodes
            results: list[int] = []

            async def one(node) -> None:
                guid = node.platform.component("rmm").guid
                try:
                    await node.ops._driver.write(guid, "activate", b"1\n")  # the sysfs write's path
                    results.append(0)
                except OSError as e:
                    results.append(e.errno)

            v0, t0 = trio.current_time(), time.perf_counter()
            async with trio.open_nursery() as wave:
                for node in shard.nodes.values():
                    wave.start_soon(one, node)
            out["wave_wall_s"] = time.perf_counter() - t0
            out["wave_virtual_s"] = trio.current_time() - v0
            out["wave_failures"] = sum(1 for r in results if r)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _parallel_wave(nodes: int, shards: int = SHARDS) -> dict:
    """A wave split over ``shards`` processes running at once, as a fleet's shards do."""
    import json
    import subprocess
    import sys

    code = "import json, sys; from lfafs.service.bench.fleet import _wave; print(json.dumps(_wave(int(sys.argv[1]))))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(nodes // shards)], stdout=subprocess.PIPE, text=True)
             for _ in range(shards)]
    results = [json.loads(p.communicate()[0]) for p in procs]
    return {"wave_wall_s_2_shards": max(r["wave_wall_s"] for r in results),
            "wave_virtual_s_2_shards": max(r["wave_virtual_s"] for r in results),
            "wave_failures": sum(r["wave_failures"] for r in results),
            "build_ms_per_node_in_process": max(r["build_ms_per_node_in_process"] for r in results)}


def fleet(nodes: int | None = None) -> dict:
    """The fleet figures at N nodes (10,000 unless told), against the issue's targets for 10,000.

    With fewer nodes each figure is also scaled to 10,000 linearly and the targets are judged
    on the scaled figures, marked so; at 10,000 they are judged on what was measured.
    """
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        raise SystemExit("lfafs bench fleet: needs root and /dev/fuse to mount")
    n = nodes or int(os.environ.get("LFAFS_BENCH_FLEET_NODES", str(TARGET_NODES)))
    out: dict = {"nodes": n, "shards": SHARDS}  # the default profile, fvp-den0147: 2 GB DRAM, 4 CPUs
    out.update(_up_reads_status(n))
    out.update(_parallel_wave(n))
    out["rss_per_node_mb"] = out["rss_total_mb"] / n
    scale = TARGET_NODES / n
    at = {
        "up_s": out["up_s"] * scale,
        "rss_total_gb": out["rss_total_mb"] * scale / 1024,
        "wave_wall_s_2_shards": out["wave_wall_s_2_shards"] * scale,
        "status_s": out["status_s"] * scale,
    }
    how = "measured" if n == TARGET_NODES else f"scaled from {n}"
    out["at_10000"] = {"how": how, **at}
    out["targets"] = {
        f"up of 10,000 <= 60 s ({how})": at["up_s"] <= 60,
        f"RSS of 10,000 <= 16 GB ({how})": at["rss_total_gb"] <= 16,
        f"10,000-node wave <= 15 s wall, virtual time, 2 shards ({how})": at["wave_wall_s_2_shards"] <= 15,
        ">= 4,000 reads/s per shard through FUSE": max(out["reads_per_s_4_readers"],
                                                      out["reads_per_s_in_a_node_namespace"]) >= 4000,
        f"status of 10,000 <= 1 s ({how})": at["status_s"] <= 1,
    }
    return out
