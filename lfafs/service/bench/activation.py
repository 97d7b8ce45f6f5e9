"""``lfafs bench activation``: RMM live activation time against the number of dynamically mapped pages.

docs/performance.md, 'RMM live activation' records the output.
"""

from __future__ import annotations

import array
import gc
import time

import trio

from lfafs.platform import DEFAULT_PROFILE, Platform
from lfafs.service.bench.native import RW
from lfafs.smccc import Fid
from lfafs.xlat import PAGE


def activation_seconds(rounds: int, *, cpus: int = 4, pages: int = 0) -> float:
    """Best wall time of ``rounds`` RMM activations on ``cpus`` CPUs after ``pages`` one-page dynamic maps.

    Every CPU issues ACTIVATE from its own Trio task, as the driver's stop_machine does.
    """
    platform = Platform.from_profile(DEFAULT_PROFILE, cpus=cpus)
    if pages:
        platform.rmmd.rmm.dyn.map_batch(array.array("Q", [0x1_0000_0000] * pages), PAGE, RW)
    rmm = platform.component("rmm")

    async def one_round() -> float:
        platform.stage("rmm", version=(rmm.version[0], rmm.version[1] + 1))
        assert (await platform.smc(Fid.LFA_GET_INVENTORY, rmm.index)).x0 == 0
        assert (await platform.smc(Fid.LFA_PRIME, rmm.index)).x0 == 0
        results = []

        async def cpu(n: int) -> None:
            results.append((await platform.smc(Fid.LFA_ACTIVATE, rmm.index, cpu=n)).x0)

        gc.collect()
        gc.disable()  # a collection inside one round would swamp a millisecond
        try:
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for n in range(cpus):
                    nursery.start_soon(cpu, n)
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        assert results == [0] * cpus, results
        assert platform.last_report.dynamic_pages_preserved >= pages
        return dt

    async def run() -> float:
        return min([await one_round() for _ in range(rounds)])

    return trio.run(run)


ACTIVATION_PAGES = (0, 1_000, 100_000, 250_000)


def activation(repeat: int = 5, rounds: int = 10) -> dict:
    """RMM activation time against the number of dynamically mapped pages.

    Each figure is the best of ``repeat`` platforms x ``rounds`` activations;
    the sizes are interleaved so that drift of the machine hits them alike.
    """
    best = {n: float("inf") for n in ACTIVATION_PAGES}
    for _ in range(repeat):
        for n in ACTIVATION_PAGES:
            best[n] = min(best[n], activation_seconds(rounds, pages=n))
    out: dict = {f"activation_ms_{n}_pages": best[n] * 1e3 for n in ACTIVATION_PAGES}
    out["ratios"] = {f"{n}_over_0": best[n] / best[0] for n in ACTIVATION_PAGES[1:]}
    out["targets"] = {"250000_over_0 <= 1.10": out["ratios"]["250000_over_0"] <= 1.10}
    return out
