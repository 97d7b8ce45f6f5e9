"""docs/fleet.md's worked example, run as the page shows it, at 100 nodes instead of 1,000."""

import os
import subprocess

from .conftest import doc_files, fleet_cli

FILES = doc_files()


def scaled_description(tmp_path, nodes=100):
    text = FILES["fleet.toml"].replace("count = 600", f"count = {nodes * 6 // 10}")
    text = text.replace("count = 400", f"count = {nodes * 4 // 10}")
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_the_page_shows_the_files_of_the_example():
    assert set(FILES) == {"fleet.toml", "lfa-activate", "rollout.sh", "test_rollout.py"}


def test_the_python_rollout_of_the_page_passes_at_100_nodes(lfafs_fleet, tmp_path):
    namespace: dict = {}
    exec(compile(FILES["test_rollout.py"], "docs/fleet.md:test_rollout.py", "exec"), namespace)
    namespace["test_rollout_in_waves"](lfafs_fleet, scaled_description(tmp_path), nodes=100)


def test_the_shell_rollout_of_the_page_activates_every_node_but_the_ones_the_seed_chose(fleet_up, shim_path, tmp_path):
    desc = scaled_description(tmp_path)
    root = fleet_up(desc, "--virtual-time")
    agent = tmp_path / "lfa-activate"
    agent.write_text(FILES["lfa-activate"])
    agent.chmod(0o755)
    script = tmp_path / "rollout.sh"
    script.write_text(FILES["rollout.sh"])
    r = subprocess.run(["sh", str(script), root, str(agent), "50", "30"], env=shim_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "wave of 50: " + r.stdout.splitlines()[-1].split(": ", 1)[1]
    assert r.stdout.count("wave of 50") == 2

    chosen = fleet_cli("plan", str(desc), "--rule", "fault[0]", check=True).stdout.split()
    assert len(chosen) == 2  # 2% of 100
    (tmp_path / "chosen").write_text("\n".join(chosen))
    check = fleet_cli("check", "--root", root, "--max-in-flight", "50", "--stop-after-failures", "30",
                      "--no-failed-rmm", "--expect-failed", f"@{tmp_path / 'chosen'}")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "100 activations: 98 succeeded, 2 failed" in check.stdout
    status = __import__("json").loads(fleet_cli("status", "--root", root, "--json", check=True).stdout)
    at = {n["node"]: n["versions"]["rmm"] for n in status["nodes"]}
    assert {n for n, v in at.items() if v != "1.0"} == set(chosen)
    assert os.path.islink(os.path.join(root, "nodes", chosen[0]))
