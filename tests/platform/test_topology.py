"""CPU topology, MPIDR values and PSCI power control, up to 512 CPUs."""

from __future__ import annotations

import pytest
import trio

from lfafs.platform import Platform, PlatformError, ProfileError
from lfafs.platform.profile import profile_from_dict
from lfafs.platform.psci import PsciFid
from lfafs.platform.topology import MPIDR_MT, Topology

from .conftest import RMM, activate_on, all_cpus, call, ready, st


def test_fvp_cpus_carry_tf_as_fvp_affinities():
    # TF-A plat/arm/board/fvp: 2 clusters of 4, Aff1 = cluster, Aff0 = core, no MT
    p = Platform.from_profile("fvp")
    assert [hex(p.topology.mpidr(c)) for c in (0, 3, 4, 7)] == ["0x80000000", "0x80000003", "0x80000100",
                                                                   "0x80000103"]


def test_a_multithreaded_topology_sets_mt_and_puts_the_thread_in_aff0():
    t = Topology(sockets=2, clusters=22, cores=4, threads=2)  # 352 CPUs
    assert t.cpus == 352
    m = t.mpidr(t.cpus - 1)
    assert m & MPIDR_MT and (m >> 32 & 0xFF, m >> 16 & 0xFF, m >> 8 & 0xFF, m & 0xFF) == (1, 21, 3, 1)
    assert [t.cpu_of(t.mpidr(c)) for c in range(t.cpus)] == list(range(t.cpus))
    assert t.cpu_of(t.mpidr(5) | (9 << 8)) is None  # core 9 does not exist


@pytest.mark.parametrize("cpus", [0, 513, -1, True, "8"])
def test_cpu_counts_that_cannot_work_are_refused_with_the_limit(cpus):
    with pytest.raises(PlatformError, match="between 1 and 512"):
        Platform.from_profile(cpus=cpus)


@pytest.mark.parametrize(("extra", "field", "words"), [
    ({"cpus": 600}, "cpus", "between 1 and 512"),
    ({"cpus": 6, "topology": {"clusters": 2, "cores": 4}}, "cpus", "the topology gives"),
    ({"topology": {"clusters": 300}}, "topology.clusters", "1..256"),
    ({"topology": {"sockets": 2, "clusters": 16, "cores": 8, "threads": 4}}, "topology", "at most 512"),
    ({"topology": {"nodes": 2}}, "topology.nodes", "unknown field"),
])
def test_bad_topologies_name_the_field(extra, field, words):
    with pytest.raises(ProfileError) as e:
        profile_from_dict({"base": "fvp-den0147", **extra}, "<t>")
    assert e.value.field == field and words in str(e.value)


def test_a_profile_topology_gives_the_cpu_count():
    p = profile_from_dict({"base": "fvp", "topology": {"clusters": 44, "cores": 2, "threads": 2}}, "<t>")
    assert p.cpus == 176


async def test_psci_cpu_on_off_and_affinity_info():
    p = Platform.from_profile("fvp")
    mpidr7 = p.topology.mpidr(7)
    assert st(await call(p, PsciFid.CPU_OFF, cpu=7)) == 0 and not p.cpu_on[7]
    assert (await call(p, PsciFid.AFFINITY_INFO, mpidr7, 0)).x0 == 1  # OFF
    assert st(await call(p, PsciFid.CPU_ON, mpidr7, 0x8800_0000, 0)) == 0 and p.cpu_on[7]
    assert st(await call(p, PsciFid.CPU_ON, mpidr7, 0x8800_0000, 0)) == -4  # ALREADY_ON
    assert st(await call(p, PsciFid.CPU_ON, 0x8000_0207, 0, 0)) == -2  # no cluster 2
    assert (await call(p, PsciFid.VERSION)).x0 == 0x10001
    rec = p.trace.records()[-1]
    assert rec.name == "PSCI_VERSION" and rec.to_dict()["mpidr"] == "0x80000000"


async def test_a_cpu_off_through_psci_no_longer_joins_the_rendezvous(fvp):
    await call(fvp, PsciFid.CPU_OFF, cpu=3)
    await ready(fvp, RMM)
    results = await activate_on(fvp, RMM, all_cpus(fvp))
    assert sorted(results) == [0, 1, 2] and {st(r) for r in results.values()} == {0}


@pytest.mark.parametrize("ncpus", [256, 512])
async def test_an_rmm_activation_is_a_real_rendezvous_of_every_cpu(ncpus):
    p = Platform.from_profile(cpus=ncpus)
    await ready(p, RMM, version=(0, 10))
    with trio.fail_after(60):
        results = await activate_on(p, RMM, range(ncpus))
    assert len(results) == ncpus and {st(r) for r in results.values()} == {0}
    assert p.last_report.cpus == ncpus and p.component("rmm").version == (0, 10)
    seen = {r.mpidr for r in p.trace.records() if r.name == "LFA_ACTIVATE"}
    assert len(seen) == min(ncpus, 4096) and p.topology.mpidr(ncpus - 1) in seen
