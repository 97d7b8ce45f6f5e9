"""The RMM's boots, memory layout and live activation (docs/rmm-lfa.md, "The RMM model")."""

from __future__ import annotations

import attrs
import pytest

from lfafs.platform import images
from lfafs.platform.memory import ReserveAllocator, make_dram
from lfafs.platform.rmm import glob_data as gd
from lfafs.platform.rmm import pcpu_data
from lfafs.platform.rmm.boot import APP_SIZE, CODE_SIZE, EXTRA_LFA_TABLES, RO_SIZE, RW_SIZE, UART_ATTR, RmmImage
from lfafs.platform.rmm.granules import GranuleState
from lfafs.platform.rmm.manifest import read_consoles, write_manifest
from lfafs.platform.rmmd import FVP_CONSOLE
from lfafs.smccc import RMI_ABI_VERSION, SMC_UNK, Fid, RmmBootStatus
from lfafs.xlat import PAGE, Attr

from .conftest import RMM, activate_on, all_cpus, call, ready, st, variant

POOL_BASE = 1 << 39
LOCAL_CPU_ARGS = (12 << 56) | 1  # 4 KB alignment, RESERVE_MEM_FLAG_LOCAL_CPU


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


async def rmi_activate(p):
    assert (await call(p, Fid.RMI_RMM_ACTIVATE)).x0 == 0


def assert_contiguous_from(log, top):
    for r in log:
        assert r.pa + r.size == top and r.pa % PAGE == 0
        top = r.pa


# -- the EL3 reservations -------------------------------------------------------------------------

def test_cold_boot_reserves_in_tf_rmm_order_top_down_from_rmm_limit(fvp):
    # TF-RMM main: runtime/core/aarch64/head.S (the boot CPU's per-CPU region first),
    # lib/xlat_low_va/src/xlat_low_va.c (static then dynamic tables), lib/glob_data/src/glob_data.c,
    # glob_data_init() (glob_data then the granules); each secondary's region on its first warm boot.
    log, r = fvp.rmmd.allocator.log, rmm(fvp)
    static_tables = r.static_tables_needed() + EXTRA_LFA_TABLES
    region = pcpu_data.REGION_PAGES * PAGE
    assert [x.size for x in log] == [region, static_tables * PAGE, 514 * PAGE, gd.size(r.dyn.alloc_bytes),
                                     (fvp.profile.dram_size // PAGE) * 2, region, region, region]
    assert [x.local_cpu for x in log] == [True, False, False, False, False, True, True, True]
    assert_contiguous_from(log, fvp.profile.rmm.limit)


def test_v0_9_reserves_the_same_sequence_without_per_cpu_regions():
    # tf-rmm-v0.9.0: no lib/pcpu_data; the stacks live in the image
    p = variant(rmm={"release": "v0.9"})
    log, r = p.rmmd.allocator.log, rmm(p)
    assert [x.size for x in log] == [(r.static_tables_needed() + EXTRA_LFA_TABLES) * PAGE, 514 * PAGE,
                                     gd.size(r.dyn.alloc_bytes), (p.profile.dram_size // PAGE) * 2]
    assert_contiguous_from(log, p.profile.rmm.limit)


def test_the_granule_array_is_two_bytes_a_granule(fvp):
    # TF-RMM lib/granule/include/granule_types.h: struct granule { uint16_t descriptor; };
    # glob_data.c: round_up(sizeof(struct granule) * max_gr, GRANULE_SIZE)
    g = rmm(fvp).glob_data()
    assert g.granules_size == 1 << 20 == round(2 * (2 << 30) / PAGE)
    assert rmm(fvp).dyn.walk(g.granules_va + g.granules_size - PAGE).pa == g.granules_pa + g.granules_size - PAGE


async def test_a_granule_descriptor_has_tf_rmms_bit_layout(fvp):
    # granule_types.h: lock bit 15, state bits 14:10, refcount bits 9:0; __granule_set_state keeps the refcount
    r, base = rmm(fvp), fvp.profile.dram_base
    g = r.glob_data()
    fvp.dram.write(g.granules_pa + 2 * 5, (3).to_bytes(2, "little"))  # granule 5: NS, refcount 3
    await rmi_activate(fvp)
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base + 5 * PAGE, base + 6 * PAGE)).x0 == 0
    assert int.from_bytes(fvp.dram.read(g.granules_pa + 10, 2), "little") == (GranuleState.DELEGATED << 10) | 3
    assert r.granules.state(5) == GranuleState.DELEGATED and r.granules.descriptor(6) == 0


# -- RMM_RESERVE_MEMORY at EL3 --------------------------------------------------------------------

async def test_reserve_memory_from_realm_world(fvp):
    # TF-A rmmd_main.c, rmmd_rmm_el3_handler(): SMC_RET2(handle, ret, x2); rmmd_mem.c, rmmd_reserve_memory()
    top = fvp.rmmd.allocator.top
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x3000, 16 << 56, world="realm")
    assert st(r) == 0 and r.x1 % (1 << 16) == 0 and r.x1 + 0x3000 <= top
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, (1 << 12) | 1, world="realm")
    assert (st(r), r.x1, r.x2) == (-5, (1 << 12) | 1, (1 << 12) | 1)  # a flag bit in [55:1]; x1 = the args word
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, LOCAL_CPU_ARGS, world="realm")
    assert st(r) == 0 and fvp.rmmd.allocator.log[-1].local_cpu  # LOCAL_CPU is accepted, and ignored
    assert (await call(fvp, Fid.RMM_RESERVE_MEMORY, 0x1000, 0, world="ns")).x0 == SMC_UNK


async def test_reserve_memory_of_size_zero_succeeds_at_the_aligned_top(fvp):
    # Arm plat_rmmd_reserve_memory() (plat/arm/common/plat_rmm_mem_carveout.c) does not check the size
    a = fvp.rmmd.allocator
    top = a.top
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0, 12 << 56, world="realm")
    assert (st(r), r.x1, a.top) == (0, top, top)
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 0, 24 << 56, world="realm")
    assert (st(r), r.x1, a.top) == (0, top & ~((1 << 24) - 1), top & ~((1 << 24) - 1))


async def test_a_reservation_bigger_than_the_top_is_refused_not_wrapped(fvp):
    # TF-A's (top_mem - size) wraps and passes the RMM_PAYLOAD_LIMIT check; lfafs refuses (docs/rmm-lfa.md)
    r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 1 << 40, 12 << 56, world="realm")
    assert (st(r), r.x1) == (-4, 12 << 56)


async def test_reserve_memory_runs_out_at_the_payload_limit(fvp):
    while True:
        r = await call(fvp, Fid.RMM_RESERVE_MEMORY, 1 << 20, 12 << 56, world="realm")
        if st(r):
            break
    assert (st(r), r.x1) == (-4, 12 << 56)
    assert fvp.rmmd.allocator.top >= fvp.profile.rmm.payload_limit


# -- the low VA ------------------------------------------------------------------------------------

def test_the_static_low_va_has_tf_rmms_regions(fvp):
    # TF-RMM lib/xlat_low_va/src/xlat_low_va.c, xlat_low_va_static_setup(): APP, CODE, RO, RW, SHARED
    # (one guard page above RW), VA_POOL; plat/arm/src/arm_setup.c, plat_setup(): the console's UART
    r = rmm(fvp)
    load, g = r.load_pa, 1 << 30
    code = load + APP_SIZE
    rw_end = code + CODE_SIZE + RO_SIZE + RW_SIZE
    got = [(x.va, x.pa, x.size, x.attr, x.granularity) for x in r.static.regions]
    assert got == [
        (0x1C0C_0000, 0x1C0C_0000, PAGE, UART_ATTR, g),
        (load, load, APP_SIZE, Attr.RO_DATA | Attr.REALM, g),
        (code, code, CODE_SIZE, Attr.CODE | Attr.REALM, g),
        (code + CODE_SIZE, code + CODE_SIZE, RO_SIZE, Attr.RO_DATA | Attr.REALM, g),
        (rw_end - RW_SIZE, rw_end - RW_SIZE, RW_SIZE, Attr.RW_DATA | Attr.REALM, g),
        (rw_end + PAGE, fvp.profile.rmm.limit, PAGE, Attr.RW_DATA | Attr.REALM, g),
        (POOL_BASE, 0, 1 << 30, Attr.TRANSIENT, g),
    ]
    assert r.static.walk(0x1C0C_0000).pa == 0x1C0C_0000
    assert r.static.walk(rw_end).pa is None  # the guard page


def test_the_uart_comes_from_the_manifests_console(fvp):
    # TF-A plat/arm/board/fvp/fvp_common.c, plat_rmmd_load_manifest(): one pl011 console
    assert read_consoles(fvp.dram, fvp.profile.rmm.limit) == [FVP_CONSOLE]
    assert rmm(fvp).uart == FVP_CONSOLE.base


def boot_with_consoles(p, consoles):
    """A first boot of the platform's RMM image on fresh DRAM whose manifest lists ``consoles``."""
    spec, base, size = p.profile.rmm, p.profile.dram_base, p.profile.dram_size
    mem = make_dram(base, size)
    write_manifest(mem, spec.limit, [(base, size)], consoles)
    image = RmmImage(rmm(p).image, spec.base, spec, mem, base, size, spec.limit)
    el3 = ReserveAllocator(floor=spec.payload_limit, top=spec.limit)
    return image, image.cold_boot(el3.reserve, 0, 0x0002_0000, 1, spec.limit, 0)


def test_without_a_console_the_uart_region_stays_at_zero(fvp):
    # TF-RMM arm_setup.c: plat_regions[] = { ARM_RMM_UART } is MAP_REGION_FLAT(0UL, SZ_4K, ...) until a
    # console fills in its base
    image, result = boot_with_consoles(fvp, [])
    assert result.status == RmmBootStatus.SUCCESS
    r0 = image.static.regions[0]
    assert (r0.va, r0.pa, r0.size, r0.attr) == (0, 0, PAGE, UART_ATTR) and image.static.walk(0).pa == 0


def test_a_console_that_is_not_a_pl011_fails_the_boot(fvp):
    # TF-RMM arm_setup.c, plat_setup(): strncmp(name, "pl011") != 0 -> E_RMM_BOOT_UNKNOWN_ERROR
    _, result = boot_with_consoles(fvp, [attrs.evolve(FVP_CONSOLE, name="ns16550")])
    assert result.status == RmmBootStatus.UNKNOWN_ERROR and "pl011" in result.reason


def test_dynamic_pool_is_stitched_remapped_and_starts_with_glob_data(fvp):
    # TF-RMM xlat_low_va_dyn_setup(); glob_data_init() asserts va == xlat_low_va_get_dyn_va_base()
    r = rmm(fvp)
    assert r.dyn.base_va == POOL_BASE and r.dyn.base_level == 1
    assert r.dyn.tables_num == 514 and r.dyn.tables_va == POOL_BASE + (1 << 30) - 514 * PAGE
    assert r.static.llt(POOL_BASE).table_pa == r.dyn.llt(POOL_BASE).table_pa  # stitched
    g = r.glob_data()
    assert g.glob_data_va == POOL_BASE  # the first dynamic allocation
    assert r.dyn.walk(POOL_BASE).pa == g.glob_data_pa == r.glob_pa
    assert (g.fw_img_sequence, g.rmm_state, g.version) == (1, gd.RmmState.INIT, gd.VERSION_1_0)
    assert g.granules_va == POOL_BASE + g.glob_data_size  # VA order: glob_data, then the granules
    assert r.dyn.walk(g.bitmap_va).pa == g.bitmap_pa == r.dyn.alloc_pa == g.glob_data_pa + gd.HEADER_SIZE
    r.dyn.check()


def test_boot_manifest_and_arguments(fvp):
    cpu, ifc, ncpus, shared, token = rmm(fvp).boot_args
    assert (cpu, ifc, ncpus, shared, token) == (0, 0x0002_0000, 4, fvp.profile.rmm.limit, 0)


# -- live activation -------------------------------------------------------------------------------

async def test_lfa_preserves_every_dynamic_mapping_bit_for_bit(fvp):
    # TF-RMM xlat_low_va_dyn_fixup(): the dynamic tables are reused, the static ones rebuilt
    r = rmm(fvp)
    vas = [r.dyn.map(0x9000_0000 + i * PAGE, PAGE, Attr.RW_DATA | Attr.REALM) for i in range(300)]
    big = r.dyn.map(0xA000_0000, 700 * PAGE, Attr.RW_DEV | Attr.NS)
    r.dyn.unmap(vas[100], PAGE)
    used = (big + 700 * PAGE - POOL_BASE) // PAGE
    before = r.dyn.descriptors_bytes(POOL_BASE, used)
    static_before = r.static.descriptor(r.load_pa)
    reservations = list(fvp.rmmd.allocator.log)
    tokens = list(fvp.rmmd.tokens)
    results = await lfa_rmm(fvp)
    assert {cpu: (st(x), x.x1) for cpu, x in results.items()} == {c: (0, 0) for c in range(4)}
    new = rmm(fvp)
    assert new is not r and new.load_pa == fvp.profile.rmm.base + fvp.profile.rmm.bank_size == 0xFDF0_0000
    leader = fvp.last_report.leader_cpu
    assert new.boot_args == (leader, 0x0002_0000, 4, fvp.profile.rmm.limit, tokens[leader])
    assert new.dyn.descriptors_bytes(POOL_BASE, used) == before
    assert new.static.descriptor(new.load_pa) != static_before  # the static region was rebuilt
    assert new.glob_data().fw_img_sequence == 2
    assert fvp.rmmd.allocator.log == reservations  # no new reservation, none freed
    assert fvp.rmmd.tokens == tokens  # every CPU kept its per-CPU region
    assert fvp.component("rmm").version == (1, 0)
    assert new.dyn.map(0x9000_0000, PAGE, Attr.RW_DATA) == vas[100]  # the allocator state survived
    new.dyn.check()


async def test_granule_states_survive_activation(fvp):
    base = fvp.profile.dram_base
    await rmi_activate(fvp)
    delegated = [base + i * PAGE for i in range(0, 6000, 2)]
    for addr in delegated:
        assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, addr, addr + PAGE)).x0 == 0
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, delegated[0], delegated[0] + PAGE)).x0 == 1
    await lfa_rmm(fvp)
    new = rmm(fvp)
    assert [new.granules.state(i) for i in range(6000)] == [1 - (i % 2) for i in range(6000)]
    undelegate = Fid.RMI_GRANULE_RANGE_UNDELEGATE
    assert (await call(fvp, undelegate, delegated[1], delegated[1] + PAGE)).x0 == 0
    assert (await call(fvp, undelegate, delegated[1], delegated[1] + PAGE)).x0 == 1
    assert (await call(fvp, Fid.RMI_GRANULE_RANGE_DELEGATE, base + PAGE, base + 2 * PAGE)).x0 == 0


@pytest.mark.parametrize("activate_first", [False, True])
async def test_rmm_state_survives_activation_unchanged(fvp, activate_first):
    # TF-RMM glob_data_init(): a reused glob_data keeps rmm_state; only RMI_RMM_ACTIVATE moves it
    if activate_first:
        await rmi_activate(fvp)
    await lfa_rmm(fvp)
    want = gd.RmmState.ACTIVE if activate_first else gd.RmmState.INIT
    assert rmm(fvp).glob_data().rmm_state == want
    assert (await call(fvp, Fid.RMI_RMM_ACTIVATE)).x0 == (11 if activate_first else 0)


async def test_two_activations_in_a_row(fvp):
    await lfa_rmm(fvp, (1, 0))
    await lfa_rmm(fvp, (1, 1))
    assert rmm(fvp).glob_data().fw_img_sequence == 3
    assert fvp.component("rmm").version == (1, 1)
    assert rmm(fvp).load_pa == 0xFDF0_0000  # no ping-pong between banks


async def assert_failed_and_realm_disabled(p, results):
    assert {st(x) for x in results.values()} == {-11}
    assert p.agent.pending[RMM]
    assert (await call(p, Fid.RMI_VERSION, RMI_ABI_VERSION)).x0 == SMC_UNK
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
    assert (await call(fvp, Fid.RMI_VERSION, RMI_ABI_VERSION)).x0 == 0  # back after a platform reset


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
