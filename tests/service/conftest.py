"""Fixtures shared by the service tests: a fresh mountpoint, cleaned up whatever happens."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from lfafs.testing import unavailable


@pytest.fixture
def mnt(tmp_path):
    why = unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    d = tmp_path / "firmware"
    d.mkdir()
    yield str(d)
    if os.path.ismount(str(d)):
        subprocess.run(["fusermount3", "-u", "-z", str(d)], check=False)


def wait(pred, timeout: float = 10.0) -> bool:
    """Poll pred() until it holds or the timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False
