"""Fault injection at every stage, the SMC trace, reports, reset."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform import FaultError
from lfafs.smccc import Fid

from .conftest import RMM, SP1, activate_on, all_cpus, call, ready, st, variant


@pytest.mark.parametrize(("stage", "status", "code"), [
    ("load", "LFA_AUTH_ERROR", -3), ("prime", "LFA_CRITICAL_ERROR", -5), ("notify", "LFA_ACTIVATION_FAILED", -11),
    ("activate", "LFA_DEVICE_ERROR", -6),
    # an SP whose new image fails: Hafnium answers FFA_ABORTED, TF-A's
    # spmd_logical_sp.c convert_ffa_error_code_to_lfa() makes it -5
    ("boot", "LFA_CRITICAL_ERROR", -5),
])
async def test_a_fault_at_each_stage_reaches_the_caller(fvp, stage, status, code):
    fvp.inject("sp1", stage, status=status, once=True)
    fvp.stage("sp1", version=(2, 0))
    await call(fvp, Fid.LFA_GET_INVENTORY, SP1)
    r = await call(fvp, Fid.LFA_PRIME, SP1)
    if stage in ("load", "prime"):
        assert st(r) == code
        r = await call(fvp, Fid.LFA_PRIME, SP1)  # once: the retry succeeds
    assert st(r) == 0
    r = await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)
    if stage not in ("load", "prime"):
        assert st(r) == code
        assert fvp.component("sp1").version == (1, 0)
        r = await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)
    assert st(r) == 0 and fvp.component("sp1").version == (2, 0)


async def test_a_fault_until_cleared(fvp):
    fvp.inject("sp1", "activate", status="LFA_BUSY")
    await ready(fvp, SP1)
    for _ in range(3):
        assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == -2
    fvp.clear_faults("sp1")
    assert st(await call(fvp, Fid.LFA_ACTIVATE, SP1, 1)) == 0


async def test_latency_is_on_the_platform_clock(fvp, autojump_clock):
    fvp.inject("rmm", "activate", latency=2.5)
    await ready(fvp, RMM)
    t0 = trio.current_time()
    await activate_on(fvp, RMM, all_cpus(fvp))
    assert trio.current_time() - t0 == pytest.approx(2.5)


@pytest.mark.parametrize(("stage", "kw", "words"), [
    ("boot", {"status": "LFA_BUSY"}, "cannot return"),
    ("notify", {"call_again": 2}, "only the load and activate"),
    ("nowhere", {"status": "LFA_BUSY"}, "unknown stage"),
    ("load", {}, "needs a status"),
    ("load", {"status": "LFA_NOPE"}, "unknown LFA status"),
    ("load", {"latency": -1}, "latency"),
])
def test_impossible_faults_are_refused(fvp, stage, kw, words):
    with pytest.raises((FaultError, ValueError)) as e:
        fvp.inject("sp1", stage, **kw)
    assert words in str(e.value)
    assert fvp.faults.listing(fvp.component("sp1").index) == []


async def test_trace_records_every_smc(fvp):
    await call(fvp, Fid.LFA_GET_INVENTORY, RMM, cpu=2)
    rec = fvp.trace.records()[-1]
    assert (rec.cpu, rec.world, rec.name, rec.args[0]) == (2, "ns", "LFA_GET_INVENTORY", RMM)
    assert rec.result[0] == 0 and rec.result[1] == 0x564BF212A662076C and rec.duration >= 0


async def test_trace_is_bounded(fvp):
    for _ in range(5000):
        await call(fvp, Fid.LFA_VERSION)
    assert len(fvp.trace) == 4096 and fvp.trace.last_seq == 5000


async def test_generic_component_with_rendezvous_uses_the_pen(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('base = "fvp"\nname = "x"\n[[component]]\nname = "scp"\n'
                 'guid = "11111111-2222-3333-4444-555555555555"\nversion = "1.0"\n')
    from lfafs.platform import Platform

    p = Platform.from_profile(f)
    await ready(p, 6, version=(1, 1))
    assert st(await call(p, Fid.LFA_ACTIVATE, 6, 1)) == -8
    results = await activate_on(p, 6, all_cpus(p))
    assert {st(r) for r in results.values()} == {0}
    assert p.component("scp").version == (1, 1)


async def test_reset_keeps_flash_and_forgets_ram(fvp):
    fvp.stage("sp1", version=(2, 0))
    await ready(fvp, RMM, version=(1, 0))
    await activate_on(fvp, RMM, all_cpus(fvp))
    fvp.reset()
    assert fvp.component("rmm").version == (1, 0)
    assert fvp.component("sp1").staged_version == (2, 0)
    assert fvp.agent.current.component_id == 0xFFFF_FFFF and not any(fvp.agent.pending)
    assert fvp.rmmd.rmm.glob_data().fw_img_sequence == 1  # a cold boot, new RAM


def test_small_platform_profiles_boot():
    p = variant(ncpus=1, dram_size="256M", rmm={"base": 0x8DC0_0000, "limit": 0x8FBF_F000})
    assert p.rmmd.rmm.glob_data().num_granules == (256 << 20) // 4096
