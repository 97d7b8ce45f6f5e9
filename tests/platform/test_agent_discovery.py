"""LFA dispatch and discovery (docs/smc-abi.md section 6, items 1-14)."""

from __future__ import annotations

import pytest

from lfafs.smccc import SMC_UNK, Fid

from .conftest import BL31, BL32, BL33, RMM, SP1, SP2, call, st, variant

MASK = (1 << 64) - 1


async def test_version_writes_x0_only(fvp):
    r = await call(fvp, Fid.LFA_VERSION, 11, 22, 33, 44)
    assert r == (0x10000, 11, 22, 33, 44, 0)


@pytest.mark.parametrize("fid", list(range(0xC40002E0, 0xC40002E7)))
async def test_features_knows_every_lfa_fid(fvp, fid):
    assert (await call(fvp, Fid.LFA_FEATURES, fid)).x0 == 0


@pytest.mark.parametrize("fid", [0xC40002E7, 0x840002E0, 0x840002E6, (1 << 32) | 0xC40002E0, 0])
async def test_features_refuses_anything_else(fvp, fid):
    assert st(await call(fvp, Fid.LFA_FEATURES, fid)) == -1


@pytest.mark.parametrize("fid", [0x840002E0, 0x840002E2, 0x840002E6, 0xC40002E7, 0xC40002FF, 0xC4FE02E0])
async def test_smc32_forms_and_unused_ids_are_unknown(fvp, fid):
    r = await call(fvp, fid, 0)
    assert r.x0 == SMC_UNK == MASK
    assert fvp.agent.current.component_id == 0xFFFF_FFFF


async def test_sve_hint_bit_is_ignored(fvp):
    assert (await call(fvp, 0xC40102E0)).x0 == 0x10000


async def test_only_w0_selects_the_call(fvp):
    assert (await call(fvp, (0xDEAD << 32) | Fid.LFA_VERSION)).x0 == 0x10000


async def test_get_info_counts_components(fvp):
    assert tuple(await call(fvp, Fid.LFA_GET_INFO, 0, 7, 8)) == (0, 6, 0, 8, 0, 0)


@pytest.mark.parametrize("sel", [1, 1 << 32])
async def test_get_info_selector_must_be_zero(fvp, sel):
    r = await call(fvp, Fid.LFA_GET_INFO, sel, 5)
    assert (st(r), r.x1, r.x2) == (-8, sel, 5)


async def test_get_inventory_out_of_range_writes_x0_only(fvp):
    r = await call(fvp, Fid.LFA_GET_INVENTORY, 6, 1, 2, 3)
    assert (st(r), r.x1, r.x2, r.x3) == (-8, 6, 1, 2)


async def test_get_inventory_truncates_x1_to_32_bits(fvp):
    assert await call(fvp, Fid.LFA_GET_INVENTORY, 1 << 32) == await call(fvp, Fid.LFA_GET_INVENTORY, 0)


@pytest.mark.parametrize(("cid", "x1", "x2", "flags"), [
    (RMM, 0x564BF212A662076C, 0xD90636638FBACB92, 0x3),
    (BL31, 0x4698FE4C6D08D447, 0x005ABDCB5029959B, 0x7),
    (SP1, 0x174D471D962A7BF0, 0x5C3E254EA686C89E, 0xB),
    (SP2, 0xF8A9417E2721FFC3, 0x7434A3AFA124AF05, 0xB),
])
async def test_inventory_of_a_pending_component(fvp, cid, x1, x2, flags):
    fvp.stage(cid, version=(9, 9))
    r = await call(fvp, Fid.LFA_GET_INVENTORY, cid)
    assert (st(r), r.x1, r.x2, r.x3) == (0, x1, x2, flags)


@pytest.mark.parametrize(("cid", "x1", "x2"), [
    (BL33, 0x4BD5EAFCA7EED0D6, 0xE4B634F234998297),
    (BL32, 0x4713DC5389E1D005, 0x383E7A4B0A502B8D),
])
async def test_components_without_activator_report_no_flags(fvp, cid, x1, x2):
    r = await call(fvp, Fid.LFA_GET_INVENTORY, cid)
    assert (r.x1, r.x2, r.x3) == (x1, x2, 0)


async def test_pending_bit_follows_staging(fvp):
    assert (await call(fvp, Fid.LFA_GET_INVENTORY, RMM)).x3 == 0x1
    fvp.stage("rmm", version=(1, 0))
    assert (await call(fvp, Fid.LFA_GET_INVENTORY, RMM)).x3 == 0x3
    fvp.unstage("rmm")
    assert (await call(fvp, Fid.LFA_GET_INVENTORY, RMM)).x3 == 0x1


async def test_inventory_versions_in_x4_x5(fvp):
    fvp.stage("rmm", version=(1, 2))
    r = await call(fvp, Fid.LFA_GET_INVENTORY, RMM)
    assert (r.x4, r.x5) == ((0 << 32) | 9, (1 << 32) | 2)  # current 0.9, pending 1.2


async def test_without_inventory_versions_x4_x5_keep_the_callers_values():
    p = variant(inventory_versions=False)
    r = await call(p, Fid.LFA_GET_INVENTORY, RMM, 0, 0, 0x1234)
    assert r.x4 == 0x1234 and r.x5 == 0


@pytest.mark.parametrize("world", ["ns", "secure", "realm"])
async def test_callers_world_does_not_change_replies(fvp, world):
    fvp.stage("sp1", version=(2, 0))
    ns = await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    assert await call(fvp, Fid.LFA_GET_INVENTORY, SP1, world=world) == ns
