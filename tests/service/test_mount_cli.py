"""lfafs mount / umount through real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.service.conftest import wait

LFAFS = [sys.executable, "-m", "lfafs"]


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_mount_returns_once_live_and_umount_stops_it(mnt):
    r = subprocess.run([*LFAFS, "mount", mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"\(pid (\d+)\)", r.stdout)[1])
    assert running(pid)
    assert os.path.ismount(mnt) and "6c0762a6-12f2-4b56-92cb-ba8f633606d9" in os.listdir(os.path.join(mnt, "lfa"))
    r = subprocess.run([*LFAFS, "umount", mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not os.path.ismount(mnt)
    assert wait(lambda: not running(pid))


def test_foreground_daemon_unmounts_on_sigterm(mnt):
    p = subprocess.Popen([*LFAFS, "mount", "--foreground", "--kernel-abi", "v2", mnt], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert wait(lambda: os.path.ismount(mnt), 30)
    assert len(os.listdir(os.path.join(mnt, "lfa", "6c0762a6-12f2-4b56-92cb-ba8f633606d9"))) == 11
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    assert not os.path.ismount(mnt)


def test_a_killed_daemon_leaves_no_dead_mount(mnt):
    p = subprocess.Popen([*LFAFS, "mount", "--foreground", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait(lambda: os.path.ismount(mnt), 30)
    p.kill()
    p.wait(10)
    assert wait(lambda: not os.path.ismount(mnt) and os.path.isdir(mnt), 10)  # auto_unmount, no ENOTCONN left


@pytest.mark.parametrize(("args", "words"), [
    (["--profile", "/nonexistent.toml"], "bad profile"),
    (["--kernel-abi", "v9"], "invalid choice"),
])
def test_bad_arguments_are_explained(mnt, args, words):
    r = subprocess.run([*LFAFS, "mount", *args, mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr
    assert not os.path.ismount(mnt)


def test_busy_and_missing_mountpoints(mnt, tmp_path):
    r = subprocess.run([*LFAFS, "mount", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "mkdir -p" in r.stderr
    assert subprocess.run([*LFAFS, "mount", mnt], capture_output=True, timeout=60).returncode == 0
    r = subprocess.run([*LFAFS, "mount", mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already a mount point" in r.stderr
    subprocess.run([*LFAFS, "umount", mnt], check=True, timeout=60)
    r = subprocess.run([*LFAFS, "umount", mnt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not mounted" in r.stderr
