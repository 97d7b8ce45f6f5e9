"""`lfafs capture`: a copied /sys/firmware/lfa becomes a profile that serves the same tree back."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from lfafs.service import access, spawn
from lfafs.service.scenario import Sources

LFAFS = [sys.executable, "-m", "lfafs"]
COMPARED = ("name", "activation_capable", "activation_pending", "may_reset_cpu", "cpu_rendezvous",
            "current_version", "pending_version", "force_cpu_rendezvous", "auto_activate")


def tree(lfa: str) -> dict[str, dict[str, str]]:
    """Every image's readable files; activation_pending first, as a tool must (GET_INVENTORY)."""
    out = {}
    for guid in sorted(os.listdir(lfa)):
        files = {}
        for attr in COMPARED:
            with open(os.path.join(lfa, guid, attr)) as f:
                files[attr] = f.read()
        out[guid] = files
    return out


@pytest.mark.parametrize("profile, stage, hint", [
    ("fvp-den0147", ("sp1=2.0",), " --stage sp1=2.0"),  # a pending image: served back with --stage
    ("fvp", (), ""),  # TF-A's FVP port: versions 0.0 and pending hard-wired, captured as such
])
def test_a_copied_tree_is_served_back_with_the_same_names_flags_and_versions(tmp_path, profile, stage, hint):
    why = access.fuse_problem()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with spawn.running(str(first), profile=profile, scenario=Sources(stage=stage)):
        original = tree(str(first / "lfa"))
        # activate and cancel are write-only, so cp -r copies everything else and says so
        subprocess.run(["cp", "-r", str(first / "lfa"), str(tmp_path / "copy")], capture_output=True)
    r = subprocess.run([*LFAFS, "capture", str(tmp_path / "copy"), "-o", str(tmp_path / "captured.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "captured.toml").read_text()
    serve = re.search(r"^# Serve it with: lfafs mount --profile FILE (.*) MOUNTPOINT(.*)$", text, re.M)
    assert serve.group(1) == "--kernel-abi v3" and serve.group(2) == hint  # what a profile cannot hold
    with spawn.running(str(second), profile=str(tmp_path / "captured.toml"), scenario=Sources(stage=stage)):
        assert tree(str(second / "lfa")) == original


@pytest.mark.parametrize("make, said", [
    (lambda d: d / "missing", "is not a directory"),
    (lambda d: d, "has no image directories"),
    (lambda d: (d / "not-a-guid").mkdir() or d, "'not-a-guid' is not a GUID"),
    (lambda d: (d / "6c0762a6-12f2-4b56-92cb-ba8f633606d9").mkdir() or d, "not an LFA image directory"),
])
def test_input_that_is_not_an_lfa_tree_is_one_line(tmp_path, make, said):
    src = tmp_path / "src"
    src.mkdir()
    source = make(src)
    r = subprocess.run([*LFAFS, "capture", str(source)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("lfafs capture: ") and said in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_flag_that_is_not_0_or_1_is_refused(tmp_path):
    image = tmp_path / "src" / "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
    image.mkdir(parents=True)
    for attr, value in (("current_version", "0.9"), ("activation_capable", "yes"), ("name", "TF-RMM")):
        (image / attr).write_text(value + "\n")
    r = subprocess.run([*LFAFS, "capture", str(tmp_path / "src")], capture_output=True, text=True)
    assert r.returncode == 1 and "activation_capable: expected 0 or 1, got 'yes'" in r.stderr
