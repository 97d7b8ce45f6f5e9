"""The RMM and its live activation (docs/rmm-lfa.md; smc-abi items 52-55, rmm-lfa items 25-39)."""

from __future__ import annotations

import pytest

from lfafs.platform import images
from lfafs.platform.rmm import glob_data as gd
from lfafs.platform.rmm.boot import EXTRA_LFA_TABLES
from lfafs.smccc import SMC_UNK, Fid
from lfafs.xlat import PAGE, Attr

from .conftest import RMM, activate_on, all_cpus, call, ready, st, variant

POOL_BASE = 1 << 39


def rmm(p):
    return p.rmmd.rmm


async def lfa_rmm(p, version=(1, 0), image=None):
    if image is None:
        await ready(p, RMM, version=version)
    else:
        p.stage("rmm", image=image)
        await call(p, Fid.LFA_GET_INVENTORY, RMM)
        assert st(await call(p, Fid.LFA_PRIME, RMM)) == 0
    return await activate_on(p, RMM, all_cpus(p))


def test_cold_boot_reserves_in_a_fixed_top_down_order(fvp):
    log = fvp.rmmd.allocator.log
    r = rmm(fvp)
    static_tables = r.static_tables_needed() + EXTRA_LFA_TABLES
    sizes = [x.size for x in log]
    assert sizes == [static_tables * PAGE, 514 * PAGE, r.dyn.alloc_bytes, gd.SIZE,
                     (fvp.profile.dram_size // PAGE) * 8]
    assert [x.pa for x in log] == sorted((x.pa for x in log), reverse=True)
    assert log[0].pa + log[0].size == fvp.profile.rmm.limit  # from the top of the carve-out


def test_dynamic_pool_is_stitched_remapped_and_starts_with_glob_data(fvp):
    r = rmm(fvp)
    assert r.dyn.base_va == POOL_BASE and r.dyn.base_level == 1
    assert r.dyn.tables_num == 514 and r.dyn.tables_va == POOL_BASE + (1 << 30) - 514 * PAGE
    assert r.static.llt(POOL_BASE).table_pa == r.dyn.llt(POOL_BASE).table_pa  # stitched
    g = r.glob_data()
    assert g.glob_data_va == POOL_BASE  # the first dynamic allocation
    assert r.dyn.walk(POOL_BASE).pa == g.glob_data_pa == r.glob_pa
    assert (g.fw_img_sequence, g.rmm_state, g.version) == (1, gd.RmmState.ACTIVE, gd.VERSION_1_0)
    assert r.dyn.walk(g.granules_va).pa == g.granules_pa
    assert r.dyn.walk(g.bitmap_va).pa == g.bitmap_pa == r.dyn.alloc_pa
    r.dyn.check()


def test_every_cpu_holds_the_token(fvp):
    assert fvp.rmmd.tokens == [rmm(fvp).glob_pa] * 4


def test_boot_manifest_and_arguments(fvp):
    cpu, ifc, ncpus, shared, token = rmm(fvp).boot_args
    assert (cpu, ifc, ncpus, shared, token) == (0, 0x0002_0000, 4, fvp.profile.rmm.limit, 0)


async def test_reserve_memory_from_realm_world(fvp):
    top = fvp.rmmd.allocator.top
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x3000, 16 << 56, world="realm")
    assert st(r) == 0 and r.x1 % (1 << 16) == 0 and r.x1 + 0x3000 <= top
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, (1 << 12) | 1, world="realm")
    assert (st(r), r.x1) == (-5, 0x1000)  # a flag bit in [55:1]; x1 echoes the input
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 1 << 40, 12 << 56, world="realm")
    assert (st(r), r.x1) == (-4, 1 << 40)  # bigger than the carve-out: refused, not wrapped
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, 12 << 56 | 1, world="realm")
    assert st(r) == 0  # LOCAL_CPU is accepted
    assert (await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, 0, world="ns")).x0 == SMC_UNK


async def test_reserve_memory_runs_out_at_the_payload_limit(fvp):
    while True:
        r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 1 << 20, 12 << 56, world="realm")
        if st(r):
            break
    assert st(r) == -4
    assert fvp.rmmd.allocator.top >= fvp.profile.rmm.payload_limit


async def test_lfa_preserves_every_dynamic_mapping_bit_for_bit(fvp):
    r = rmm(fvp)
    vas = [r.dyn.map(0x9000_0000 + i * PAGE, PAGE, Attr.RW_DATA | Attr.REALM) for i in range(300)]
    big = r.dyn.map(0xA000_0000, 700 * PAGE, Attr.RW_DEV | Attr.NS)
    r.dyn.unmap(vas[100], PAGE)
    used = (big + 700 * PAGE - POOL_BASE) // PAGE
    before = r.dyn.descriptors_bytes(POOL_BASE, used)
    static_before = r.static.descriptor(r.load_pa)
    reservations = list(fvp.rmmd.allocator.log)
    results = await lfa_rmm(fvp)
    assert {cpu: (st(x), x.x1) for cpu, x in results.items()} == {c: (0, 0) for c in range(4)}
    new = rmm(fvp)
    assert new is not r and new.load_pa == fvp.profile.rmm.base + fvp.profile.rmm.bank_size == 0xFDF0_0000
    assert new.boot_args == (new.boot_args[0], 0x0002_0000, 4, fvp.profile.rmm.limit, r.glob_pa)
    assert new.dyn.descriptors_bytes(POOL_BASE, used) == before
    assert new.static.descriptor(new.load_pa) != static_before  # the static region was rebuilt
    assert new.glob_data().fw_img_sequence == 2
    assert fvp.rmmd.allocator.log == reservations  # no new reservation, none freed
    assert fvp.component("rmm").version == (1, 0)
    assert new.dyn.map(0x9000_0000, PAGE, Attr.RW_DATA) == vas[100]  # the allocator state survived
    new.dyn.check()


async def test_granule_states_survive_activation(fvp):
    base = fvp.profile.dram_base
    delegated = [base + i * PAGE for i in range(0, 6000, 2)]
    for addr in delegated:
        assert (await call(fvp, Fid.RMI_GRANULE_DELEGATE, addr)).x0 == 0
    assert (await call(fvp, Fid.RMI_GRANULE_DELEGATE, delegated[0])).x0 == 1  # already delegated
    await lfa_rmm(fvp)
    new = rmm(fvp)
    states = [new.granules.state(i) for i in range(6000)]
    assert states == [1 - (i % 2) for i in range(6000)]
    assert (await call(fvp, Fid.RMI_GRANULE_UNDELEGATE, delegated[1])).x0 == 0
    assert (await call(fvp, Fid.RMI_GRANULE_UNDELEGATE, delegated[1])).x0 == 1
    assert (await call(fvp, Fid.RMI_GRANULE_DELEGATE, base + PAGE)).x0 == 0


async def test_rmi_argument_errors(fvp):
    assert (await call(fvp, Fid.RMI_GRANULE_DELEGATE, fvp.profile.dram_base + 1)).x0 == 1
    assert (await call(fvp, Fid.RMI_GRANULE_DELEGATE, 0x1000)).x0 == 1
    r = await call(fvp, Fid.RMI_VERSION)
    assert (r.x0, r.x1) == (0, 0x10000)


async def test_two_activations_in_a_row(fvp):
    await lfa_rmm(fvp, (1, 0))
    await lfa_rmm(fvp, (1, 1))
    assert rmm(fvp).glob_data().fw_img_sequence == 3
    assert fvp.component("rmm").version == (1, 1)
    assert rmm(fvp).load_pa == 0xFDF0_0000  # no ping-pong between banks


async def assert_failed_and_realm_disabled(p, results):
    assert {st(x) for x in results.values()} == {-11}
    assert p.agent.pending[RMM]
    assert (await call(p, Fid.RMI_VERSION)).x0 == SMC_UNK
    assert (await call(p, Fid.RMM_RESERVE_MEMORY, 0x1000, 12 << 56, world="realm")).x0 == SMC_UNK


@pytest.mark.parametrize("gdv", [0x0002_0000, 0x0000_FFFF])
async def test_incompatible_glob_data_fails_the_boot(fvp, gdv):
    guid = fvp.component("rmm").spec.guid
    image = images.build(guid, (1, 0), fvp.profile.auth_key, rmm=True, glob_data_version=gdv)
    results = await lfa_rmm(fvp, image=image)
    await assert_failed_and_realm_disabled(fvp, results)
    assert "glob_data" in fvp.rmmd.failure
    assert fvp.component("rmm").version == (0, 9)
    fvp.reset()
    assert (await call(fvp, Fid.RMI_VERSION)).x0 == 0  # back after a platform reset


async def test_a_newer_glob_data_minor_is_accepted(fvp):
    guid = fvp.component("rmm").spec.guid
    image = images.build(guid, (1, 0), fvp.profile.auth_key, rmm=True, glob_data_version=0x0001_0003)
    results = await lfa_rmm(fvp, image=image)
    assert {st(x) for x in results.values()} == {0}
    assert rmm(fvp).glob_data().version == 0x0001_0003


async def test_interface_version_mismatch_fails_the_boot(fvp):
    guid = fvp.component("rmm").spec.guid
    image = images.build(guid, (1, 0), fvp.profile.auth_key, rmm=True, rmm_ifc=0x0003_0000)
    results = await lfa_rmm(fvp, image=image)
    await assert_failed_and_realm_disabled(fvp, results)
    assert "VERSION_NOT_VALID" in fvp.rmmd.failure


async def test_injected_boot_failure(fvp):
    fvp.inject("rmm", "boot", status="LFA_ACTIVATION_FAILED", once=True)
    results = await lfa_rmm(fvp)
    await assert_failed_and_realm_disabled(fvp, results)
    assert fvp.last_report.status == -11 and "boot" in fvp.last_report.reason


async def test_compat_mode_boots_but_cannot_activate():
    p = variant(rmm={"compat_reserve_mem": True})
    r = rmm(p)
    assert r.image.compat_reserve_mem
    assert p.rmmd.allocator.log == []  # nothing came from EL3
    assert p.profile.rmm.payload_limit <= r.glob_pa < p.profile.rmm.payload_limit + (24 << 20)
    results = await lfa_rmm(p)
    await assert_failed_and_realm_disabled(p, results)
    assert "COMPAT" in p.rmmd.failure


def test_a_bigger_pool_is_stitched_into_more_l1_entries():
    p = variant(rmm={"va_pool_size": "2G"})
    r = rmm(p)
    assert r.dyn.tables_num == 513 * 2 + 1
    assert r.static.descriptor(POOL_BASE + (1 << 30), level=1) == r.dyn.descriptor(POOL_BASE + (1 << 30), level=1)


async def test_activation_report(fvp):
    r = rmm(fvp)
    r.dyn.map_batch([0x9000_0000] * 1000, PAGE, Attr.RW_DATA)
    await lfa_rmm(fvp, (1, 0))
    rep = fvp.last_report
    assert (rep.component, rep.from_version, rep.to_version, rep.status, rep.cpus) == ("rmm", (0, 9), (1, 0), 0, 4)
    assert rep.dynamic_pages_preserved >= 1000
    assert {"static_tables", "stitch", "glob_data_checks", "glob_data"} <= set(rep.boot_phases)
    assert rep.fw_img_sequence == 2 and rep.leader_cpu in range(4)
    assert rep.tlb_invalidations == 0


def test_pool_base_rule():
    from lfafs.xlat_low_va import pool_base

    assert pool_base(0) == 1 << 39  # max(1 GB, end) rounded up to 512 GB
    assert pool_base(0xFE00_0000) == 1 << 39
    assert pool_base((1 << 39) + 1) == 2 << 39


@pytest.mark.parametrize(("field", "value", "words"), [
    ("low_va_capacity", 12, "capacity"),
    ("static_tables_num", 3, "static tables"),
    ("pool_size", 2 << 30, "dynamic pool"),
    ("pool_base", 2 << 39, "dynamic pool"),
    ("glob_data_pa", 0x1000, "says it is at"),
])
async def test_corrupted_glob_data_fails_the_lfa_boot(fvp, field, value, words):
    r = rmm(fvp)
    g = r.glob_data()
    setattr(g, field, value)
    g.write(fvp.dram, r.glob_pa)
    results = await lfa_rmm(fvp)
    await assert_failed_and_realm_disabled(fvp, results)
    assert words in fvp.rmmd.failure


async def test_a_corrupted_dynamic_context_fails_the_lfa_boot(fvp):
    r = rmm(fvp)
    fvp.dram.write64(gd.dyn_ctx_pa(r.glob_pa), 0)  # the context's magic
    results = await lfa_rmm(fvp)
    await assert_failed_and_realm_disabled(fvp, results)
    assert "dynamic context" in fvp.rmmd.failure


async def test_boot_complete_stores_the_token_even_on_failure(fvp):
    fvp.inject("rmm", "boot", status="LFA_ACTIVATION_FAILED", once=True)
    await lfa_rmm(fvp)
    assert fvp.rmmd.tokens[fvp.last_report.leader_cpu] == 0  # x2 of the failed BOOT_COMPLETE
