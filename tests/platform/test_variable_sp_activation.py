"""Live activation of the variable SP: the SPMD logical SP, the SPMC's START/FINISH, and the variables.

Sources: TF-A plat/arm/board/fvp/fvp_spmd_logical_sp.c lfa_sp_activate(),
services/std_svc/spmd/spmd_logical_sp.c (convert_ffa_error_code_to_lfa()),
services/std_svc/lfa/lfa_main.c (every CPU of a round runs the activator);
Hafnium src/ffa/spmc/lifecycle_msg.c (START, FINISH, the stop request) and
src/api.c api_ffa_msg_send_direct_req() (BUSY while an SP is being
activated); Trusted Services uefi_variable_store.c load_variable_index()
(what a restarted store has).
"""

from __future__ import annotations

import trio

from lfafs.platform.spmc import SpState
from lfafs.smccc import Fid, InventoryFlags, Version
from lfafs.uefi import EFI_SYSTEM_RESOURCE_TABLE
from lfafs.uefi import EfiStatus as S

from .conftest import SP2, activate_on, all_cpus, call, ready, st
from .ffa_rig import get_variable, names, set_variable, uefi_platform


def nv_snapshot(p):
    return dict(p.secure_flash.objects)


async def nv_view(p):
    out = []
    for name, guid in await names(p):
        status, attributes, _, data = await get_variable(p, name, guid)
        if attributes & 1:
            out.append((name, guid, attributes, data))
    return out


async def activate(p, version=(2, 0), *, skip: bool = True, cpu: int = 0) -> int:
    await ready(p, SP2, version=version)
    return st(await call(p, Fid.LFA_ACTIVATE, SP2, 1 if skip else 0, cpu=cpu))


async def test_nv_variables_are_identical_after_an_activation(fvp):
    """Content, attributes and GetNextVariableName order of NV variables, and the NV store's bytes."""
    assert await set_variable(fvp, "Added", b"\x42") == S.SUCCESS
    before, flash = await nv_view(fvp), nv_snapshot(fvp)
    assert await activate(fvp) == 0
    assert await nv_view(fvp) == before and nv_snapshot(fvp) == flash
    naive = uefi_platform(live_state="naive")
    before, flash = await nv_view(naive), nv_snapshot(naive)
    assert await activate(naive) == 0
    assert await nv_view(naive) == before and nv_snapshot(naive) == flash


async def test_a_faithful_sp_keeps_volatile_variables_and_the_runtime_phase(fvp):
    boot_only = ("BootOnly", 0x3)
    fvp.uefi.sp.store.is_boot_service = True  # a BS-only NV variable set during boot
    assert await set_variable(fvp, boot_only[0], b"b", boot_only[1]) == S.SUCCESS
    fvp.uefi.sp.store.is_boot_service = False
    assert await activate(fvp) == 0
    assert (await get_variable(fvp, "SecureBoot"))[3] == b"\0"
    assert await set_variable(fvp, "SecureBoot", b"\1", 6) == S.WRITE_PROTECTED  # the property survived
    assert (await get_variable(fvp, "BootOnly"))[0] == S.NOT_FOUND


async def test_a_naive_restart_loses_volatile_variables_and_shows_boot_only_ones():
    p = uefi_platform(live_state="naive")
    p.uefi.sp.store.is_boot_service = True
    assert await set_variable(p, "BootOnly", b"b", 0x3) == S.SUCCESS
    p.uefi.sp.store.is_boot_service = False
    assert await activate(p) == 0
    assert (await get_variable(p, "SecureBoot"))[0] == S.NOT_FOUND
    assert (await get_variable(p, "BootOnly"))[3] == b"b"
    assert ("BootOnly", (await names(p))[0][1]) in await names(p)


async def test_a_variable_access_inside_the_activation_window_gets_ffa_busy(autojump_clock):
    """The SP is stopped between START and FINISH: U-Boot maps FFA BUSY to EFI_OUT_OF_RESOURCES."""
    p = uefi_platform(cpus=2, sp2_latency=1.0)
    seen = {}
    async with trio.open_nursery() as n:
        async def act():
            seen["activate"] = await activate(p)
        n.start_soon(act)
        await trio.sleep(0.5)
        assert p.uefi.partition.state == SpState.CREATED
        seen["read"] = (await get_variable(p, "BootOrder"))[0]
    assert seen == {"activate": 0, "read": S.OUT_OF_RESOURCES}
    assert any("FFA_ERROR BUSY (SP created)" in r.decoded for r in p.trace.records())


async def test_an_sp_running_a_request_makes_start_retry_which_is_lfa_busy(autojump_clock):
    p = uefi_platform(cpus=2, sp_latency=1.0)
    await ready(p, SP2, version=(2, 0))
    seen = {}
    async with trio.open_nursery() as n:
        async def read():
            seen["read"] = (await get_variable(p, "BootOrder", attributes=False))[0]
        n.start_soon(read)
        await trio.sleep(0.5)
        seen["activate"] = st(await call(p, Fid.LFA_ACTIVATE, SP2, 1, cpu=1))
    assert seen == {"read": S.SUCCESS, "activate": -2}
    assert any("START" in r.decoded and "RETRY" in r.decoded for r in p.trace.records())
    assert st(await call(p, Fid.LFA_ACTIVATE, SP2, 1)) == 0  # idle again: it works


async def test_a_new_image_that_fails_to_start_is_critical_and_the_destroyed_sp_answers_invalid(fvp):
    await ready(fvp, SP2, version=(2, 0))
    fvp.inject("sp2", "boot", status="LFA_CRITICAL_ERROR", once=True)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP2, 1)) == -5
    assert fvp.uefi.partition.state == SpState.DESTROYED
    assert (await get_variable(fvp, "BootOrder"))[0] == S.DEVICE_ERROR  # FFA INVALID_PARAMETERS -> -EINVAL


async def test_with_abort_action_restart_the_failed_sp_answers_busy():
    p = uefi_platform(sp_abort_action="restart")
    await ready(p, SP2, version=(2, 0))
    p.inject("sp2", "boot", status="LFA_CRITICAL_ERROR", once=True)
    assert st(await call(p, Fid.LFA_ACTIVATE, SP2, 1)) == -5
    assert (await get_variable(p, "BootOrder"))[0] == S.OUT_OF_RESOURCES


async def test_after_an_activation_the_version_changes_and_the_esrt_does_not(fvp):
    esrt = fvp.uefi.system_table.table(EFI_SYSTEM_RESOURCE_TABLE)
    assert await activate(fvp, (3, 1)) == 0
    r = await call(fvp, Fid.LFA_GET_INVENTORY, SP2)
    assert Version.from_reg(r.x4) == (3, 1) and fvp.uefi.sp.version == (3, 1)
    assert fvp.uefi.system_table.table(EFI_SYSTEM_RESOURCE_TABLE) == esrt


async def test_two_activations_in_one_boot_both_work_and_variables_survive_both(fvp):
    assert await set_variable(fvp, "Across", b"\x07") == S.SUCCESS
    for version in ((2, 0), (3, 0)):
        assert await activate(fvp, version) == 0
        assert (await get_variable(fvp, "Across"))[3] == b"\x07"
    assert fvp.uefi.sp.boots == 3
    assert not (await call(fvp, Fid.LFA_GET_INVENTORY, SP2)).x3 & InventoryFlags.ACTIVATION_PENDING


async def test_with_every_cpu_in_activate_the_second_start_is_denied(fvp):
    """lfa_main.c runs the SP activator on every CPU of a rendezvous round; the SPMC refuses a second START."""
    await ready(fvp, SP2, version=(2, 0))
    results = await activate_on(fvp, SP2, all_cpus(fvp))
    statuses = sorted(st(r) for r in results.values())
    assert statuses.count(0) >= 1 and -9 in statuses
    assert any("DENIED (already in progress for this SP)" in r.decoded for r in fvp.trace.records())


async def test_the_el3_exchanges_are_in_the_trace(fvp):
    assert await activate(fvp) == 0
    el3 = [r.decoded for r in fvp.trace.records() if r.world == "el3"]
    assert el3[0].startswith("PARTITION_INFO_GET_REGS uuid c3ff2127-7e41-a9f8-05af-24a1afa33474 -> SUCCESS id 0x8002")
    assert el3[1].startswith("live activation START") and el3[2].startswith("live activation FINISH")
