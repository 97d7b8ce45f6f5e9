"""lfafs run and lfafs demo, through real processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fs.harness import fuse_unavailable

LFAFS = [sys.executable, "-m", "lfafs"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture(autouse=True)
def needs_fuse():
    why = fuse_unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")


def mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_run_gives_the_command_an_emulated_sys_firmware(tmp_path):
    before = mounts()
    script = f"cat /sys/firmware/lfa/{RMM}/name; echo 1 > /sys/firmware/lfa/{RMM}/activate; exit 7"
    r = subprocess.run([*LFAFS, "run", "--", "bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 7  # the command's own status
    assert r.stdout == "TF-RMM\n"
    assert "Operation canceled" in r.stderr  # nothing pending: the driver's answer
    assert mounts() == before  # nothing left in the host's mount table


def test_run_keeps_the_hosts_other_firmware_entries(tmp_path):
    import os

    host = sorted(n for n in os.listdir("/sys/firmware") if n not in ("lfa", "efi"))
    r = subprocess.run([*LFAFS, "run", "--", "ls", "/sys/firmware"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert sorted(r.stdout.split()) == sorted([*host, "lfa", "efi"])  # the platform's UEFI replaces the host's efi/


def test_run_without_a_command_is_explained():
    r = subprocess.run([*LFAFS, "run"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "give a command" in r.stderr


def test_demo_tours_an_activation():
    r = subprocess.run([*LFAFS, "demo"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "rmm 0.9 -> 0.10, status 0, 4 CPUs" in r.stdout
    assert "write error: Operation canceled" in r.stdout  # the injected failure
    assert "realm world: DISABLED" in r.stdout
