"""The lfa_fw.c model against the emulated platform (docs/sysfs-abi.md, "The tree" to "Rescan")."""

from __future__ import annotations

import errno

import pytest
import trio

from lfafs.driver.kstrtobool import kstrtobool
from lfafs.driver.lfa import DriverError

from .conftest import BL31_GUID, BL33_GUID, RMM_GUID, SP1_GUID, make_rig


async def test_probe_lists_every_component_by_guid(rig):
    assert list(rig.driver.images) == [
        BL31_GUID, "05d0e189-53dc-1347-8d2b-500a4b7a3e38", BL33_GUID, RMM_GUID, SP1_GUID,
        "c3ff2127-7e41-a9f8-05af-24a1afa33474"]
    assert rig.driver.klog.text()[0].endswith("Arm LFA: Live Firmware Activation: detected v1.0")


@pytest.mark.parametrize(("abi", "name"), [("v3", SP1_GUID), ("v2", ""), ("v1", "(unknown)")])
async def test_names(nursery, abi, name):
    rig = await make_rig(nursery, abi=abi)
    assert await rig.read(RMM_GUID, "name") == b"TF-RMM\n"
    assert await rig.read(BL31_GUID, "name") == b"TF-A BL31 runtime\n"
    assert await rig.read(BL33_GUID, "name") == b"BL33 non-secure payload\n"
    assert await rig.read(SP1_GUID, "name") == name.encode() + b"\n"


async def test_file_sets(nursery):
    v1 = await make_rig(nursery, abi="v1")
    v3 = await make_rig(nursery, abi="v3")
    assert len(v3.driver.files()) == 11 and "auto_activate" in v3.driver.files()
    assert len(v1.driver.files()) == 10 and "auto_activate" not in v1.driver.files()


async def test_flags_and_versions(rig):
    assert await rig.read(RMM_GUID, "activation_capable") == b"1\n"
    assert await rig.read(RMM_GUID, "cpu_rendezvous") == b"1\n"
    assert await rig.read(SP1_GUID, "cpu_rendezvous") == b"0\n"
    assert await rig.read(BL31_GUID, "may_reset_cpu") == b"1\n"
    assert await rig.read(BL33_GUID, "activation_capable") == b"0\n"
    assert await rig.read(RMM_GUID, "current_version") == b"0.9\n"
    assert await rig.read(RMM_GUID, "pending_version") == b"N/A\n"
    assert await rig.read(RMM_GUID, "force_cpu_rendezvous") == b"1\n"
    assert await rig.read(RMM_GUID, "auto_activate") == b"0\n"


async def test_activation_pending_is_fresh_and_capable_is_cached(rig):
    assert await rig.read(RMM_GUID, "activation_pending") == b"0\n"
    rig.platform.stage("rmm", version=(1, 2))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    assert await rig.read(RMM_GUID, "activation_pending") == b"1\n"  # no rescan needed
    assert await rig.read(RMM_GUID, "pending_version") == b"1.2\n"


@pytest.mark.parametrize("text", [b"0", b"n", b"N", b"f", b"false\n", b"d", b"off", b"OFF\n", b"no"])
async def test_kstrtobool_false(text):
    assert kstrtobool(text) is False


@pytest.mark.parametrize("text", [b"1", b"y", b"yes\n", b"t", b"true", b"e", b"E", b"on", b"On\n"])
async def test_kstrtobool_true(text):
    assert kstrtobool(text) is True


@pytest.mark.parametrize("text", [b"2", b"x", b"-1", b"o", b" 1", b"", b"\n"])
async def test_kstrtobool_errors(text):
    with pytest.raises(ValueError):
        kstrtobool(text)


async def test_bad_boolean_writes_are_einval_and_change_nothing(rig):
    with pytest.raises(DriverError) as e:
        await rig.write(RMM_GUID, "force_cpu_rendezvous", b"2\n")
    assert e.value.errno == errno.EINVAL
    assert await rig.read(RMM_GUID, "force_cpu_rendezvous") == b"1\n"
    assert await rig.write(RMM_GUID, "auto_activate", b"on\n") == 3
    assert await rig.read(RMM_GUID, "auto_activate") == b"1\n"
    assert await rig.write(RMM_GUID, "auto_activate", b"") == 0


async def test_activate_runs_prime_activate_rescan(rig):
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    assert await rig.write(RMM_GUID, "activate", b"0") == 1  # content ignored
    assert await rig.read(RMM_GUID, "current_version") == b"1.0\n"
    assert await rig.read(RMM_GUID, "activation_pending") == b"0\n"
    assert await rig.read(RMM_GUID, "pending_version") == b"N/A\n"
    acts = rig.smcs("LFA_ACTIVATE")
    assert len(acts) == 4 and {r.cpu for r in acts} == {0, 1, 2, 3} and {r.args[1] for r in acts} == {0}
    assert rig.driver.klog.text()[-1].endswith("Arm LFA: TF-RMM: successfully activated")


async def test_activate_without_a_pending_update_is_ecanceled(rig):
    with pytest.raises(DriverError) as e:
        await rig.write(RMM_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert rig.smcs("LFA_CANCEL") == []  # no CANCEL after a PRIME error


async def test_may_reset_cpu_is_refused_without_prime(rig):
    rig.platform.stage("bl31", version=(3, 0))
    await rig.read(BL31_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    with pytest.raises(DriverError) as e:
        await rig.write(BL31_GUID, "activate")
    assert e.value.errno == errno.ECANCELED and rig.smcs("LFA_PRIME") == []


async def test_failed_activate_cancels_once(rig):
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.inject("sp1", "activate", status="LFA_DEVICE_ERROR", once=True)
    with pytest.raises(DriverError) as e:
        await rig.write(SP1_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert len(rig.smcs("LFA_CANCEL")) == 1


async def test_v1_reports_a_failed_activate_as_success_when_cancel_succeeds(nursery):
    rig = await make_rig(nursery, abi="v1")
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.inject("sp1", "activate", status="LFA_DEVICE_ERROR", once=True)
    assert await rig.write(SP1_GUID, "activate") == 2
    assert await rig.read(SP1_GUID, "current_version") == b"1.0\n"


async def test_skip_flag_only_when_both_say_so(rig):
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.write(SP1_GUID, "activate")
    assert {r.args[1] for r in rig.smcs("LFA_ACTIVATE")} == {0} and len(rig.smcs("LFA_ACTIVATE")) == 4
    await rig.write(SP1_GUID, "force_cpu_rendezvous", b"0\n")
    rig.platform.stage("sp1", version=(3, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.write(SP1_GUID, "activate")
    last = rig.smcs("LFA_ACTIVATE")[-1]
    assert last.args[1] == 1 and len(rig.smcs("LFA_ACTIVATE")) == 5


async def test_forcing_off_has_no_effect_where_firmware_requires_rendezvous(rig):
    await rig.write(RMM_GUID, "force_cpu_rendezvous", b"0\n")
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")
    await rig.write(RMM_GUID, "activate")
    acts = rig.smcs("LFA_ACTIVATE")
    assert len(acts) == 4 and {r.args[1] for r in acts} == {0}


async def test_after_an_sp_activation_the_agent_stays_claimed_until_cancel(rig):
    # TF-A leaves {sp, COMPLETE} after an SP activation (docs/smc-abi.md), so
    # PRIME of another component does not switch, and its ACTIVATE fails.
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")
    await rig.write(SP1_GUID, "activate")
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")
    with pytest.raises(DriverError) as e:
        await rig.write(RMM_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert await rig.write(SP1_GUID, "cancel") == 2
    assert await rig.write(RMM_GUID, "activate") == 2


async def test_prime_call_again_times_out_after_30s(rig, autojump_clock):
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.inject("sp1", "load", call_again=100_000)
    t0 = trio.current_time()
    with pytest.raises(DriverError) as e:
        await rig.write(SP1_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    assert 30 <= trio.current_time() - t0 < 30.1
    primes = rig.smcs("LFA_PRIME")
    assert 2900 < len(primes) < 3100  # about every 10 ms
    assert len(rig.smcs("LFA_CANCEL")) == 1


async def test_activate_call_again_times_out_after_10s(rig, autojump_clock):
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.inject("sp1", "activate", call_again=100_000, beyond_tf_a=True)  # DEN0147 allows it
    t0 = trio.current_time()
    with pytest.raises(DriverError):
        await rig.write(SP1_GUID, "activate")
    assert 10 <= trio.current_time() - t0 < 10.1
    assert len(rig.smcs("LFA_CANCEL")) == 1


@pytest.mark.parametrize(("abi", "ok"), [("v3", True), ("v2", False)])
async def test_v3_retries_busy_from_activate(nursery, autojump_clock, abi, ok):
    rig = await make_rig(nursery, abi=abi)
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.write(SP1_GUID, "force_cpu_rendezvous", b"0")
    rig.platform.inject("sp1", "activate", status="LFA_BUSY")

    async def clear_later():
        await trio.sleep(1)
        rig.platform.clear_faults()

    nursery.start_soon(clear_later)
    if ok:
        assert await rig.write(SP1_GUID, "activate") == 2
    else:
        with pytest.raises(DriverError):
            await rig.write(SP1_GUID, "activate")


async def test_cancel(rig):
    with pytest.raises(DriverError) as e:
        await rig.write(RMM_GUID, "cancel")
    assert e.value.errno == errno.EINVAL
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.read(RMM_GUID, "activation_pending")
    from lfafs.smccc import Fid

    await rig.platform.smc(Fid.LFA_PRIME, 3)
    assert await rig.write(RMM_GUID, "cancel", b"x") == 1


async def test_rescan_keeps_settings_adds_and_removes(tmp_path, nursery):
    from lfafs.platform import Platform

    p = Platform.from_profile("fvp")
    rig = await make_rig(nursery, platform=p)
    await rig.write(RMM_GUID, "force_cpu_rendezvous", b"0")
    await rig.write(RMM_GUID, "auto_activate", b"1")
    # the next scan will not see sp2 and will see a new component
    import uuid

    from lfafs.platform.plat_lfa import Component
    from lfafs.platform.profile import ComponentSpec

    new = ComponentSpec(name="scp", guid=uuid.UUID("11111111-2222-3333-4444-555555555555"), activator="none",
                        version=(1, 0), may_reset_cpu=False, cpu_rendezvous_required=False)
    p.components[5] = Component(index=5, spec=new, version=(1, 0))  # no activator
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.write(RMM_GUID, "activate")
    imgs = rig.driver.images
    assert "11111111-2222-3333-4444-555555555555" in imgs  # there when the write returns
    assert imgs[RMM_GUID].force_cpu_rendezvous is False and imgs[RMM_GUID].auto_activate is True
    gone = "c3ff2127-7e41-a9f8-05af-24a1afa33474"
    if gone in imgs:  # until the queued removal runs it reads as stale
        assert await rig.read(gone, "activation_capable") == b"0\n"
        assert await rig.read(gone, "cpu_rendezvous") == b"0\n"
        assert await rig.read(gone, "current_version") == b"0.0\n"
    await trio.sleep(0.01)
    assert gone not in rig.driver.images


async def test_reads_of_pending_block_during_activation(rig, autojump_clock):
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.inject("rmm", "activate", latency=5)
    seen = {}

    async def activate():
        await rig.write(RMM_GUID, "activate")
        seen["activated_at"] = trio.current_time()

    async with trio.open_nursery() as n:
        n.start_soon(activate)
        await trio.sleep(1)
        t = trio.current_time()
        assert await rig.read(RMM_GUID, "current_version") == b"0.9\n"  # cached: no wait
        seen["cached_wait"] = trio.current_time() - t
        seen["pending"] = await rig.read(RMM_GUID, "activation_pending")
        seen["pending_at"] = trio.current_time()
    assert seen["cached_wait"] == 0
    assert seen["pending"] == b"0\n" and seen["pending_at"] >= 5


async def test_notification_activates_auto_images_one_at_a_time(rig):
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.driver.notify()
    assert rig.platform.component("rmm").version == (0, 9)  # auto_activate defaults to 0
    await rig.write(RMM_GUID, "auto_activate", b"1")
    await rig.write(SP1_GUID, "auto_activate", b"1")
    await rig.driver.notify()
    assert rig.platform.component("rmm").version == (1, 0)
    assert rig.platform.component("sp1").version == (2, 0)
    assert any("automatic activation succeeded" in line for line in rig.driver.klog.text())


async def test_notification_stops_at_the_first_failure(rig):
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    await rig.write(RMM_GUID, "auto_activate", b"1")
    await rig.write(SP1_GUID, "auto_activate", b"1")
    rig.platform.inject("rmm", "activate", status="LFA_ACTIVATION_FAILED")
    await rig.driver.notify()
    assert rig.platform.component("sp1").version == (1, 0)
    assert "notified image activation failed" in rig.driver.klog.text()[-1]


async def test_no_lfa_means_no_directory(nursery):
    class Dead:
        async def smc(self, cpu, fid, *a):
            return (2**64 - 1, 0, 0, 0, 0, 0)

        def online_cpus(self):
            return [0]

    from lfafs.driver import LfaDriver

    d = LfaDriver(Dead())
    assert await d.probe(nursery) is False and not d.present


async def test_seq_ids_follow_the_guid_after_a_rescan(rig):
    img = rig.driver.images[RMM_GUID]
    assert img.seq_id == 3
    rig.platform.components.insert(0, rig.platform.components.pop(3))  # firmware reorders its table
    for i, c in enumerate(rig.platform.components):
        c.index = i
    await rig.driver.update_fw_images_tree()
    assert img.seq_id == 0
    rig.platform.stage("rmm", version=(1, 0))
    await rig.read(RMM_GUID, "activation_pending")  # the agent learns of it at GET_INVENTORY
    assert await rig.read(RMM_GUID, "activation_pending") == b"1\n"


async def test_a_failed_inventory_at_scan_leaves_no_directory(nursery):
    from lfafs.driver import LfaDriver
    from lfafs.driver.lfa import platform_conduit
    from lfafs.platform import Platform
    from lfafs.smccc import Fid

    p = Platform.from_profile("fvp")
    inner = platform_conduit(p, online=lambda: [0, 1, 2, 3])

    class Flaky:
        async def smc(self, cpu, fid, x1=0, *rest):
            if fid == Fid.LFA_GET_INVENTORY and x1 == 4:
                return (2**64 - 8, x1, 0, 0, 0, 0)  # INVALID_PARAMETERS for seq 4
            return await inner.smc(cpu, fid, x1, *rest)

        def online_cpus(self):
            return inner.online_cpus()

        def hold(self, cpu):
            return inner.hold(cpu)

    d = LfaDriver(Flaky())
    assert await d.probe(nursery)
    assert SP1_GUID not in d.images and len(d.images) == 5
