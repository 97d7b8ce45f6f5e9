"""--state-dir across restarts and SIGKILL; systemd readiness and the unit file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from lfafs.service import spawn
from tests.service.conftest import wait

LFAFS = [sys.executable, "-m", "lfafs"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "systemd", "lfafs@.service")


def ctl(mnt, *args):
    r = subprocess.run([*LFAFS, "ctl", "--mount", mnt, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read(mnt, guid, attr):
    with open(os.path.join(mnt, "lfa", guid, attr)) as f:
        return f.read()


def test_flash_survives_a_restart(mnt, tmp_path):
    state = str(tmp_path / "state")
    with spawn.running(mnt, state_dir=state):
        ctl(mnt, "stage", "rmm", "--version", "1.0")
        read(mnt, RMM, "activation_pending")
        with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
            f.write("1")
        ctl(mnt, "stage", "sp1", "--version", "7.1")
        ctl(mnt, "component", "add", "scp", "--guid", "11111111-2222-3333-4444-555555555555", "--version", "3.3")
    with spawn.running(mnt, state_dir=state):
        assert read(mnt, RMM, "current_version") == "1.0\n"
        assert read(mnt, "f07b2a96-1d47-4d17-9ec8-86a64e253e5c", "activation_pending") == "1\n"
        assert read(mnt, "f07b2a96-1d47-4d17-9ec8-86a64e253e5c", "pending_version") == "7.1\n"
        assert "11111111-2222-3333-4444-555555555555" in os.listdir(os.path.join(mnt, "lfa"))
        st = json.loads(ctl(mnt, "status", "--json"))
        assert st["last_report"] is None  # RAM state is gone: a cold boot


def test_sigkill_in_the_middle_of_an_activation(mnt, tmp_path):
    state = str(tmp_path / "state")
    with spawn.running(mnt, state_dir=state) as daemon:
        ctl(mnt, "stage", "rmm", "--version", "2.0")
        ctl(mnt, "fail", "rmm", "--at", "activate", "--latency", "3")
        read(mnt, RMM, "activation_pending")
        writer = subprocess.Popen(["bash", "-c", f"echo 1 > {mnt}/lfa/{RMM}/activate"], stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(30)
        writer.wait(30)
        # auto_unmount; until it has run, the dead mount answers ENOTCONN (not a mount, not a directory)
        assert wait(lambda: not os.path.ismount(mnt) and os.path.isdir(mnt))
    with spawn.running(mnt, state_dir=state):
        version = read(mnt, RMM, "current_version")
        assert version in ("0.9\n", "2.0\n")  # old or new, never a mixture
        if version == "0.9\n":  # the update is still there to activate
            assert read(mnt, RMM, "activation_pending") == "1\n"
            with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
                f.write("1")
            assert read(mnt, RMM, "current_version") == "2.0\n"


def test_a_corrupted_state_dir_is_refused_clearly(mnt, tmp_path):
    state = tmp_path / "state"
    (state / "images").mkdir(parents=True)
    (state / "flash.json").write_text("{not json")
    r = subprocess.run([*LFAFS, "mount", "--state-dir", str(state), mnt], capture_output=True, text=True)
    assert r.returncode == 1 and "flash.json cannot be read" in r.stderr and not os.path.ismount(mnt)


def test_state_of_another_profile_is_refused(mnt, tmp_path):
    state = tmp_path / "state"
    (state / "images").mkdir(parents=True)
    (state / "flash.json").write_text(json.dumps({"format": 1, "flash": {"profile": "other", "components": []},
                                                  "images": {}}))
    r = subprocess.run([*LFAFS, "mount", "--state-dir", str(state), mnt], capture_output=True, text=True)
    assert r.returncode == 1 and "'other' platform" in r.stderr


def test_ready_only_once_the_mount_answers_then_watchdog_and_stopping(mnt, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
    p = subprocess.Popen([*LFAFS, "mount", "--foreground", mnt], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1") and "STATUS=serving 6 components of fvp" in first
        assert os.path.ismount(mnt) and os.listdir(os.path.join(mnt, "lfa"))  # it answers already
        assert sock.recv(4096) == b"WATCHDOG=1"
        p.send_signal(signal.SIGTERM)
        msgs = []
        while not any(m.startswith("STOPPING=1") for m in msgs):
            msgs.append(sock.recv(4096).decode())
        assert p.wait(30) == 0 and not os.path.ismount(mnt)
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()


def test_unit_file_verifies():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = os.path.abspath(UNIT)
    with open(unit) as f:
        text = f.read()
    assert "Type=notify" in text and "--foreground" in text and "PrivateTmp" not in text.split("[Service]")[1].split("#")[0]
    r = subprocess.run(["systemd-analyze", "verify", unit.replace("lfafs@.service", "lfafs@run-lfafs-firmware.service")],
                       capture_output=True, text=True, cwd=os.path.dirname(unit))
    errors = [line for line in r.stderr.splitlines() if "lfafs@" in line and "Failed to" not in line]
    assert r.returncode == 0 or not errors, r.stderr
