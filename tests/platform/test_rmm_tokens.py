"""Activation tokens by TF-RMM release, and compatibility mode (docs/rmm-lfa.md, "Releases")."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform import PlatformError, ProfileError
from lfafs.platform.profile import profile_from_dict
from lfafs.platform.rmm import compat_mem, pcpu_data
from lfafs.platform.rmmd import RMM_HANG_S
from lfafs.smccc import RMI_ABI_VERSION, SMC_UNK, Fid, RmmBootStatus

from .conftest import RMM, activate_on, all_cpus, call, ready, st, variant

PAGE = 4096
LOCAL_CPU_ARGS = (12 << 56) | 1


async def lfa_rmm(p):
    await ready(p, RMM, version=(1, 0))
    return await activate_on(p, RMM, all_cpus(p))


def test_main_is_the_default_release(fvp):
    assert fvp.profile.rmm.release == "main"


def test_an_unknown_release_is_refused_naming_the_field():
    with pytest.raises(ProfileError) as e:
        profile_from_dict({"base": "fvp", "rmm": {"release": "v1.0"}}, "<t>")
    assert e.value.field == "rmm.release" and "main, v0.9" in str(e.value)


def test_at_main_every_cpu_holds_its_own_per_cpu_region(fvp):
    # TF-RMM main lib/pcpu_data/src/pcpu_data.c, pcpu_metadata_early_init(): the token is the region base,
    # which is the metadata page; runtime/core/init.c, rmm_warmboot_main() returns pcpu_get_region_base_pa()
    tokens = fvp.rmmd.tokens
    regions = [r.pa for r in fvp.rmmd.allocator.log if r.local_cpu]
    assert tokens == [regions[0], *regions[1:]] and len(set(tokens)) == 4
    for token in tokens:
        m = pcpu_data.read(fvp.dram, token)
        assert m.glob_data_pa == fvp.rmmd.rmm.glob_pa
        assert (m.stack_base_pa - token, m.stack_top_pa - m.stack_base_pa) == (2 * PAGE, 5 * PAGE)
        assert m.high_va_tbls_top_pa == token + 9 * PAGE


def test_at_v0_9_every_cpu_holds_glob_datas_pa():
    # tf-rmm-v0.9.0 runtime/core/init.c, rmm_warmboot_main(): the token is glob_data_init()'s PA
    p = variant(rmm={"release": "v0.9"})
    assert p.rmmd.tokens == [p.rmmd.rmm.glob_pa] * 4
    assert not any(r.local_cpu for r in p.rmmd.allocator.log)


@pytest.mark.parametrize("release", ["main", "v0.9"])
async def test_an_activation_hands_each_cpu_its_token_back(release):
    # TF-A rmmd_rmm_lfa.c: the leader re-enters the cold path with its token in x4, the others the
    # warm path with theirs in x1; the new image hands the same tokens back
    p = variant(rmm={"release": release})
    before = list(p.rmmd.tokens)
    results = await lfa_rmm(p)
    assert {st(r) for r in results.values()} == {0}
    assert p.rmmd.tokens == before
    assert p.rmmd.rmm.boot_args[4] == before[p.last_report.leader_cpu]
    assert p.rmmd.rmm.glob_data().fw_img_sequence == 2


async def test_a_corrupted_metadata_page_fails_the_lfa_boot(fvp):
    # TF-RMM trusts a non-zero token (pcpu_metadata_early_init() only asserts); lfafs checks it names a region
    for token in fvp.rmmd.tokens:
        fvp.dram.write64(token, 7)  # the metadata version
    results = await lfa_rmm(fvp)
    assert {st(r) for r in results.values()} == {-11}
    assert "per-CPU metadata" in fvp.rmmd.failure


def test_a_cpu_that_cannot_get_its_region_reports_no_mem_with_the_args_word(fvp):
    # TF-RMM lib/rmm_el3_ifc/src/aarch64/rmm_el3_ifc_helpers.S, rmm_el3_ifc_early_reserve_mem_local():
    # BOOT_COMPLETE(E_RMM_BOOT_NO_MEM) with x2 still holding the RESERVE_MEMORY args word, which
    # TF-A rmmd_main.c stores as the CPU's token
    fvp.power(3, False)
    fvp.rmmd.tokens[3] = 0  # as if CPU 3 never entered the RMM
    fvp.rmmd.allocator.top = fvp.rmmd.allocator.floor
    fvp.power(3, True)
    assert fvp.rmmd.boot_failed and "NO_MEM" in fvp.rmmd.failure
    assert fvp.rmmd.tokens[3] == LOCAL_CPU_ARGS


# -- compatibility mode (RMM_EL3_COMPAT_RESERVE_MEM) ---------------------------------------------

def test_compat_mode_at_main_cannot_boot():
    # TF-RMM main head.S -> pcpu_region_alloc() issues a raw RMM_RESERVE_MEMORY with no compat
    # #ifdef; an EL3 without it answers SMC_UNK, so the boot ends with E_RMM_BOOT_NO_MEM
    with pytest.raises(PlatformError, match="NO_MEM.*per-CPU region"):
        variant(rmm={"compat_reserve_mem": True})


async def test_compat_mode_at_v0_9_boots_and_its_activation_hangs(autojump_clock):
    # tf-rmm-v0.9.0 plat/arm/src/arm_setup.c, plat_setup(): a compat image given x4 != 0 calls panic(),
    # an endless loop, after rmm_el3_ifc_init and the console: no RMM_BOOT_COMPLETE ever comes
    p = variant(rmm={"compat_reserve_mem": True, "release": "v0.9"})
    r = p.rmmd.rmm
    assert r.image.compat_reserve_mem and p.rmmd.allocator.log == []  # nothing came from EL3
    assert p.profile.rmm.payload_limit <= r.glob_pa < p.profile.rmm.payload_limit + compat_mem.ARRAY_SIZE
    assert (await call(p, Fid.RMM_RESERVE_MEMORY, 0x1000, 12 << 56, world="realm"))[:3] == (SMC_UNK, 0x1000, 12 << 56)
    tokens = list(p.rmmd.tokens)
    await ready(p, RMM, version=(1, 0))
    since = p.trace.last_seq
    t0 = trio.current_time()
    results = await activate_on(p, RMM, all_cpus(p))
    assert trio.current_time() - t0 >= RMM_HANG_S  # the leader was stuck in the new image
    assert {st(x) for x in results.values()} == {-11}
    assert not [x for x in p.trace.records(since) if x.fid == Fid.RMM_BOOT_COMPLETE]
    assert p.rmmd.tokens == tokens  # no BOOT_COMPLETE stored anything
    assert "hung" in p.rmmd.failure and "COMPAT" in p.rmmd.failure
    assert (await call(p, Fid.RMI_VERSION, RMI_ABI_VERSION)).x0 == SMC_UNK


def test_a_cold_boot_result_carries_the_hang():
    p = variant(rmm={"compat_reserve_mem": True, "release": "v0.9"})
    image = p.rmmd.rmm.image
    p.rmmd.tokens[0] = p.rmmd.rmm.glob_pa
    result = p.rmmd.cold_boot(0, p.rmmd.new_image(image, p.rmmd.second_bank))
    assert result.hung and result.status == RmmBootStatus.UNKNOWN_ERROR
    assert not p.rmmd.boot_failed  # nothing reached EL3
