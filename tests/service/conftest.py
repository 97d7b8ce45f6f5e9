"""Fixtures shared by the service tests: a fresh mountpoint, cleaned up whatever happens,
and a daemon serving it (started and stopped by lfafs.service.spawn, as the CLI does)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from lfafs.service import spawn
from lfafs.service.testing import unavailable


@pytest.fixture
def mnt(tmp_path):
    why = unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    d = tmp_path / "firmware"
    d.mkdir()
    yield str(d)
    if os.path.ismount(str(d)):  # a test that mounted through the CLI and failed half-way
        subprocess.run(["fusermount3", "-u", "-z", str(d)], check=False)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One background daemon for a whole test module, on the default platform."""
    why = unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    mountpoint = tmp_path_factory.mktemp("daemon") / "firmware"
    mountpoint.mkdir()
    with spawn.running(str(mountpoint)) as d:
        yield d


def wait(pred, timeout: float = 10.0) -> bool:
    """Poll pred() until it holds or the timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False
