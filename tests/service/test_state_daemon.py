"""--state-dir through the real daemon and CLI: a full disk, a second daemon, leftovers, refused starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from lfafs.service import logs, spawn
from lfafs.service.control import socket_path
from lfafs.service.state import StateDir
from tests.service.conftest import wait
from tests.service.test_state import SmallDisk, files, temporaries

LFAFS = [sys.executable, "-m", "lfafs"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture
def disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = SmallDisk(str(tmp_path / "disk"), size="1m")
    yield d
    d.close()


def lfafs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*LFAFS, *args], capture_output=True, text=True, timeout=timeout)


def attr(mnt: str, name: str) -> str:
    with open(os.path.join(mnt, "lfa", RMM, name)) as f:
        return f.read().strip()


def saved_rmm(state: str) -> tuple:
    with open(os.path.join(state, "flash.json")) as f:
        entry = next(c for c in json.load(f)["flash"]["components"] if c["name"] == "rmm")
    return entry["version"], entry["staged_version"]


def test_stage_on_a_full_disk_is_refused_and_changes_nothing(mnt, disk):
    state = os.path.join(disk.path, "state")
    with spawn.running(mnt, state_dir=state):
        disk.fill()
        r = lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0")
        assert r.returncode == 1 and "No space left on device" in r.stderr and "not made" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert attr(mnt, "activation_pending") == "0" and attr(mnt, "pending_version") == "N/A"
        assert saved_rmm(state) == ([0, 9], None) and temporaries(state) == []
        disk.free()
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
        assert saved_rmm(state) == ([0, 9], [1, 0])


def test_an_activation_on_a_full_disk_succeeds_and_is_saved_once_space_returns(mnt, disk):
    state = os.path.join(disk.path, "state")
    with spawn.running(mnt, state_dir=state):
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
        attr(mnt, "activation_pending")
        disk.fill()
        with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
            f.write("1")
        assert attr(mnt, "current_version") == "1.0"
        status = json.loads(lfafs("ctl", "--mount", mnt, "status", "--json").stdout)
        assert status["agent"]["activation_in_progress"] is False  # never left mid-round
        assert saved_rmm(state) == ([0, 9], [1, 0])  # on disk: the old version, the update still staged
        disk.free()
        assert wait(lambda: saved_rmm(state) == ([1, 0], None), timeout=5)
    with spawn.running(mnt, state_dir=state):
        assert attr(mnt, "current_version") == "1.0"


def test_a_restart_before_the_disk_recovers_boots_the_old_version_with_the_update_staged(mnt, disk):
    state = os.path.join(disk.path, "state")
    with spawn.running(mnt, state_dir=state) as daemon:
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
        attr(mnt, "activation_pending")
        disk.read_only()
        with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
            f.write("1")
        assert attr(mnt, "current_version") == "1.0"
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(30)
        assert wait(lambda: not os.path.ismount(mnt) and os.path.isdir(mnt))
    disk.read_only(False)
    with spawn.running(mnt, state_dir=state):
        assert attr(mnt, "current_version") == "0.9" and attr(mnt, "activation_pending") == "1"
        with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
            f.write("1")
        assert attr(mnt, "current_version") == "1.0"


def test_a_second_daemon_on_one_state_dir_is_refused_naming_the_first(mnt, tmp_path):
    state = str(tmp_path / "state")
    other = tmp_path / "other"
    other.mkdir()
    with spawn.running(mnt, state_dir=state) as first:
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
        before = files(state)
        r = lfafs("mount", "--state-dir", state, str(other))
        assert r.returncode == 1 and not os.path.ismount(other)
        assert f"pid {first.pid} serving {mnt}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert files(state) == before  # the first daemon's staged update is still there
        assert attr(mnt, "activation_pending") == "1" and attr(mnt, "pending_version") == "1.0"


def test_the_daemon_itself_refuses_a_locked_state_dir(mnt, tmp_path):
    holder = StateDir(tmp_path / "state")
    holder.acquire("/somewhere/else")
    try:
        r = lfafs("mount", "--foreground", "--state-dir", holder.path, mnt)
        assert r.returncode == 1 and f"pid {os.getpid()} serving /somewhere/else" in r.stderr
        assert "Traceback" not in r.stderr and not os.path.ismount(mnt)
    finally:
        holder.release()


def test_temporaries_left_by_a_killed_daemon_are_removed_at_start(mnt, tmp_path):
    state = str(tmp_path / "state")
    with spawn.running(mnt, state_dir=state):
        pass
    for name in ("flash.json.tmp.12345", "images/ab.img.tmp.999"):
        with open(os.path.join(state, name), "wb") as f:
            f.write(b"interrupted")
    with spawn.running(mnt, state_dir=state):
        assert temporaries(state) == []


def test_a_refused_start_touches_nothing(mnt, tmp_path):
    state = tmp_path / "state"
    with spawn.running(mnt, state_dir=str(state)):
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
    doc = json.loads((state / "flash.json").read_text())
    doc["flash"]["components"][0]["version"] = "2.15"
    (state / "flash.json").write_text(json.dumps(doc))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in state.rglob("*") if p.is_file()}
    for args in (["mount", "--state-dir", str(state), mnt], ["mount", "--foreground", "--state-dir", str(state), mnt]):
        r = lfafs(*args)
        assert r.returncode == 1 and "flash.components[0].version" in r.stderr and "Traceback" not in r.stderr
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in state.rglob("*") if p.is_file()}
    assert after == before and not os.path.ismount(mnt)


def test_descriptors_exhausted_do_not_wedge_an_activation(mnt, tmp_path):
    state = str(tmp_path / "state")
    with spawn.running(mnt, state_dir=state) as d:
        assert lfafs("ctl", "--mount", mnt, "stage", "rmm", "--version", "1.0").returncode == 0
        attr(mnt, "activation_pending")
        used = len(os.listdir(f"/proc/{d.pid}/fd"))
        subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={used + 3}:"], check=True)  # the soft limit
        hogs = []
        for _ in range(40):  # take every descriptor the daemon has left, and fill its listen queue
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(socket_path(mnt))
            except OSError:
                s.close()
                break
            hogs.append(s)
        try:
            with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
                f.write("1")  # the commit's save fails (EMFILE): the activation stands
            assert attr(mnt, "current_version") == "1.0"
        finally:
            for s in hogs:
                s.close()
        subprocess.run(["prlimit", f"--pid={d.pid}", "--nofile=1024:"], check=True)
        assert wait(lambda: saved_rmm(state) == ([1, 0], None), timeout=5)  # saved once descriptors return

        def log() -> str:
            with open(logs.log_path(mnt)) as f:
                return f.read()

        assert wait(lambda: "saved again" in log(), timeout=5)
        assert "Too many open files" in log()  # the commit did meet EMFILE
        status = json.loads(lfafs("ctl", "--mount", mnt, "status", "--json").stdout)
        assert status["agent"]["activation_in_progress"] is False
