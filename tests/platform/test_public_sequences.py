"""The public LFA test sequences, run against the TF-A-exact ``fvp`` profile.

tf-a-tests (TrustedFirmware-A/tf-a-tests, tftf/tests/tests-lfa.xml at
fdd0a97fbb6b): the cases run in the XML's order in one boot, as TFTF
does, with only the lead CPU on at boot (TFTF powers the others on with
PSCI CPU_ON for a multi-CPU case and they power off when it returns).
Hafnium's SP live-activation cases (test/vmapi/ffa_secure_partitions/
sp_live_activation.c) and cca-rmm-acs's lfa_test (test/lfa/lfa_test/
lfa_test_host.c) follow. Each case asserts the verdict TF-A tip gives it
(docs/smc-abi.md, "Where lfafs differs from TF-A on FVP" lists none for
these): every tf-a-tests case passes except "RMM Cancel", whose CANCEL
after the RMM activation gets -8.
"""

from __future__ import annotations

import pytest
import trio

from lfafs.platform import Platform
from lfafs.smccc import LFA_VERSION_1_0, Fid, InventoryFlags

from .conftest import call, st

LEAD = 0
# x1/x2 of GET_INVENTORY that TFTF looks for (tf-a-tests include/runtime_services/lfa.h, RMM_X1/X2, BL31_X1/X2)
RMM_UUID = (0x564BF212A662076C, 0xD90636638FBACB92)
BL31_UUID = (0x4698FE4C6D08D447, 0x005ABDCB5029959B)


def inventory_ids(p: Platform) -> dict[str, int]:
    return {c.name: c.index for c in p.components}


async def tftf_suite(p: Platform) -> dict[str, str]:
    """tests-lfa.xml in order; each case's result as TFTF would print it."""
    ids = inventory_ids(p)
    rmm, bl31 = ids["rmm"], ids["bl31"]
    others = [c for c in range(p.ncpus) if c != LEAD]
    result: dict[str, str] = {}

    def verdict(name: str, ok: bool) -> None:
        result[name] = "pass" if ok else "fail"

    # test_lfa_single_cpu.c
    verdict("Query version", (await call(p, Fid.LFA_VERSION)).x0 == LFA_VERSION_1_0)
    ok = st(await call(p, Fid.LFA_FEATURES, Fid.LFA_VERSION)) == 0
    ok &= st(await call(p, Fid.LFA_FEATURES, Fid.LFA_CANCEL)) == 0
    ok &= st(await call(p, Fid.LFA_FEATURES, 0xC40002E7)) != 0  # LFA_INVALID
    verdict("Check features", ok)
    r = await call(p, Fid.LFA_GET_INFO, 0)
    n = r.x1
    verdict("Get Info", st(r) == 0 and st(await call(p, Fid.LFA_GET_INFO, 1)) != 0)
    regs = [await call(p, Fid.LFA_GET_INVENTORY, i) for i in range(n)]
    verdict("Get Inventory", all(st(r) == 0 for r in regs) and (regs[rmm].x1, regs[rmm].x2) == RMM_UUID
            and (regs[bl31].x1, regs[bl31].x2) == BL31_UUID)
    verdict("RMM Prime", st(await call(p, Fid.LFA_PRIME, rmm)) == 0)
    verdict("RMM Activate", st(await call(p, Fid.LFA_ACTIVATE, rmm, 0, 0, 0, cpu=LEAD)) == 0)
    verdict("RMM Cancel", st(await call(p, Fid.LFA_CANCEL, rmm)) == 0)
    verdict("BL31 Prime", st(await call(p, Fid.LFA_PRIME, bl31)) == 0)
    verdict("BL31 Cancel", st(await call(p, Fid.LFA_CANCEL, bl31)) == 0)

    # test_lfa_multi_cpu.c, test_lfa_activate_flow(): GET_INFO, GET_INVENTORY, PRIME, CPU_ON
    async def flow(cancel: bool) -> bool:
        n = (await call(p, Fid.LFA_GET_INFO, 0)).x1
        for i in range(n):
            await call(p, Fid.LFA_GET_INVENTORY, i)
        if st(await call(p, Fid.LFA_PRIME, bl31)) != 0:
            return False
        for cpu in others:
            p.power(cpu, True)  # tftf_cpu_on
        out: dict[int, object] = {}

        async def secondary(cpu: int) -> None:
            out[cpu] = await p.smc(Fid.LFA_ACTIVATE, bl31, 0, 0x8800_0000, cpu, cpu=cpu)

        async with trio.open_nursery() as nursery:
            for cpu in others:
                nursery.start_soon(secondary, cpu)
            await trio.sleep(1)  # tftf_timer_sleep(1000): the others reach the pen
            if cancel:
                out["cancel"] = await p.smc(Fid.LFA_CANCEL, bl31, cpu=LEAD)
            else:
                out[LEAD] = await p.smc(Fid.LFA_ACTIVATE, bl31, 0, 0x8800_0000, LEAD, cpu=LEAD)
        for cpu in others:
            p.power(cpu, False)  # the test function returns: the CPU powers off
        if cancel:
            return st(out["cancel"]) == 0 and all(st(out[c]) == -11 for c in others)
        return all(out[c].x0 == c for c in [LEAD, *others])  # warm reset: x0 = x4 = core_pos

    verdict("BL31 Late Cancel", await flow(cancel=True))
    verdict("BL31 Live Activation", await flow(cancel=False))
    return result


async def test_tf_a_tests_lfa_suite_on_fvp_gives_tf_a_tips_verdicts(autojump_clock):
    p = Platform.from_profile("fvp")
    assert p.ncpus == 8  # FVP_CLUSTER_COUNT x FVP_MAX_CPUS_PER_CLUSTER
    for cpu in range(1, p.ncpus):
        p.power(cpu, False)  # TFTF boots the lead CPU only
    verdicts = await tftf_suite(p)
    expected = {name: "pass" for name in verdicts}
    # CANCEL(rmm) after the RMM activation: the leader's lfa_reset_activation() emptied the slot
    expected["RMM Cancel"] = "fail"
    assert verdicts == expected


async def test_fvp_reports_capable_components_pending_whatever_was_staged():
    # TF-A plat/arm/board/fvp/fvp_lfa.c, is_plat_lfa_activation_pending(); flags as
    # lfa_main.c get_fw_activation_flags() builds them
    p = Platform.from_profile("fvp")
    flags = {c.name: (await call(p, Fid.LFA_GET_INVENTORY, c.index)).x3 for c in p.components}
    P, C, R, OPT = (InventoryFlags.ACTIVATION_PENDING, InventoryFlags.ACTIVATION_CAPABLE,
                  InventoryFlags.MAY_RESET_CPU, InventoryFlags.CPU_RENDEZVOUS_OPTIONAL)
    assert flags == {"bl31": C | P | R, "bl32": 0, "bl33": 0, "rmm": C | P, "sp1": C | P | OPT, "sp2": C | P | OPT}
    assert (flags["bl31"], flags["rmm"], flags["sp1"]) == (0x7, 0x3, 0xB)


async def test_fvp_leaves_x4_x5_as_the_caller_set_them():
    # TF-A lfa_main.c: GET_INVENTORY ends with SMC_RET4 (x0..x3)
    p = Platform.from_profile("fvp")
    r = await call(p, Fid.LFA_GET_INVENTORY, 3, 0, 0, 0x1234)
    assert (r.x4, r.x5) == (0x1234, 0)


async def test_fvp_prime_of_bl32_is_wrong_state_and_the_same_image_is_pending_again():
    p = Platform.from_profile("fvp", cpus=1)
    ids = inventory_ids(p)
    await call(p, Fid.LFA_GET_INVENTORY, ids["bl32"])
    assert st(await call(p, Fid.LFA_PRIME, ids["bl32"])) == -7  # never pending on FVP
    for _ in range(2):  # Hafnium's live_activate_sel1_sp: two rounds in one boot
        await call(p, Fid.LFA_GET_INVENTORY, ids["sp1"])
        assert st(await call(p, Fid.LFA_PRIME, ids["sp1"])) == 0
        assert st(await call(p, Fid.LFA_ACTIVATE, ids["sp1"], 1)) == 0
        assert p.component("sp1").version == (1, 0)  # the image it already had
        r = await call(p, Fid.LFA_GET_INVENTORY, ids["sp1"])
        assert r.x3 & InventoryFlags.ACTIVATION_PENDING


async def test_hafnium_sp_image_abort_gives_minus_5():
    # Hafnium sp_live_activation.c live_activate_new_image_abort asserts only != 0; the value
    # is -5 (TF-A spmd_logical_sp.c convert_ffa_error_code_to_lfa() of FFA_ABORTED)
    p = Platform.from_profile("fvp", cpus=1)
    sp1 = inventory_ids(p)["sp1"]
    p.inject("sp1", "boot", status="LFA_CRITICAL_ERROR", once=True)
    await call(p, Fid.LFA_GET_INVENTORY, sp1)
    assert st(await call(p, Fid.LFA_PRIME, sp1)) == 0
    assert st(await call(p, Fid.LFA_ACTIVATE, sp1, 1)) == -5


@pytest.mark.parametrize("fid", [Fid.LFA_VERSION, Fid.LFA_GET_INFO, Fid.LFA_PRIME])
async def test_cca_rmm_acs_smc32_ids_get_not_supported(fid):
    # cca-rmm-acs val/host/src/val_host_lfa.c issues SMC32 ids; TF-A dispatches only SMC64
    p = Platform.from_profile("fvp", cpus=1)
    assert st(await call(p, fid & ~(1 << 30))) == -1


@pytest.fixture
def autojump_clock():
    import trio.testing

    return trio.testing.MockClock(autojump_threshold=0)
