"""What a person sees when mounting cannot work: a sentence with what to do."""

from __future__ import annotations

import subprocess
import sys

from lfafs.service import daemon


def test_no_dev_fuse(monkeypatch, tmp_path):
    monkeypatch.setattr(daemon.os.path, "exists", lambda p: False if p == "/dev/fuse" else True)
    assert "modprobe fuse" in daemon.check_can_mount(str(tmp_path))


def test_not_root(monkeypatch, tmp_path):
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(daemon.os.path, "exists", lambda p: True)
    assert "run it as root" in daemon.check_can_mount(str(tmp_path))


def test_unknown_benchmark_and_command_line_errors_have_no_traceback():
    r = subprocess.run([sys.executable, "-m", "lfafs", "bench", "nonsense"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lfafs"], capture_output=True, text=True)
    assert r.returncode == 2 and "COMMAND" in r.stderr
