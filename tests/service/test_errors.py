"""What a person sees when mounting cannot work: a sentence with what to do."""

from __future__ import annotations

import subprocess
import sys

from lfafs.service import daemon


def test_no_dev_fuse(monkeypatch, tmp_path):
    monkeypatch.setattr(daemon.os.path, "exists", lambda p: False if p == "/dev/fuse" else True)
    assert "modprobe fuse" in daemon.check_can_mount(str(tmp_path))


def test_an_ordinary_user_who_cannot_open_dev_fuse_is_told_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(daemon.os.path, "exists", lambda p: True)
    monkeypatch.setattr(daemon.os, "access", lambda p, mode: p != "/dev/fuse")
    why = daemon.check_can_mount(str(tmp_path))
    assert "chmod 0666 /dev/fuse" in why and "or run lfafs as root" in why


def test_unknown_benchmark_and_command_line_errors_have_no_traceback():
    r = subprocess.run([sys.executable, "-m", "lfafs", "bench", "nonsense"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown benchmark 'nonsense'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lfafs"], capture_output=True, text=True)
    assert r.returncode == 2 and "COMMAND" in r.stderr
