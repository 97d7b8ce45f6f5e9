"""Notifications, automatic activation and the kernel log of a failed activation.

docs/sysfs-abi.md, "Notifications" and "Kernel log". The v3 patches cited are
the series of 2026-07-06, message ids 20260706134455.132091-N-andre.przywara@arm.com.
"""

from __future__ import annotations

import errno

import pytest

from lfafs.driver.lfa import DriverError
from lfafs.smccc import INVALID_COMPONENT, LfaStatus, u64

from .conftest import BL31_GUID, RMM_GUID, SP1_GUID, make_rig

BANNER = "Arm LFA: Live Firmware Activation: detected v1.0"


@pytest.mark.parametrize(("source", "line"), [("acpi", "Arm LFA: registered LFA ACPI notification"),
                                              ("dt", "Arm LFA: registered LFA DT notification interrupt"),
                                              (None, None)])
async def test_probe_logs_the_notification_source_the_platform_has(nursery, source, line):
    # lfa_fw.c v3, lfa_smccc_probe(): 4/8 (-5-) logs the ACPI line, 6/8 (-7-) the DT one,
    # after the banner and the first scan; without a source nothing is registered.
    rig = await make_rig(nursery, notification=source)
    assert rig.driver.klog.messages() == [BANNER] + ([line] if line else [])
    assert rig.driver.handler_registered is (line is not None)


async def test_without_a_notification_source_a_notification_runs_nothing(nursery):
    rig = await make_rig(nursery, notification=None)
    await rig.write(RMM_GUID, "auto_activate", b"1")
    rig.platform.stage("rmm", version=(1, 0))
    assert await rig.driver.notify() is False
    assert rig.smcs("LFA_PRIME") == []


async def test_v1_registers_no_notification(nursery):
    # v1 (2026-01-19) has neither the ACPI handler nor the DT interrupt; they arrive in v2.
    rig = await make_rig(nursery, abi="v1", notification="dt")
    assert rig.driver.klog.messages() == [BANNER]
    assert await rig.driver.notify() is False


async def test_a_notification_queries_every_images_pending_state_before_auto_activate(rig):
    # lfa_fw.c v3 4/8 (-5-), activate_pending_image(): the walk issues GET_INVENTORY for each
    # live image and updates its cached pending flag, then tests auto_activate (added by 5/8, -6-).
    rig.platform.stage("rmm", version=(1, 0))  # delivered out of band; nothing has asked the agent yet
    before = len(rig.smcs("LFA_GET_INVENTORY"))
    await rig.driver.notify()  # every auto_activate is 0: nothing is activated
    asked = [r.args[0] for r in rig.smcs("LFA_GET_INVENTORY")[before:]]
    assert asked == [img.seq_id for img in rig.driver.images.values()]
    assert rig.platform.component("rmm").version == (0, 9)
    # The cached flag is fresh, so pending_version shows x5, and the agent has seen the image.
    assert await rig.read(RMM_GUID, "pending_version") == b"1.0\n"
    assert await rig.write(RMM_GUID, "activate") == 2


async def test_an_automatic_activation_logs_only_that_it_succeeded(rig):
    # lfa_fw.c v3 4/8 (-5-), activate_pending_image(): "%s: automatic activation succeeded",
    # and not activate_store()'s "successfully activated".
    await rig.write(RMM_GUID, "auto_activate", b"1")
    rig.platform.stage("rmm", version=(1, 0))
    await rig.driver.notify()
    lines = rig.driver.klog.messages()
    assert lines[-1] == "Arm LFA: TF-RMM: automatic activation succeeded"
    assert not any("successfully activated" in line for line in lines)


async def _auto(rig, comp: str, guid: str, version=(2, 0)) -> None:
    await rig.write(guid, "auto_activate", b"1")
    rig.platform.stage(comp, version=version)


@pytest.mark.parametrize(("setup", "ret"), [
    ("may_reset_cpu", -errno.EINVAL),  # prime_fw_image() refuses without an SMC
    ("prime_error", -3),  # LFA_AUTH_ERROR from PRIME, as the agent returned it
    ("prime_timeout", -errno.ETIMEDOUT),  # 30 s of call-again, then a successful CANCEL
    ("activate_error", -11),  # LFA_ACTIVATION_FAILED from ACTIVATE
    ("activate_timeout", -32),  # LFA_TIMED_OUT after 10 s of call-again
])
async def test_a_failed_automatic_activation_logs_the_raw_return(rig, autojump_clock, setup, ret):
    # lfa_fw.c v3 4/8 (-5-), lfa_acpi_notify_handler(); 6/8 (-7-), the IRQ thread: both print
    # "notified image activation failed: %d" of what prime/activate returned, never -ECANCELED.
    p = rig.platform
    if setup == "may_reset_cpu":
        await _auto(rig, "bl31", BL31_GUID)
    elif setup.startswith("prime"):
        await _auto(rig, "rmm", RMM_GUID)
        p.inject("rmm", "load", **({"status": "LFA_AUTH_ERROR"} if setup == "prime_error" else {"call_again": 10**6}))
    elif setup == "activate_error":
        await _auto(rig, "rmm", RMM_GUID)
        p.inject("rmm", "activate", status="LFA_ACTIVATION_FAILED")
    else:
        await _auto(rig, "sp1", SP1_GUID)
        p.inject("sp1", "activate", call_again=10**6, beyond_tf_a=True)
    await rig.driver.notify()
    lines = rig.driver.klog.messages()
    assert lines[-1] == f"Arm LFA: notified image activation failed: {ret}"
    assert not any("-125" in line for line in lines)


async def test_a_failed_activate_logs_the_cancel_line_before_the_failure(rig):
    # lfa_fw.c v3 3/8 (-4-) context and NV-Kernels @08ba8802aa8e, activate_fw_image():
    # lfa_cancel() runs, and logs, before "LFA_ACTIVATE for image %s failed: %s".
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")
    rig.platform.inject("sp1", "activate", status="LFA_DEVICE_ERROR", once=True)
    with pytest.raises(DriverError):
        await rig.write(SP1_GUID, "activate")
    assert rig.driver.klog.messages()[-2:] == [
        f"Arm LFA: Activation cancelled for image {SP1_GUID}",
        f"Arm LFA: LFA_ACTIVATE for image {SP1_GUID} failed: LFA_DEVICE_ERROR"]


async def test_an_activate_timeout_reads_device_error(rig, autojump_clock):
    # lfa_fw.c, lfa_error_string(): the value is negated before the test against
    # -LFA_TIMED_OUT, so -32 falls through to LFA_DEVICE_ERROR.
    rig.platform.stage("sp1", version=(2, 0))
    await rig.read(SP1_GUID, "activation_pending")
    rig.platform.inject("sp1", "activate", call_again=10**6, beyond_tf_a=True)
    with pytest.raises(DriverError):
        await rig.write(SP1_GUID, "activate")
    assert rig.driver.klog.messages()[-1].endswith("failed: LFA_DEVICE_ERROR")


async def test_a_stale_sequence_id_goes_out_sign_extended(nursery, monkeypatch):
    # lfa_fw.c, activation_pending_show(): reg.a1 = fw_seq_id, an int, so -1 is all ones in x1;
    # TF-A reads the low 32 bits (INVALID_COMPONENT) and fails, and the cached value is shown.
    monkeypatch.setattr("lfafs.driver.lfa.REMOVAL_DELAY", 3600)
    rig = await make_rig(nursery)
    rig.platform.remove_component("sp2")
    await rig.driver.update_fw_images_tree()
    sp2 = "c3ff2127-7e41-a9f8-05af-24a1afa33474"
    assert await rig.read(sp2, "activation_pending") == b"0\n"
    last = rig.smcs("LFA_GET_INVENTORY")[-1]
    assert last.args[0] == u64(-1) and last.args[0] & 0xFFFF_FFFF == INVALID_COMPONENT
    assert last.result[0] == u64(LfaStatus.INVALID_PARAMETERS)
