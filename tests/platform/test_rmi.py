"""The RMI as TF-RMM v0.9.0 and main answer it (docs/rmm-lfa.md, "The RMI")."""

from __future__ import annotations

import pytest

from lfafs.platform.rmm.granules import GranuleState
from lfafs.smccc import RMI_ABI_VERSION, SMC_UNK, Fid, RmiStatus

from .conftest import call, variant

PAGE = 4096
RMI_1_0, RMI_2_0, RMI_2_1 = 0x1_0000, 0x2_0000, 0x2_0001
RMI_REALM_CREATE = 0xC400_0158
RMI_REALM_TERMINATE = 0xC400_0201  # main only
RMI_RTT_MAP_UNPROTECTED = 0xC400_015F  # v0.9 only
OK, INPUT, GLOBAL = RmiStatus.SUCCESS, RmiStatus.ERROR_INPUT, RmiStatus.ERROR_GLOBAL


def regs4(r):
    return (r.x0, r.x1, r.x2, r.x3)


async def activated(p):
    assert (await call(p, Fid.RMI_RMM_ACTIVATE)).x0 == OK
    return p


# -- dispatch --------------------------------------------------------------------------------------

async def test_version_speaks_rmi_2_0_only(fvp):
    # TF-RMM runtime/rmi/version.c, smc_version(): x1 = lower, x2 = higher supported revision
    assert RMI_ABI_VERSION == RMI_2_0
    assert regs4(await call(fvp, Fid.RMI_VERSION, RMI_2_0)) == (OK, RMI_2_0, RMI_2_0, 0)
    for asked in (RMI_1_0, RMI_2_1, 0):
        assert regs4(await call(fvp, Fid.RMI_VERSION, asked)) == (INPUT, RMI_2_0, RMI_2_0, 0)


@pytest.mark.parametrize("fid", [Fid.RMI_GRANULE_DELEGATE, Fid.RMI_GRANULE_UNDELEGATE])
async def test_single_granule_delegation_is_an_unknown_function(fvp, fid):
    # TF-RMM d43664b6 (in v0.9.0) removed them: runtime/core/handler.c answers SMC_UNKNOWN with x1..x3 zeroed
    await activated(fvp)
    assert regs4(await call(fvp, fid, fvp.profile.dram_base, 1, 2)) == (SMC_UNK, 0, 0, 0)


async def test_results_zero_x1_to_x3_and_keep_x4(fvp):
    # TF-RMM runtime/core/aarch64/entry.S, rmm_handler: x[0..3] zeroed, x4..x7 preserved
    r = await call(fvp, Fid.RMI_RMM_ACTIVATE, 11, 22, 33, 44)
    assert (r.x0, r.x1, r.x2, r.x3, r.x4) == (OK, 0, 0, 0, 44)


async def test_every_rmi_id_tf_a_forwards_reaches_the_rmm(fvp):
    # TF-A include/services/rmmd_svc.h, is_rmi_fid(): 0x150-0x18F and 0x1D0-0x2CF go to the RMM,
    # whose handler table answers an id it does not hold with SMC_UNKNOWN
    for fid in (0xC400_018F, 0xC400_01D4, 0xC400_02CF):
        assert regs4(await call(fvp, fid, 1, 2, 3)) == (SMC_UNK, 0, 0, 0)
    assert (await call(fvp, Fid.RMI_VERSION, RMI_2_0, world="secure")).x0 == SMC_UNK


# -- gating by rmm_state ---------------------------------------------------------------------------

async def test_before_rmm_activate_only_the_query_calls_run(fvp):
    # TF-RMM runtime/core/handler.c, handle_ns_smc(): FEATURES, VERSION, RMM_CONFIG_GET and
    # GRANULE_TRACKING_GET always; everything else RMI_ERROR_GLOBAL until RMM_STATE_ACTIVE
    base = fvp.profile.dram_base
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base, base + PAGE)).x0 == GLOBAL
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_UNDELEGATE, base, base + PAGE)).x0 == GLOBAL
    assert (await call(fvp, RMI_REALM_CREATE, base, base + PAGE)).x0 == GLOBAL
    assert (await call(fvp, Fid.RMI_VERSION, RMI_2_0)).x0 == OK
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_GET, base)).x0 == OK
    assert (await call(fvp, Fid.RMI_GRANULE_TRACKING_GET, base, base + PAGE)).x0 == OK
    assert (await call(fvp, Fid.RMI_FEATURES, 0)).x0 == SMC_UNK  # through the gate; not modelled by lfafs
    assert fvp.rmmd.rmm.granules.state(0) == GranuleState.NS


async def test_rmm_activate_moves_init_to_active_once(fvp):
    # TF-RMM runtime/rmi/activate.c, smc_rmm_activate(); CONFIG_SET and ACTIVATE need RMM_STATE_INIT
    base = fvp.profile.dram_base
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_SET, base)).x0 == OK
    await activated(fvp)
    assert (await call(fvp, Fid.RMI_RMM_ACTIVATE)).x0 == GLOBAL
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_SET, base)).x0 == GLOBAL
    assert regs4(await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base, base + PAGE)) == (OK, base + PAGE, 0, 0)
    assert (await call(fvp, RMI_REALM_CREATE, base, base + PAGE)).x0 == SMC_UNK  # past the gate: not modelled


async def test_the_handler_table_follows_the_release():
    # runtime/core/handler.c, smc_handlers[]: REALM_TERMINATE is new at main, RTT_MAP_UNPROTECTED gone
    for release, terminate, map_unprotected in (("main", GLOBAL, SMC_UNK), ("v0.9", SMC_UNK, GLOBAL)):
        p = variant(rmm={"release": release})
        assert (await call(p, RMI_REALM_TERMINATE, 0)).x0 == terminate
        assert (await call(p, RMI_RTT_MAP_UNPROTECTED, 0)).x0 == map_unprotected


# -- granule delegation ----------------------------------------------------------------------------

async def test_range_delegate_does_one_granule_and_returns_the_next(fvp):
    # TF-RMM runtime/rmi/granule.c, smc_granule_range_delegate(): x1 = base on failure, base + 4 KB
    # on success; the simplified implementation delegates exactly one granule whatever the top
    base = (await activated(fvp)).profile.dram_base
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base, base + 16 * PAGE)
    assert (r.x0, r.x1) == (OK, base + PAGE)
    states = [fvp.rmmd.rmm.granules.state(i) for i in range(3)]
    assert states == [GranuleState.DELEGATED, GranuleState.NS, GranuleState.NS]
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base, base + PAGE)
    assert (r.x0, r.x1) == (INPUT, base)  # already delegated


@pytest.mark.parametrize(("offset", "top", "why"), [
    (1, PAGE, "unaligned base"),
    (0, PAGE + 8, "unaligned top"),
    (0, 0, "top below base + 4 KB"),
    (PAGE, PAGE, "empty range"),
])
async def test_range_delegate_refuses_a_bad_range_with_x1_the_base(fvp, offset, top, why):
    base = (await activated(fvp)).profile.dram_base
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base + offset, base + top)
    assert (r.x0, r.x1) == (INPUT, base + offset), why


@pytest.mark.parametrize("addr", [0x1000, 0xFFFF_FFFF_FFFF_F000, 0x8_8000_0000])
async def test_range_delegate_refuses_memory_without_a_granule(fvp, addr):
    # find_granule() is NULL outside the manifest's DRAM; no device granules are modelled;
    # addr + 4 KB wraps at the top of the address space as the C does
    await activated(fvp)
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, addr, (addr + PAGE) % (1 << 64) or PAGE)
    assert (r.x0, r.x1) == (INPUT, addr)


async def test_the_rmms_own_memory_cannot_be_delegated(fvp):
    # rmm_el3_ifc_gtsi_delegate(): EL3's GPT moves only Non-secure granules; the carve-out is Realm PAS
    await activated(fvp)
    pa = fvp.rmmd.rmm.glob_pa
    assert regs4(await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, pa, pa + PAGE)) == (INPUT, pa, 0, 0)


async def test_range_undelegate_scrubs_the_granule(fvp):
    # TF-RMM runtime/rmi/granule.c, smc_granule_undelegate(): buffer_granule_sanitize() before NS
    base = (await activated(fvp)).profile.dram_base + 64 * PAGE
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base, base + PAGE)).x0 == OK
    fvp.dram.write(base, b"realm data")
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_UNDELEGATE, base, base + 2 * PAGE)
    assert (r.x0, r.x1) == (OK, base + PAGE)
    assert fvp.dram.read(base, 10) == bytes(10)
    r = await call(fvp, Fid.RMI_GRANULE_RANGE_UNDELEGATE, base, base + PAGE)
    assert (r.x0, r.x1) == (INPUT, base)  # NS again


# -- the query calls -------------------------------------------------------------------------------

async def test_tracking_get_at_main_takes_a_range_and_returns_its_end(fvp):
    # TF-RMM main runtime/rmi/granule.c, smc_granule_tracking_get(start, end)
    base = fvp.profile.dram_base
    assert regs4(await call(fvp, Fid.RMI_GRANULE_TRACKING_GET, base, base + (1 << 30))) == (OK, 0, 2, base + (1 << 30))
    assert regs4(await call(fvp, Fid.RMI_GRANULE_TRACKING_GET, 0x1000, 0x3000)) == (OK, 0, 1, 0x3000)  # untracked
    for start, end in ((base, base), (base + PAGE, base), (base + 1, base + PAGE), (base, 1 << 48)):
        assert regs4(await call(fvp, Fid.RMI_GRANULE_TRACKING_GET, start, end)) == (INPUT, 0, 0, 0)


async def test_tracking_get_at_v0_9_takes_one_1gb_region():
    # tf-rmm-v0.9.0 runtime/rmi/granule.c, smc_granule_tracking_get(addr)
    p = variant(rmm={"release": "v0.9"})
    assert regs4(await call(p, Fid.RMI_GRANULE_TRACKING_GET, 0x8000_0000, 123)) == (OK, 0, 2, 0)
    assert regs4(await call(p, Fid.RMI_GRANULE_TRACKING_GET, 0x4000_0000)) == (OK, 0, 1, 0)
    assert regs4(await call(p, Fid.RMI_GRANULE_TRACKING_GET, 0x8000_1000)) == (INPUT, 0, 0, 0)


async def test_config_get_writes_the_whole_config_page(fvp):
    # TF-RMM runtime/rmi/granule.c, smc_rmm_config_get(): struct rmi_rmm_config is 4 KB, both fields 0
    # (RMI_GRAN_4KB_TRACKING_REGION_SIZE_1GB, RMI_GRANULE_SIZE_4KB)
    page = fvp.profile.dram_base + 8 * PAGE
    fvp.dram.write(page, b"\xff" * PAGE)
    assert regs4(await call(fvp, Fid.RMI_RMM_CONFIG_GET, page)) == (OK, 0, 0, 0)
    assert fvp.dram.read(page, PAGE) == bytes(PAGE)
    for bad in (0, page + 8, 0x1000):
        assert (await call(fvp, Fid.RMI_RMM_CONFIG_GET, bad)).x0 == INPUT


async def test_config_set_accepts_only_4kb_granules_and_1gb_tracking(fvp):
    # TF-RMM runtime/rmi/granule.c, smc_rmm_config_set()
    page = fvp.profile.dram_base + 8 * PAGE
    fvp.dram.write64(page + 8, 1)  # rmi_granule_size: 16 KB
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_SET, page)).x0 == INPUT
    fvp.dram.write64(page + 8, 0)
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_SET, page)).x0 == OK


async def test_config_calls_need_an_ns_granule(fvp):
    # granule_unlocked_state(g_cfg) != GRANULE_STATE_NS -> RMI_ERROR_INPUT
    page = (await activated(fvp)).profile.dram_base
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, page, page + PAGE)).x0 == OK
    assert (await call(fvp, Fid.RMI_RMM_CONFIG_GET, page)).x0 == INPUT
