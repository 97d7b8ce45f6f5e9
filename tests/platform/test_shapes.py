"""Real server shapes: the shipped profiles boot, list their components and activate.

What each profile takes from a public source and what is inferred is
written beside each value in lfafs/platform/profiles/*.toml.
"""

from __future__ import annotations

import resource

import pytest
import trio

from lfafs.platform import Platform, ProfileError, embedded_names, load_profile
from lfafs.platform.profile import profile_from_dict
from lfafs.smccc import Fid, InventoryFlags

from .conftest import activate_on, all_cpus, call, ready, st

SHAPES = {  # profile: (CPUs, DRAM, component names)
    "vera": (176, 1536 << 30, ["rmm", "scp-fwu-cfg", "nv-0509b633", "nv-3ab71f81"]),
    "grace-superchip": (144, 960 << 30, ["bl31", "bl33"]),
    "neoverse-v2-2s": (192, 1536 << 30, ["bl31", "bl33"]),
    "ampereone": (192, 512 << 30, ["bl31", "bl33"]),
    "fvp-minimal": (8, 2 << 30, ["bl31", "bl33", "rmm"]),
}


def test_every_shape_is_shipped():
    assert set(SHAPES) <= set(embedded_names())


@pytest.mark.parametrize("name", SHAPES)
async def test_a_shape_boots_lists_and_activates(name):
    cpus, dram, names = SHAPES[name]
    p = Platform.from_profile(name)
    assert (p.ncpus, p.profile.dram_size, [c.name for c in p.components]) == (cpus, dram, names)
    assert (await call(p, Fid.LFA_GET_INFO, 0)).x1 == len(names)
    target = "rmm" if "rmm" in names else "bl31"
    cid = p.component(target).index
    if p.profile.activation_pending == "staged":
        await ready(p, cid, version=(9, 1))
    else:
        await call(p, Fid.LFA_GET_INVENTORY, cid)
        assert st(await call(p, Fid.LFA_PRIME, cid)) == 0
    with trio.fail_after(30):
        results = await activate_on(p, cid, all_cpus(p), ep=0x8800_0000, ctx=7)
    assert len(results) == cpus
    if target == "rmm":
        assert {st(r) for r in results.values()} == {0}
    else:  # BL31 warm-resets every CPU into NS: x0 = the context id
        assert {r.x0 for r in results.values()} == {7}
    if p.profile.activation_pending == "staged":
        assert p.component(target).version == (9, 1)


async def test_vera_names_its_gids_as_the_kernel_lists_them_and_signals_through_acpi():
    p = Platform.from_profile("vera")
    assert p.profile.notification == "acpi"
    guids = [c.guid for c in p.components]
    assert guids == ["6c0762a6-12f2-4b56-92cb-ba8f633606d9", "65922703-2f74-e644-8dff-579ac1ff0610",
                     "0509b633-5734-422f-a681-6096e932d93a", "3ab71f81-32b9-496d-841b-e3d0e9fd1a48"]
    flags = (await call(p, Fid.LFA_GET_INVENTORY, 0)).x3
    assert flags & InventoryFlags.ACTIVATION_CAPABLE and not flags & InventoryFlags.MAY_RESET_CPU
    assert p.topology.threads == 2 and p.topology.mpidr(1) & (1 << 24)  # SMT: MT set, thread in Aff0


async def test_512_cpus_and_4_tb_from_a_custom_profile():
    end = 0x8000_0000 + (4 << 40)
    p = Platform(profile_from_dict({
        "base": "vera", "name": "big", "dram_size": "4T", "topology": {"sockets": 2, "clusters": 128, "cores": 1,
                                                                       "threads": 2},
        "rmm": {"base": end - (5 << 30), "limit": end - 0x40_1000, "va_pool_size": "8G"}}, "<big>"))
    assert p.ncpus == 512 and p.profile.dram_size == 4 << 40
    await ready(p, 0, version=(0, 10))
    with trio.fail_after(60):
        results = await activate_on(p, 0, all_cpus(p))
    assert {st(r) for r in results.values()} == {0} and p.component("rmm").version == (0, 10)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_untouched_dram_costs_no_memory():
    Platform.from_profile("grace-superchip")  # warm up imports and the native module
    before = _rss_kb()
    nodes = [Platform.from_profile("grace-superchip") for _ in range(10)]  # 9.6 TB of DRAM in all
    grown = _rss_kb() - before
    assert len(nodes) == 10 and grown < 10 * 4096, f"{grown} kB for ten 960 GB nodes"
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY or grown >= 0


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"dram_size": "5T"}, "dram_size", "64 MB..4 TB"),
    ({"dram_size": "1001M"}, "dram_size", "2 MB aligned"),
    ({"dram_base": 0xFFFF_0000_0000}, "dram_base", "below 2**48"),
    ({"dram_size": "32M"}, "dram_size", "64 MB..4 TB"),
])
def test_dram_that_cannot_work_is_refused_with_the_limit(changes, field, words):
    with pytest.raises(ProfileError) as e:
        profile_from_dict({"base": "grace-superchip", **changes}, "<t>")
    assert e.value.field == field and words in str(e.value)


def test_a_machine_without_rme_needs_no_rmm_table():
    assert load_profile("ampereone").rmm is None
    with pytest.raises(ProfileError, match="rmm"):
        profile_from_dict({"base": "ampereone", "component": [
            {"name": "rmm", "guid": "6c0762a6-12f2-4b56-92cb-ba8f633606d9", "activator": "rmm", "version": "0.9"}]},
            "<t>")
