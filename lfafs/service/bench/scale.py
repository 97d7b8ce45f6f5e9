"""``lfafs bench scale``: real server shapes, side by side in one run.

- RMM activation time against the CPU count (4, 16, 64, 256, 512): each CPU
  is its own Trio task meeting in the holding pen, as stop_machine's are.
- Node memory: host memory (RSS) each node adds, in-process, against its
  DRAM size (2 GB, 64 GB, 1.5 TB, 4 TB), for whole platforms (RMM booted,
  granule array reserved and zeroed as TF-RMM does).
- Mount-to-ready of the vera profile beside the default's: `lfafs mount` in
  the background until the control socket answers.

docs/performance.md, 'Server shapes' records the output with its command.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time

from lfafs.platform import DEFAULT_PROFILE, Platform
from lfafs.platform.profile import profile_from_dict
from lfafs.service.bench.activation import activation_seconds

CPU_COUNTS = (4, 16, 64, 256, 512)
DRAM_SIZES = {"2G": 2 << 30, "64G": 64 << 30, "1.5T": 1536 << 30, "4T": 4 << 40}
_BASE = 0x8000_0000


def _shape(dram: int, *, vera: bool) -> dict:
    """A profile of ``dram`` bytes: the vera shape (176 CPUs) or the default's (4 CPUs)."""
    end = _BASE + dram
    carve = max(64 << 20, dram // 2048 + (64 << 20))  # the granule array (2 B per 4 KB) plus room
    rmm = {"base": end - carve - (16 << 20), "limit": end - 0x40_1000,
           "va_pool_size": f"{max(1, -(-carve // (1 << 30)) + 1)}G"}
    if dram == 2 << 30 and not vera:
        return {"base": DEFAULT_PROFILE}
    return {"base": "vera" if vera else DEFAULT_PROFILE, "name": "shape", "dram_size": dram,
            "secure_dram_size": carve + (32 << 20), "dram2_size": 0, "rmm": rmm}


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _node_kb(dram: int, *, vera: bool, nodes: int) -> float:
    profile = profile_from_dict(_shape(dram, vera=vera), "<bench scale>")
    Platform(profile)  # warm up
    gc.collect()
    before = _rss_kb()
    kept = [Platform(profile) for _ in range(nodes)]
    grown = _rss_kb() - before
    del kept
    gc.collect()
    return grown / nodes


def _mount_to_ready(profile: str, rounds: int) -> float:
    from lfafs.service import spawn

    best = float("inf")
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            mnt = os.path.join(tmp, "firmware")
            os.mkdir(mnt)
            t0 = time.perf_counter()
            daemon = spawn.start(mnt, profile=profile)
            best = min(best, time.perf_counter() - t0)
            daemon.stop()
    return best


def scale(rounds: int = 5, nodes: int = 8, mounts: int = 3) -> dict:
    act = {n: activation_seconds(rounds, cpus=n) for n in CPU_COUNTS}
    out: dict = {f"activation_ms_{n}_cpus": act[n] * 1e3 for n in CPU_COUNTS}
    out["node_kB"] = {f"default_{k}": _node_kb(v, vera=False, nodes=nodes) for k, v in DRAM_SIZES.items()}
    out["node_kB"].update({f"vera_{k}": _node_kb(v, vera=True, nodes=nodes) for k, v in DRAM_SIZES.items()})
    out["mount_to_ready_s"] = {"default": _mount_to_ready(DEFAULT_PROFILE, mounts),
                               "vera": _mount_to_ready("vera", mounts)}
    out["ratios"] = {"activation_512_over_64": act[512] / act[64],
                     "node_4T_over_2G_vera": out["node_kB"]["vera_4T"] / max(out["node_kB"]["vera_2G"], 1.0),
                     "mount_vera_over_default": out["mount_to_ready_s"]["vera"] / out["mount_to_ready_s"]["default"]}
    out["targets"] = {
        "activation 256 CPUs <= 20 ms": act[256] * 1e3 <= 20,
        "activation 512/64 <= 9.6": act[512] / act[64] <= 9.6,
        "default 2 GB node <= 3 MB": out["node_kB"]["default_2G"] <= 3 * 1024,
        "vera 1.5 TB node <= 10 MB": out["node_kB"]["vera_1.5T"] <= 10 * 1024,
        "vera mount-to-ready <= 0.5 s": out["mount_to_ready_s"]["vera"] <= 0.5,
    }
    return out
