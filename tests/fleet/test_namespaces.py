"""Per-node namespaces: holders for Ansible's nsenter connection, and the inventory that names them."""

import json
import os
import subprocess

from lfafs.fleet import inventory

from .conftest import fleet_cli

FLEET = '[fleet]\nseed = 1\n[[cohort]]\nname = "vera"\ncount = 3\nlabels = { model = "vera", rack = ["r1", "r2"] }\n'
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def test_the_inventory_groups_nodes_by_cohort_and_label():
    nodes = [("vera-0000", {"node": "vera-0000", "cohort": "vera", "model": "vera", "rack": "r1", "shard": "0"}, 11),
             ("vera-0001", {"node": "vera-0001", "cohort": "vera", "model": "vera", "rack": "r2", "shard": "0"}, 12)]
    ini = inventory.as_ini(nodes)
    assert "ansible_connection=community.docker.nsenter" in ini
    assert "[rack_r2]\nvera-0001 ansible_nsenter_pid=12" in ini and "[model_vera]" in ini
    doc = inventory.as_dict(nodes)
    assert doc["all"]["hosts"]["vera-0000"]["ansible_nsenter_pid"] == 11
    assert set(doc["all"]["children"]["rack_r1"]["hosts"]) == {"vera-0000"}


def test_each_holder_lives_in_its_node_s_namespace_as_nsenter_sees_it(tmp_path, fleet_up):
    desc = tmp_path / "fleet.toml"
    desc.write_text(FLEET)
    root = fleet_up(desc)
    fleet_cli("ctl", "--root", root, "--select", "node=vera-0002", "stage", "rmm", "--version", "2.0", check=True)
    out = tmp_path / "inventory.json"
    fleet_cli("inventory", "--root", root, "--format", "json", "-o", str(out), check=True)
    hosts = json.loads(out.read_text())["all"]["hosts"]
    assert set(hosts) == {"vera-0000", "vera-0001", "vera-0002"}
    for node, var in hosts.items():
        # what community.docker.nsenter does with ansible_nsenter_pid (plus the other namespaces)
        r = subprocess.run(["nsenter", "--target", str(var["ansible_nsenter_pid"]), "--mount", "--",
                            "cat", f"/sys/firmware/lfa/{RMM}/activation_pending", f"/sys/firmware/lfa/{RMM}/pending_version"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout == ("1\n2.0\n" if node == "vera-0002" else "0\nN/A\n")
    again = tmp_path / "again.ini"
    fleet_cli("inventory", "--root", root, "-o", str(again), check=True)  # the live holders are reused
    pids = {int(line.split("=")[-1]) for line in again.read_text().splitlines() if "nsenter_pid=" in line}
    assert pids == {v["ansible_nsenter_pid"] for v in hosts.values()}
    assert "stopped 3 holders" in fleet_cli("holders", "stop", "--root", root, check=True).stdout
    assert not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/cmdline").read().startswith("sleep")
                   for p in pids)


PLAY = """- hosts: model_vera
  gather_facts: false
  serial: 2
  tasks:
    - name: activate pending LFA images
      ansible.builtin.script: {agent}
"""
AGENT = """#!/bin/sh
for d in /sys/firmware/lfa/*/; do
  [ "$(cat "$d/activation_pending")" = 1 ] || continue
  echo 1 > "$d/activate" && echo "$(cat "$d/name") $(cat "$d/current_version")" || exit 1
done
"""


def test_an_ansible_play_activates_emulated_nodes_through_nsenter(tmp_path, fleet_up):
    import shutil

    import pytest

    playbook = os.environ.get("LFAFS_ANSIBLE_PLAYBOOK") or shutil.which("ansible-playbook")
    if not playbook:
        pytest.skip("ansible-playbook (with the community.docker collection) is not installed; "
                    "set LFAFS_ANSIBLE_PLAYBOOK to run this")
    desc = tmp_path / "fleet.toml"
    desc.write_text(FLEET + '[[cohort.update]]\ncomponent = "rmm"\nversion = "1.0"\n')
    root = fleet_up(desc)
    fleet_cli("inventory", "--root", root, "-o", str(tmp_path / "inventory.ini"), check=True)
    agent = tmp_path / "lfa-activate"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    (tmp_path / "play.yml").write_text(PLAY.format(agent=agent))
    r = subprocess.run([playbook, "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:]
    status = json.loads(fleet_cli("status", "--root", root, "--json", check=True).stdout)
    assert {n["versions"]["rmm"] for n in status["nodes"]} == {"1.0"}
