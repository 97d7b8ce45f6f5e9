"""NVIDIA's kernel trees for Vera, each a kernel flavour of its own (lfafs/driver/abi.py).

nvidia-v3 is NVIDIA/NV-Kernels drivers/firmware/smccc/lfa_fw.c @08ba8802aa8e (v3
plus the downstream follow-ups of pull request 484); nvidia-v1 is the same file
@304b72b495fb (v1 plus NVIDIA's patches). docs/sysfs-abi.md, "Versions".
"""

from __future__ import annotations

import errno

import pytest
import trio

from lfafs.driver.lfa import DriverError, platform_conduit
from lfafs.platform import Platform
from lfafs.smccc import LFA_CALL_AGAIN, Fid, LfaStatus, u64

from .conftest import BL31_GUID, BL33_GUID, PROFILE, RMM_GUID, SP1_GUID, Rig, make_rig

SP2_GUID = "c3ff2127-7e41-a9f8-05af-24a1afa33474"


async def _staged(rig, comp: str, guid: str, version=(2, 0)) -> None:
    rig.platform.stage(comp, version=version)
    await rig.read(guid, "activation_pending")  # the agent learns of it at GET_INVENTORY


@pytest.mark.parametrize(("abi", "second", "primes"), [("v3", errno.ECANCELED, 2), ("nvidia-v3", errno.EBUSY, 1)])
async def test_a_second_activate_writer(nursery, autojump_clock, abi, second, primes):
    # NV-Kernels @08ba8802aa8e, activate_store(): mutex_trylock(&lfa_activation_lock) fails, so
    # -EBUSY at once. Upstream serialises nothing: the agent's lock answers the second PRIME
    # with LFA_BUSY, and the write fails with ECANCELED.
    rig = await make_rig(nursery, abi=abi)
    await _staged(rig, "rmm", RMM_GUID)
    await _staged(rig, "sp1", SP1_GUID)
    rig.platform.inject("rmm", "load", latency=5)
    seen = {}

    async def first():
        seen["first"] = await rig.write(RMM_GUID, "activate")

    async with trio.open_nursery() as n:
        n.start_soon(first)
        await trio.sleep(1)
        t0 = trio.current_time()
        with pytest.raises(DriverError) as e:
            await rig.write(SP1_GUID, "activate")
        seen["second"], seen["waited"] = e.value.errno, trio.current_time() - t0
    assert seen == {"first": 2, "second": second, "waited": 0}
    assert len(rig.smcs("LFA_PRIME")) == primes


async def test_nvidia_v3_answers_enoent_for_a_stale_image_without_an_smc(nursery, monkeypatch):
    # NV-Kernels @08ba8802aa8e: activation_pending_show() returns update_fw_image_pending()'s
    # -ENOENT, lfa_cancel() returns -ENOENT before its SMC, pending_version_show() prints N/A,
    # prime_fw_image() aborts with -ENOENT (so `activate` fails with ECANCELED, no PRIME).
    monkeypatch.setattr("lfafs.driver.lfa.REMOVAL_DELAY", 3600)  # keep the stale directory
    rig = await make_rig(nursery, abi="nvidia-v3")
    rig.platform.remove_component("sp2")
    await rig.driver.update_fw_images_tree()
    assert rig.driver.images[SP2_GUID].seq_id == -1
    before = len(rig.platform.trace.records())
    for attr, err in (("activation_pending", errno.ENOENT),):
        with pytest.raises(DriverError) as e:
            await rig.read(SP2_GUID, attr)
        assert e.value.errno == err
    assert await rig.read(SP2_GUID, "pending_version") == b"N/A\n"
    for attr, err in (("cancel", errno.ENOENT), ("activate", errno.ECANCELED)):
        with pytest.raises(DriverError) as e:
            await rig.write(SP2_GUID, attr)
        assert e.value.errno == err
    assert rig.platform.trace.records()[before:] == []


async def test_upstream_v3_asks_the_agent_about_a_stale_image(nursery, monkeypatch):
    monkeypatch.setattr("lfafs.driver.lfa.REMOVAL_DELAY", 3600)
    rig = await make_rig(nursery, abi="v3")
    rig.platform.remove_component("sp2")
    await rig.driver.update_fw_images_tree()
    assert await rig.read(SP2_GUID, "activation_pending") == b"0\n"
    with pytest.raises(DriverError) as e:
        await rig.write(SP2_GUID, "cancel")
    assert e.value.errno == errno.EINVAL
    assert [r.args[0] for r in rig.smcs("LFA_CANCEL")] == [u64(-1)]


class _PrimeStartsThenFails:
    """A conduit whose agent accepts the first PRIME with call-again, then fails the next one."""

    def __init__(self, inner) -> None:
        self.inner, self.primes = inner, 0

    async def smc(self, cpu, fid, x1=0, *rest):
        if fid == Fid.LFA_PRIME:
            self.primes += 1
            if self.primes == 1:
                r = list(await self.inner.smc(cpu, fid, x1, *rest))  # the agent primes the image
                r[1] = LFA_CALL_AGAIN
                return r
            return (u64(LfaStatus.DEVICE_ERROR), 0, 0, 0, 0, 0)
        return await self.inner.smc(cpu, fid, x1, *rest)

    def online_cpus(self):
        return self.inner.online_cpus()

    def hold(self, cpu):
        return self.inner.hold(cpu)


@pytest.mark.parametrize(("abi", "cancels"), [("v3", 0), ("nvidia-v3", 1)])
async def test_a_prime_error_after_prime_started(nursery, abi, cancels):
    # NV-Kernels @08ba8802aa8e, prime_fw_image(): once a PRIME call has succeeded
    # (prime_started), a later PRIME error is followed by lfa_cancel(). Upstream v3 returns
    # the status with no CANCEL (prime_fw_image(), v3 3/8 context).
    from lfafs.driver import LfaDriver

    p = Platform.from_profile(PROFILE)
    conduit = _PrimeStartsThenFails(platform_conduit(p))
    d = LfaDriver(conduit, abi=abi)
    await d.probe(nursery)
    rig = Rig(p, d)
    await _staged(rig, "rmm", RMM_GUID)
    with pytest.raises(DriverError) as e:
        await rig.write(RMM_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert len(rig.smcs("LFA_CANCEL")) == cancels
    if cancels:
        assert d.klog.messages()[-1] == "Arm LFA: Activation cancelled for image TF-RMM"


@pytest.mark.parametrize(("abi", "events"), [("v3", 0), ("nvidia-v3", 2)])
async def test_nvidia_v3_sends_a_change_uevent_after_probe_and_each_rescan(nursery, abi, events):
    # NV-Kernels @08ba8802aa8e: lfa_smccc_probe() queues the removal work once the inventory
    # is settled, and remove_invalid_fw_images() ends with lfa_notify_inventory_update(), a
    # KOBJ_CHANGE on the SMCCC bus device. Upstream sends no uevent.
    rig = await make_rig(nursery, abi=abi)
    await trio.sleep(0.01)
    await _staged(rig, "rmm", RMM_GUID)
    await rig.write(RMM_GUID, "activate")
    await trio.sleep(0.01)
    uevents = list(rig.driver.klog.uevents)
    assert len(uevents) == events
    if events:
        assert {(u.action, u.devpath, u.subsystem) for u in uevents} == {
            ("change", "/devices/arm-smccc-lfa-1", "arm_smccc")}
        assert str(uevents[0]).endswith("change   /devices/arm-smccc-lfa-1 (arm_smccc)")


@pytest.mark.parametrize(("abi", "names"), [
    ("nvidia-v1", {BL31_GUID: BL31_GUID, BL33_GUID: BL33_GUID, RMM_GUID: "TF-RMM", SP1_GUID: SP1_GUID}),
    ("v1", {BL31_GUID: "TF-A BL31 runtime", BL33_GUID: "BL33 non-secure payload", RMM_GUID: "TF-RMM",
            SP1_GUID: "(unknown)"}),
])
async def test_nvidia_v1_names_only_the_last_table_entry(nursery, abi, names):
    # NV-Kernels @304b72b495fb, update_fw_image_node(): the lookup loop assigns the table name
    # or the GUID on every entry and never breaks, so only TF-RMM, the last entry, keeps its name.
    rig = await make_rig(nursery, abi=abi)
    assert {g: (await rig.read(g, "name")).decode().rstrip("\n") for g in names} == names


async def test_nvidia_v1_gives_up_activate_after_20s(nursery, autojump_clock):
    # NV-Kernels @304b72b495fb, call_lfa_activate(): call-again is polled within
    # LFA_ACTIVATE_BUDGET_US (20 s); then activate_fw_image() returns lfa_cancel()'s result
    # (here the agent refuses to cancel an activation in progress: LFA_BUSY, so -EINVAL).
    rig = await make_rig(nursery, abi="nvidia-v1")
    await _staged(rig, "sp1", SP1_GUID)
    rig.platform.inject("sp1", "activate", call_again=10**6, beyond_tf_a=True)
    t0 = trio.current_time()
    with pytest.raises(DriverError) as e:
        await rig.write(SP1_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert 20 <= trio.current_time() - t0 < 20.1
    assert len(rig.smcs("LFA_CANCEL")) == 1
