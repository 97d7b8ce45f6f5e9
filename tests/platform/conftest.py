"""Helpers for driving the emulated platform as EL3 sees it."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform import Platform
from lfafs.platform.profile import DEFAULT_PROFILE, profile_from_dict
from lfafs.smccc import Fid, s64

BL31, BL32, BL33, RMM, SP1, SP2 = range(6)  # the fvp profile's table order


@pytest.fixture
def fvp() -> Platform:
    return Platform.from_profile()


def variant(**changes) -> Platform:
    """The fvp profile with top-level fields changed."""

    cpus = changes.pop("ncpus", None)
    data = {"base": DEFAULT_PROFILE, **changes}
    return Platform(profile_from_dict(data, "<test variant>"), cpus=cpus)


async def call(p: Platform, fid: int, *args: int, cpu: int = 0, world: str = "ns"):
    return await p.smc(fid, *args, cpu=cpu, world=world)


def st(regs) -> int:
    """x0 as a signed status."""
    return s64(regs.x0)


async def ready(p: Platform, cid: int, version=(9, 9)) -> None:
    """Stage a new image, refresh pending with GET_INVENTORY and PRIME it."""
    p.stage(cid, version=version)
    assert st(await call(p, Fid.LFA_GET_INVENTORY, cid)) == 0
    r = await call(p, Fid.LFA_PRIME, cid)
    assert (st(r), r.x1) == (0, 0)


async def activate_on(p: Platform, cid: int, cpus, *, flags: int = 0, ep: int | dict = 0, ctx: int = 0) -> dict:
    """ACTIVATE on several CPUs at once, each in its own task, as stop_machine does.

    ``ep`` is every CPU's x3, or a dict of x3 by CPU.
    """
    results: dict[int, object] = {}

    async def one(cpu: int) -> None:
        x3 = ep[cpu] if isinstance(ep, dict) else ep
        results[cpu] = await p.smc(Fid.LFA_ACTIVATE, cid, flags, x3, ctx, cpu=cpu)

    async with trio.open_nursery() as n:
        for cpu in cpus:
            n.start_soon(one, cpu)
    return results


def all_cpus(p: Platform) -> list[int]:
    return [c for c in range(p.ncpus) if p.cpu_on[c]]
