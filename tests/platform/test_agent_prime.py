"""PRIME (docs/smc-abi.md section 6, items 15-24)."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform.agent import PrimeStatus
from lfafs.smccc import Fid

from .conftest import BL33, RMM, SP1, SP2, call, ready, st


async def test_prime_out_of_range(fvp):
    assert st(await call(fvp, Fid.LFA_PRIME, 6)) == -8


async def test_prime_before_any_inventory_is_wrong_state(fvp):
    fvp.stage("rmm", version=(1, 0))
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == -7


async def test_prime_of_a_component_without_activator(fvp):
    assert st(await call(fvp, Fid.LFA_PRIME, BL33)) == -7  # not pending
    fvp.stage("bl33", version=(2026, 1))
    await call(fvp, Fid.LFA_GET_INVENTORY, BL33)
    assert st(await call(fvp, Fid.LFA_PRIME, BL33)) == -1


async def test_prime_completes_and_is_idempotent(fvp):
    await ready(fvp, RMM)
    assert fvp.agent.current.component_id == RMM
    assert fvp.agent.current.prime_status == PrimeStatus.COMPLETE
    r = await call(fvp, Fid.LFA_PRIME, RMM)
    assert (st(r), r.x1) == (0, 0)


async def test_prime_of_another_component_over_complete_keeps_the_first(fvp):
    await ready(fvp, SP1)
    fvp.stage("sp2", version=(3, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP2)
    r = await call(fvp, Fid.LFA_PRIME, SP2)
    assert (st(r), r.x1) == (0, 0)
    assert fvp.agent.current.component_id == SP1
    r = await call(fvp, Fid.LFA_ACTIVATE, SP2)
    assert (st(r), r.x1) == (-8, 0)
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0


async def test_prime_of_another_component_while_started_is_wrong_state(fvp):
    fvp.inject("sp1", "load", call_again=2)
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    r = await call(fvp, Fid.LFA_PRIME, SP1)
    assert (st(r), r.x1) == (0, 1)
    assert fvp.agent.current.prime_status == PrimeStatus.STARTED
    fvp.stage("sp2", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP2)
    assert st(await call(fvp, Fid.LFA_PRIME, SP2)) == -7


async def test_prime_error_leaves_x1_as_the_caller_passed(fvp):
    r = await call(fvp, Fid.LFA_PRIME, RMM, 0x77)
    assert (st(r), r.x1, r.x2) == (-7, RMM, 0x77)


async def test_prime_while_the_lock_is_held_is_busy(fvp, autojump_clock):
    fvp.inject("sp1", "load", latency=5)
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    seen = {}
    async with trio.open_nursery() as n:
        async def slow():
            seen["slow"] = st(await call(fvp, Fid.LFA_PRIME, SP1, cpu=0))
        n.start_soon(slow)
        await trio.sleep(1)
        seen["prime"] = st(await call(fvp, Fid.LFA_PRIME, SP1, cpu=1))
        seen["cancel"] = st(await call(fvp, Fid.LFA_CANCEL, SP1, cpu=2))
    assert seen == {"slow": 0, "prime": -2, "cancel": -2}


async def test_call_again_until_the_platform_has_loaded(fvp):
    fvp.inject("rmm", "load", call_again=3)
    fvp.stage("rmm", version=(1, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, RMM)
    replies = [tuple((st(r), r.x1)) for r in [await call(fvp, Fid.LFA_PRIME, RMM) for _ in range(4)]]
    assert replies == [(0, 1), (0, 1), (0, 1), (0, 0)]
    assert fvp.agent.current.prime_status == PrimeStatus.COMPLETE


@pytest.mark.parametrize(("status", "code"), [("LFA_AUTH_ERROR", -3), ("LFA_NO_MEMORY", -4), ("LFA_DEVICE_ERROR", -6)])
async def test_load_errors_map_as_tf_a_maps_them_and_keep_the_component_claimed(fvp, status, code):
    fvp.inject("rmm", "load", status=status, once=True)
    fvp.stage("rmm", version=(1, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, RMM)
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == code
    assert fvp.agent.current.component_id == RMM
    assert fvp.agent.current.prime_status == PrimeStatus.STARTED
    assert st(await call(fvp, Fid.LFA_ACTIVATE, RMM)) == -9
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == 0  # the fault was once


async def test_an_image_signed_with_another_key_fails_authentication(fvp):
    from lfafs.platform import images

    bad = images.build(fvp.component("rmm").spec.guid, (1, 0), b"someone else's key", rmm=True)
    fvp.stage("rmm", image=bad)
    await call(fvp, Fid.LFA_GET_INVENTORY, RMM)
    assert st(await call(fvp, Fid.LFA_PRIME, RMM)) == -3
    assert "key" in fvp.current_report.reason


async def test_garbage_and_foreign_images_fail_authentication(fvp):
    from lfafs.platform import images

    fvp.stage("sp1", version=(2, 0), image=b"not an image at all")
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    assert st(await call(fvp, Fid.LFA_PRIME, SP1)) == -3
    await call(fvp, Fid.LFA_CANCEL, SP1)
    other = images.build(fvp.component("sp2").spec.guid, (2, 0), fvp.profile.auth_key)
    fvp.stage("sp1", image=other)
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    assert st(await call(fvp, Fid.LFA_PRIME, SP1)) == -3


async def test_prime_op_status_is_returned_as_is(fvp):
    fvp.inject("sp1", "prime", status="LFA_BUSY")
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    assert st(await call(fvp, Fid.LFA_PRIME, SP1)) == -2
