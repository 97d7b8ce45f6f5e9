"""A fleet in the test process (the lfafs_fleet fixture): waves on a mock clock, fleet-level failures."""

import errno

import pytest

from lfafs.service.control import ControlError

FLEET = {"fleet": {"seed": 11}, "cohort": [
    {"name": "vera", "count": 30, "kernel_abi": "nvidia-v3", "labels": {"model": "vera", "rack": ["r1", "r2"]},
     "update": [{"component": "rmm", "version": "1.0"}]},
    {"name": "grace", "count": 10, "kernel_abi": "v1", "labels": {"model": "grace"},
     "update": [{"component": "rmm", "version": "1.0", "image": "incompatible"}]}],
    "fault": [{"component": "rmm", "at": "activate", "latency": {"fixed": 10}}]}


def wave(fleet, nodes):
    return fleet.run(fleet.activate_all, nodes, "rmm")


def test_a_wave_with_ten_seconds_of_modelled_activation_takes_ten_virtual_seconds(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    t0 = fleet.now()
    results = wave(fleet, fleet.select("model=vera"))
    assert set(results.values()) == {0} and len(results) == 30
    assert fleet.now() - t0 == pytest.approx(10.0, abs=0.01)  # and the kernel's 1 ms of removal work
    ev = [e for e in fleet.events() if e["kind"] == "activation.succeeded"]
    assert {round(e["t"] - e["started"], 3) for e in ev} == {10.0} and ev[0]["clock"] == "virtual"
    assert {n["versions"]["rmm"] for n in fleet.status("model=vera")["nodes"]} == {"1.0"}
    assert fleet.check(max_in_flight=30).ok and not fleet.check(max_in_flight=29).ok


def test_an_incompatible_image_leaves_a_failed_rmm_that_check_reports_and_a_reset_clears(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    results = wave(fleet, fleet.select("cohort=grace"))
    assert set(results.values()) == {errno.ECANCELED}
    report = fleet.check(no_failed_rmm=True)
    assert not report.ok and len(report.failed_rmm_nodes) == 10
    assert {n["realm"] for n in fleet.status("cohort=grace")["nodes"]} == {"disabled"}
    fleet.ctl("reset", "cohort=grace")
    assert fleet.check(no_failed_rmm=True).ok


def test_ctl_fail_draws_a_count_with_a_seed_and_only_those_nodes_fail(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    r = fleet.ctl("fail", "model=vera", component="rmm", at="prime", status="LFA_AUTH_ERROR", count=4, seed=5)
    assert r["armed"] == 4 and r["targets"] == 4
    failed = {n for n, err in wave(fleet, fleet.select("model=vera")).items() if err}
    assert len(failed) == 4
    fleet2 = lfafs_fleet(FLEET, virtual_time=True)
    fleet2.ctl("fail", "model=vera", component="rmm", at="prime", status="LFA_AUTH_ERROR", count=4, seed=5)
    assert {n for n, err in wave(fleet2, fleet2.select("model=vera")).items() if err} == failed
    assert fleet.check(expect_failed=failed).ok


def test_a_node_that_goes_down_mid_wave_cuts_its_activation_and_answers_ehostdown(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    nodes = fleet.select("model=vera")[:3]

    async def wave_with_a_power_cut():
        import trio

        out = {}

        async def one(n):
            out[n] = await fleet.activate(n, "rmm")

        async with trio.open_nursery() as nursery:
            for n in nodes:
                nursery.start_soon(one, n)
            await trio.sleep(5)  # half way through the 10 s activation
            await fleet.node(nodes[0]).power_off(reason="test")
        return out

    out = fleet.run(wave_with_a_power_cut)
    assert out == {nodes[0]: errno.EIO, nodes[1]: 0, nodes[2]: 0}
    assert fleet.run(fleet.activate, nodes[0], "rmm") == errno.EHOSTDOWN
    assert fleet.status(f"node={nodes[0]}")["nodes"][0]["state"] == "down"
    fleet.ctl("up", f"node={nodes[0]}")
    assert fleet.run(fleet.activate, nodes[0], "rmm") == 0  # the flash kept the staged image
    kinds = [e["kind"] for e in fleet.events(f"node={nodes[0]}")]
    assert kinds[-5:] == ["activation.failed", "node.down", "node.up", "activation.started",
                          "activation.succeeded"]


def test_cpus_offline_shrink_the_rendezvous(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    node = fleet.select("model=vera")[0]
    assert fleet.ctl("cpu", f"node={node}", cpu=3, on=False)["changed"] == 1
    assert fleet.run(fleet.activate, node, "rmm") == 0
    assert fleet.call(lambda: fleet.node(node).platform.last_report.cpus) == 3
    assert fleet.status(f"node={node}")["nodes"][0]["cpus_off"] == [3]


def test_notify_activates_through_auto_activate_where_the_kernel_has_it(lfafs_fleet):
    fleet = lfafs_fleet(FLEET, virtual_time=True)
    for n in fleet.nodes:
        assert fleet.run(fleet.write, n, "rmm", "auto_activate") in (0, errno.EACCES)  # v1 has no such file
    fleet.ctl("notify")
    versions = {n["abi"]: n["versions"]["rmm"] for n in fleet.status()["nodes"]}
    assert versions == {"nvidia-v3": "1.0", "v1": "0.9"}  # v1 has no notification handler


def test_a_bad_ctl_request_changes_nothing(lfafs_fleet):
    fleet = lfafs_fleet(nodes=3)
    with pytest.raises(ControlError, match="expected"):
        fleet.ctl("stage", "rack in (", component="rmm", version="1.0")
    with pytest.raises(ControlError, match="TF-A cannot return"):
        fleet.ctl("fail", component="rmm", at="activate", status="LFA_BUSY")
    with pytest.raises(ControlError, match="ratio or count"):
        fleet.ctl("fail", component="rmm", at="prime", status="LFA_BUSY", ratio=0.5, count=1)
    assert fleet.events() == [e for e in fleet.events() if e["kind"] not in ("fault.armed", "update.staged")]


def test_real_time_is_the_default_and_times_are_unix_time(lfafs_fleet):
    fleet = lfafs_fleet(nodes=2)
    assert fleet.now() > 1.6e9
    fleet.ctl("stage", component="rmm", version="1.0")
    for n in fleet.nodes:  # as an agent does: activation_pending is where the firmware is asked
        assert fleet.run(fleet.read, n, "rmm", "activation_pending") == "1\n"
    assert set(wave(fleet, fleet.nodes).values()) == {0}
    assert fleet.events()[-1]["clock"] == "wall"
