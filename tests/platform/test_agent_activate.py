"""ACTIVATE and CANCEL (docs/smc-abi.md section 6, items 25-47)."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform.agent import PrimeStatus
from lfafs.smccc import Fid

from .conftest import BL31, RMM, SP1, activate_on, all_cpus, call, ready, st, variant


async def test_activate_without_prime_is_invalid_parameters(fvp):
    r = await call(fvp, Fid.LFA_ACTIVATE, RMM, 0, 0, 0)
    assert (st(r), r.x1) == (-8, 0)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, 6)) == -8


async def test_activate_while_only_started_is_component_wrong_state(fvp):
    fvp.inject("sp1", "load", call_again=1)
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    await call(fvp, Fid.LFA_PRIME, SP1)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -9


async def test_second_activate_without_inventory(fvp):
    await ready(fvp, SP1)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -9  # SP: state stays COMPLETE
    assert st(await call(fvp, Fid.LFA_CANCEL, SP1)) == 0  # release it, or PRIME(RMM) would not switch
    await ready(fvp, RMM)
    results = await activate_on(fvp, RMM, all_cpus(fvp))
    assert {st(r) for r in results.values()} == {0}
    assert st(await call(fvp, Fid.LFA_ACTIVATE, RMM)) == -8  # RMM: state was reset


async def test_skip_rendezvous_refused_where_it_is_required(fvp):
    await ready(fvp, RMM)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, RMM, 1)) == -8
    await call(fvp, Fid.LFA_CANCEL, RMM)
    await ready(fvp, BL31)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, BL31, 1, 0x8000_0000)) == -8


async def test_sp_activates_on_one_cpu_with_or_without_skip(fvp):
    await ready(fvp, SP1, version=(2, 0))
    r = await call(fvp, Fid.LFA_ACTIVATE, SP1, 1, 0, 0)
    assert (st(r), r.x1) == (0, 0)
    assert fvp.component("sp1").version == (2, 0)
    await ready(fvp, SP1, version=(3, 0))
    r = await call(fvp, Fid.LFA_ACTIVATE, SP1, 0)  # no rendezvous needed: other CPUs stay running
    assert (st(r), r.x1) == (0, 0)
    assert fvp.component("sp1").version == (3, 0)
    assert fvp.agent.current.component_id == SP1 and fvp.agent.current.prime_status == PrimeStatus.COMPLETE


async def test_rmm_activation_on_a_single_cpu():
    p = variant(ncpus=1)
    await ready(p, RMM, version=(1, 0))
    r = await call(p, Fid.LFA_ACTIVATE, RMM)
    assert (st(r), r.x1) == (0, 0)
    assert p.agent.current.prime_status == PrimeStatus.NONE
    assert not p.agent.pending[RMM]
    assert st(await call(p, Fid.LFA_CANCEL, RMM)) == -8
    p.stage("rmm", version=(1, 1))
    assert (await call(p, Fid.LFA_GET_INVENTORY, RMM)).x3 == 0x3


async def test_every_cpu_returns_the_leaders_status(fvp):
    await ready(fvp, RMM, version=(1, 0))
    results = await activate_on(fvp, RMM, [3, 1, 0, 2])
    assert {cpu: (st(r), r.x1) for cpu, r in results.items()} == {c: (0, 0) for c in range(4)}
    report = fvp.last_report
    assert report.cpus == 4 and report.status == 0 and report.to_version == (1, 0)


async def test_a_rendezvous_without_every_running_cpu_never_ends(fvp, autojump_clock):
    await ready(fvp, RMM)
    with trio.move_on_after(3600) as scope:
        await activate_on(fvp, RMM, [0, 1, 2])
    assert scope.cancelled_caught
    assert fvp.pen.count == 3


async def test_powered_off_cpus_are_not_waited_for(fvp):
    fvp.power(3, False)
    await ready(fvp, RMM, version=(1, 0))
    results = await activate_on(fvp, RMM, [0, 1, 2])
    assert {st(r) for r in results.values()} == {0}
    fvp.power(3, True)
    assert fvp.rmmd.tokens[3] != 0 and not fvp.rmmd.boot_failed  # CPU_ON took the new image's warm path


async def test_first_cpu_fixes_the_rendezvous_policy(fvp, autojump_clock):
    await ready(fvp, SP1)
    fvp.inject("sp1", "activate", latency=10, once=True)
    out = {}
    async with trio.open_nursery() as n:
        async def first():
            out["first"] = st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 0, cpu=0))
        n.start_soon(first)
        await trio.sleep(1)
        out["late skip"] = st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1, cpu=1))
    assert out == {"first": 0, "late skip": -2}


async def test_a_skip_round_holds_the_lock(fvp, autojump_clock):
    await ready(fvp, SP1)
    fvp.inject("sp1", "activate", latency=10, once=True)
    out = {}
    async with trio.open_nursery() as n:
        async def first():
            out["skip"] = st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1, cpu=0))
        n.start_soon(first)
        await trio.sleep(1)
        out["second skip"] = st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1, cpu=1))
        out["prime"] = st(await call(fvp, Fid.LFA_PRIME, SP1, cpu=2))
        out["normal"] = st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 0, cpu=3))  # waits for the lock
    assert out == {"skip": 0, "second skip": -2, "prime": -2, "normal": -9}


async def test_notify_failure_stops_the_round_before_it_starts(fvp):
    await ready(fvp, SP1)
    fvp.inject("sp1", "notify", status="LFA_ACTIVATION_FAILED", once=True)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -11
    assert not fvp.agent.in_progress and fvp.agent.pending[SP1]
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0


async def test_activator_call_again_keeps_the_round_open(fvp):
    await ready(fvp, SP1, version=(2, 0))
    fvp.inject("sp1", "activate", call_again=2, beyond_tf_a=True)  # no TF-A activator asks to call again
    replies = [(st(r), r.x1) for r in [await call(fvp, Fid.LFA_ACTIVATE, SP1, 1) for _ in range(3)]]
    assert replies == [(0, 1), (0, 1), (0, 0)]
    assert fvp.component("sp1").version == (2, 0)


async def test_activator_errors_pass_through_and_keep_pending(fvp):
    await ready(fvp, SP1, version=(2, 0))
    fvp.inject("sp1", "activate", status="LFA_NO_MEMORY", once=True)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -4
    assert fvp.agent.pending[SP1] and fvp.component("sp1").version == (1, 0)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0


async def test_bl31_resumes_every_cpu_in_ns(fvp):
    await ready(fvp, BL31, version=(2, 16))
    results = await activate_on(fvp, BL31, all_cpus(fvp), ep=0x8800_0000, ctx=0xC0FFEE)
    assert {r.x0 for r in results.values()} == {0xC0FFEE}
    assert fvp.component("bl31").version == (2, 16)
    assert (fvp.last_report.component, fvp.last_report.status, fvp.last_report.cpus) == ("bl31", 0, 4)


async def test_bl31_checks_each_cpus_entry_point_after_the_rendezvous(fvp):
    # TF-A bl31_lfa.c lfa_bl31_image_activation() and lfa_reset.c prepare_warm_reset():
    # every CPU joins the pen first, then checks its own x3; a bad one fails only that CPU.
    await ready(fvp, BL31, version=(2, 16))
    eps = {0: 0x8800_0000, 1: 0x8800_0000, 2: 7, 3: 0x8800_0000}
    results = await activate_on(fvp, BL31, all_cpus(fvp), ep=eps, ctx=0xC0FFEE)
    assert st(results[2]) == -5  # CRITICAL_ERROR, never INVALID_ADDRESS
    assert {results[c].x0 for c in (0, 1, 3)} == {0xC0FFEE}
    assert fvp.component("bl31").version == (2, 16)  # the leader patched BL31 before the checks


async def test_bl31_with_every_entry_point_bad_fails_every_cpu(fvp):
    await ready(fvp, BL31, version=(2, 16))
    results = await activate_on(fvp, BL31, all_cpus(fvp), ep=0xFC00_0000)  # the secure top of DRAM1
    assert {st(r) for r in results.values()} == {-5}
    assert fvp.last_report.status == -5 and fvp.agent.pending[BL31]  # a failed round keeps pending


@pytest.mark.parametrize(("ep", "valid"), [
    (0x8800_0000, True), (0x8800_0002, True),  # psci_get_ns_ep_info() refuses only odd addresses
    (0x8800_0001, False), (0x7FFF_F000, False),  # Thumb; below DRAM1
    (0xFBFF_F000, True), (0xFC00_0000, False),  # the last NS page; ARM_TZC_DRAM1_SIZE (64 MB with RME)
    (0xFDC0_0000, False), (0x1_0000_0000, False),  # the RMM carve-out; above DRAM1
    (0x8_8000_0000, True), (0x8_8000_0000 + (30 << 30) - 2, True), (0x8_8000_0000 + (30 << 30), False),  # DRAM2
])
def test_bl31_entry_point_rules_are_tf_as(fvp, ep, valid):
    # TF-A plat/arm/common/arm_pm.c, arm_validate_ns_entrypoint()
    assert fvp.valid_ns_entry(ep) is valid


async def test_a_prime_of_the_rmm_after_bl31_clears_the_reset_latch(fvp):
    # TF-A lfa_main.c lfa_prime() latches reset from the primed component on every
    # successful PRIME, even over a COMPLETE slot; bl31_lfa.c resets only if it is set.
    await ready(fvp, BL31, version=(2, 16))
    fvp.stage("rmm", version=(0, 10))
    assert st(await call(fvp, Fid.LFA_GET_INVENTORY, RMM)) == 0
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == 0
    assert fvp.agent.current.component_id == BL31 and not fvp.agent.current.reset
    results = await activate_on(fvp, BL31, all_cpus(fvp), ep=0x8800_0000, ctx=0xC0FFEE)
    assert {(r.x0, r.x1) for r in results.values()} == {(0, 0)}  # returned, no warm reset
    assert fvp.component("bl31").version == (2, 16) and not fvp.agent.in_progress
    assert st(await call(fvp, Fid.LFA_CANCEL, BL31)) == 0


async def test_a_failed_prime_does_not_latch_reset(fvp):
    await ready(fvp, SP1)
    fvp.stage("bl31", version=(2, 16))
    fvp.inject("bl31", "load", status="LFA_AUTH_ERROR", once=True)
    assert st(await call(fvp, Fid.LFA_GET_INVENTORY, BL31)) == 0
    assert st(await call(fvp, Fid.LFA_PRIME, BL31)) == -3
    assert not fvp.agent.current.reset  # still SP1's


async def test_cancel_with_nothing_claimed(fvp):
    assert st(await call(fvp, Fid.LFA_CANCEL, RMM)) == -8
    assert st(await call(fvp, Fid.LFA_CANCEL, 6)) == -8


async def test_cancel_releases_a_claimed_component(fvp):
    await ready(fvp, RMM)
    assert st(await call(fvp, Fid.LFA_CANCEL, SP1)) == -8
    r = await call(fvp, Fid.LFA_CANCEL, RMM, 0, 0x55)
    assert (st(r), r.x1, r.x2, r.x3) == (0, RMM, 0, 0x55)  # x0 only
    assert fvp.agent.current.component_id == 0xFFFF_FFFF
    assert st(await call(fvp, Fid.LFA_ACTIVATE, RMM)) == -8
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == 0  # pending survives CANCEL


async def test_bl31_late_cancel_releases_the_waiting_cpus(fvp):
    await ready(fvp, BL31)
    out = {}
    async with trio.open_nursery() as n:
        async def waiter(cpu):
            out[cpu] = st(await call(fvp, Fid.LFA_ACTIVATE, BL31, 0, 0x8800_0000, cpu=cpu))
        for cpu in (0, 1, 2):
            n.start_soon(waiter, cpu)
        while fvp.pen.count < 3:
            await trio.sleep(0)
        out["cancel"] = st(await call(fvp, Fid.LFA_CANCEL, BL31, cpu=3))
    assert out == {0: -11, 1: -11, 2: -11, "cancel": 0}
    assert fvp.agent.current.component_id == 0xFFFF_FFFF and fvp.agent.pending[BL31]


async def test_cancel_refused_once_every_running_cpu_is_in(autojump_clock):
    p = variant(ncpus=2)
    await ready(p, SP1)
    p.inject("sp1", "activate", latency=10, once=True)
    out = {}
    async with trio.open_nursery() as n:
        async def act(cpu):
            out[cpu] = st(await call(p, Fid.LFA_ACTIVATE, SP1, 0, cpu=cpu))
        n.start_soon(act, 0)
        await trio.sleep(1)
        await act(1)  # returns at once; CPU 0 is still inside
        out["cancel"] = st(await call(p, Fid.LFA_CANCEL, SP1, cpu=1))
    assert out == {0: 0, 1: 0, "cancel": -2}


async def test_cancel_after_a_successful_sp_activation(fvp):
    await ready(fvp, SP1)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0
    assert st(await call(fvp, Fid.LFA_CANCEL, SP1)) == 0
