"""No SMC, whatever its registers, raises out of the platform.

TF-A's handlers answer every register value with a status (lfa_main.c,
lfa_smc_handler(); common/runtime_svc.c for unknown ids); an emulator that
raises instead would turn a tool's bad call into a crash that hardware
never shows. Sequences of random SMCs on every function id, with register
values biased toward the edges (0, the idle slot's 0xFFFFFFFF, its 64-bit
forms, component ids), run against a 1-CPU platform with every capable
component staged, so PRIME and ACTIVATE reach their deep paths.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from lfafs.platform import Platform
from lfafs.smccc import LFA_VERSION_1_0, SMC_UNK, Fid, LfaStatus, s64

from .conftest import SP1, call, st

EDGES = [0, 1, 2, 3, 5, 6, 7, 0xFFFF_FFFF, (1 << 32) | 0xFFFF_FFFF, 1 << 32, (1 << 32) | 3, 1 << 63,
         (1 << 64) - 1, 0x8800_0000, 0xFC00_0000, 0x8_8000_0000]
REGS = st_.one_of(st_.sampled_from(EDGES), st_.integers(0, (1 << 64) - 1))
FIDS = st_.one_of(st_.sampled_from(list(Fid)), st_.integers(0, (1 << 64) - 1),
                  st_.sampled_from([f & 0x7FFF_FFFF for f in Fid]),  # the SMC32 forms
                  st_.sampled_from([f | (1 << 16) for f in Fid]))  # the SVE hint bit
CALL = st_.tuples(FIDS, REGS, REGS, REGS, REGS, st_.sampled_from(["ns", "secure", "realm"]))
STATUSES = {int(s) for s in LfaStatus}


def _check(fid: int, x1: int, x4: int, regs) -> None:
    assert all(0 <= r < 1 << 64 for r in regs)
    f = fid & 0xFFFF_FFFF & ~(1 << 16)
    if f == Fid.LFA_VERSION:
        assert regs.x0 == LFA_VERSION_1_0
    elif Fid.LFA_FEATURES <= f <= Fid.LFA_CANCEL and f != Fid.LFA_ACTIVATE and fid >> 32 == 0:
        assert s64(regs.x0) in STATUSES
    elif f == Fid.LFA_ACTIVATE and fid >> 32 == 0:
        # a status, or the context id of a CPU that warm-reset into NS (BL31)
        assert s64(regs.x0) in STATUSES or regs.x0 == x4


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st_.lists(CALL, min_size=1, max_size=25))
def test_no_smc_raises_whatever_its_registers(calls):
    async def main() -> None:
        p = Platform.from_profile(cpus=1)
        for c in p.components:
            if c.spec.activation_capable:
                p.stage(c.name, version=(9, 9))
        with trio.fail_after(60):  # virtual seconds: a 1-CPU rendezvous never waits
            for fid, x1, x2, x3, x4, world in calls:
                regs = await p.smc(fid, x1, x2, x3, x4, world=world)
                _check(fid, x1, x4, regs)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_activate_of_the_idle_slots_id_answers_minus_8_with_x1_zero(fvp):
    # TF-A lfa_main.c lfa_activate_prepare(): the range check catches 0xFFFFFFFF (the idle
    # slot's LFA_INVALID_COMPONENT) and its 64-bit forms before the mismatch test; SMC_RET2(-8, 0)
    for x1 in (0xFFFF_FFFF, (1 << 32) | 0xFFFF_FFFF, 6, 1 << 40 | 6):
        r = await call(fvp, Fid.LFA_ACTIVATE, x1, 0, 0, 0)
        assert (st(r), r.x1) == (-8, 0), hex(x1)
    for fid in (Fid.LFA_PRIME, Fid.LFA_CANCEL, Fid.LFA_GET_INVENTORY):
        assert st(await call(fvp, fid, 0xFFFF_FFFF)) == -8


async def test_activate_of_the_idle_id_after_a_failed_round_and_cancel(fvp):
    fvp.inject("sp1", "activate", status="LFA_DEVICE_ERROR", once=True)
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    assert st(await call(fvp, Fid.LFA_PRIME, SP1)) == 0
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -6
    assert st(await call(fvp, Fid.LFA_CANCEL, SP1)) == 0
    r = await call(fvp, Fid.LFA_ACTIVATE, 0xFFFF_FFFF)
    assert (st(r), r.x1) == (-8, 0)


def test_an_unknown_fid_is_smc_unk_not_an_exception():
    async def main() -> None:
        p = Platform.from_profile(cpus=1)
        assert (await p.smc(0xC40002E7)).x0 == SMC_UNK
        assert (await p.smc(0x840002E0)).x0 == SMC_UNK  # SMC32 LFA_VERSION

    trio.run(main)
