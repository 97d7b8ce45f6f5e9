"""The fleet as processes: `lfafs fleet up`, an unmodified agent with `fleet run --each`, `fleet check`,
shards restarted after a crash, shards found by their TCP endpoints, and what each node's tree is."""

import errno
import json
import os
import subprocess
import time

import pytest

from .conftest import fleet_cli

AGENT = """#!/bin/sh
for d in /sys/firmware/lfa/*/; do
  [ "$(cat "$d/activation_pending")" = 1 ] || continue
  echo 1 > "$d/activate" || { echo "$(cat "$d/name"): activation failed" >&2; exit 1; }
  echo "$(cat "$d/name") $(cat "$d/current_version")"
done
"""

FLEET = """
[fleet]
seed = 99
shards = 2

[[cohort]]
name = "vera"
count = 24
kernel_abi = "nvidia-v3"
labels = { model = "vera", rack = ["r1", "r2", "r3"] }

[[cohort.update]]
component = "rmm"
version = "1.0"

[[cohort]]
name = "grace"
count = 8
kernel_abi = "v1"
labels = { model = "grace" }

[[cohort.update]]
component = "rmm"
version = "1.0"

[[fault]]
select = "model=vera"
component = "rmm"
at = "prime"
status = "LFA_AUTH_ERROR"
count = 3
"""

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture
def lab(tmp_path, fleet_up):
    desc = tmp_path / "fleet.toml"
    desc.write_text(FLEET)
    agent = tmp_path / "agent.sh"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    return desc, agent, fleet_up


def status(root):
    return json.loads(fleet_cli("status", "--root", root, "--json", check=True).stdout)


def test_an_unmodified_agent_activates_a_cohort_and_exactly_the_drawn_nodes_fail(lab, tmp_path):
    desc, agent, up = lab
    root = up(desc)
    chosen = fleet_cli("plan", str(desc), "--rule", "fault[0]", check=True).stdout.split()
    assert len(chosen) == 3 and all(n.startswith("vera-") for n in chosen)

    r = fleet_cli("run", "--root", root, "--each", "cohort=vera", "--parallel", "4", "--", str(agent))
    assert r.returncode == 1
    assert f"3 of 24 nodes failed: {chosen[0]} (1)" in r.stderr
    assert {line.split(":")[0] for line in r.stderr.splitlines() if "activation failed" in line} == set(chosen)
    assert r.stdout.count("TF-RMM 1.0") == 21

    versions = {n["node"]: n["versions"]["rmm"] for n in status(root)["nodes"]}
    assert {n for n, v in versions.items() if v == "1.0"} == {f"vera-{i:04d}" for i in range(24)} - set(chosen)
    assert all(v == "0.9" for n, v in versions.items() if n.startswith("grace"))

    (tmp_path / "chosen").write_text("\n".join(chosen))
    check = fleet_cli("check", "--root", root, "--max-in-flight", "4", "--no-failed-rmm",
                      "--expect-failed", f"@{tmp_path / 'chosen'}")
    assert check.returncode == 0, check.stdout
    assert "ok   exactly the expected nodes failed: 3 nodes failed, 3 expected" in check.stdout
    assert "24 activations: 21 succeeded, 3 failed" in check.stdout
    strict = fleet_cli("check", "--root", root, "--stop-after-failures", "1", "--json")
    assert strict.returncode == 1 and json.loads(strict.stdout)["ok"] is False  # the agents went on

    saved = tmp_path / "events.jsonl"
    saved.write_text(fleet_cli("events", "--root", root, check=True).stdout)
    assert fleet_cli("check", "--events", str(saved), "--expect-failed", ",".join(chosen)).returncode == 0


def test_one_node_is_one_sys_firmware_with_sysfs_semantics(lab):
    desc, _, up = lab
    root = up(desc)
    r = fleet_cli("run", "--root", root, "--node", "grace-0001", "--", "sh", "-c",
                  f'ls /sys/firmware/lfa; cat /sys/firmware/lfa/{RMM}/name; stat -c "%a %s %U" '
                  f'/sys/firmware/lfa/{RMM}/activate; echo "$LFAFS_NODE"; touch /sys/firmware/lfa/x')
    lines = r.stdout.splitlines()
    assert r.returncode != 0 and "Permission denied" in r.stderr  # kernfs: nothing can be made
    assert len(lines) == 9 and RMM in lines[:6]
    assert lines[6:] == ["TF-RMM", "200 4096 root", "grace-0001"]


def test_a_node_that_is_down_answers_ehostdown_and_comes_back_with_its_flash(lab):
    desc, agent, up = lab
    root = up(desc)
    assert fleet_cli("ctl", "--root", root, "--select", "node=vera-0001", "down").returncode == 0
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(root, "nodes", "vera-0001", "lfa"))
    assert e.value.errno == errno.EHOSTDOWN
    out = fleet_cli("ctl", "--root", root, "--select", "node=vera-0001", "cpu", "1", "off")
    assert out.returncode == 1 and "vera-0001: vera-0001 is down" in out.stderr
    fleet_cli("ctl", "--root", root, "--select", "node=vera-0001", "up", check=True)
    r = fleet_cli("run", "--root", root, "--node", "vera-0001", "--", str(agent))
    assert r.returncode == 0 and "1.0" in r.stdout


def test_a_node_that_goes_down_fails_at_once_even_where_its_paths_were_just_looked_up(lab):
    """The shard caches path lookups for a second (decision 0014), but every open reaches the node:
    a file read a moment ago fails with EHOSTDOWN as soon as its node is down, and reads again once up."""
    desc, _, up = lab
    root = up(desc)
    name = os.path.join(root, "nodes", "vera-0001", "lfa", RMM, "name")
    for _ in range(3):  # the lookups are cached now
        with open(name) as f:
            assert f.read() == "TF-RMM\n"
    fleet_cli("ctl", "--root", root, "--select", "node=vera-0001", "down", check=True)
    with pytest.raises(OSError) as e:
        open(name).close()
    assert e.value.errno == errno.EHOSTDOWN
    fleet_cli("ctl", "--root", root, "--select", "node=vera-0001", "up", check=True)
    with open(name) as f:
        assert f.read() == "TF-RMM\n"


def test_a_crashed_shard_is_restarted_and_keeps_its_nodes_flash_and_events(lab, tmp_path):
    desc, agent, up = lab
    root = up(desc, "--state-dir", str(tmp_path / "state"))
    fleet_cli("run", "--root", root, "--node", "grace-0007", "--", str(agent), check=True)
    pid = json.loads(fleet_cli("ctl", "--root", root, "ping", check=True).stdout)[1]["pid"]
    fleet_cli("ctl", "--root", root, "--select", "node=grace-0007", "crash", check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = fleet_cli("ping", "--root", root)
        if r.returncode == 0 and str(pid) not in r.stdout:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the shard was not restarted")
    nodes = {n["node"]: n for n in status(root)["nodes"]}
    assert nodes["grace-0007"]["versions"]["rmm"] == "1.0" and nodes["grace-0006"]["staged"] == {"rmm": "1.0"}
    kinds = [json.loads(line)["kind"] for line in fleet_cli("events", "--root", root, "--select",
                                                            "node=grace-0007", check=True).stdout.splitlines()]
    assert "activation.succeeded" in kinds  # the log of the shard's first life


def test_shards_answer_on_tcp_endpoints_and_a_missing_one_is_reported(tmp_path, mounted):
    desc = tmp_path / "fleet.toml"
    desc.write_text(FLEET)
    procs = []
    try:
        for i, port in enumerate((47461, 47462)):
            procs.append(subprocess.Popen(
                [__import__("sys").executable, "-m", "lfafs.fleet", "shard", str(desc), "--index", str(i),
                 "--listen", f"tcp:127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        eps = ["--endpoint", "tcp:127.0.0.1:47461", "--endpoint", "tcp:127.0.0.1:47462"]
        assert fleet_cli("ping", *eps, "--wait", "60").returncode == 0
        st = json.loads(fleet_cli("status", *eps, "--select", "rack in (r1)", "--json", check=True).stdout)
        assert len(st["nodes"]) == 8 and {s["shard"] for s in st["shards"]} == {0, 1}
        lone = fleet_cli("ping", "--endpoint", "tcp:127.0.0.1:47461")
        assert lone.returncode == 1 and "found 1 of 2 shards; missing: 1" in lone.stderr
        fleet_cli("ctl", *eps, "shutdown", check=True)
        assert [p.wait(30) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
