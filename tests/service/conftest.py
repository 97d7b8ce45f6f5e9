"""Fixtures shared by the service tests: a fresh mountpoint, cleaned up whatever happens."""

from __future__ import annotations

import os
import subprocess

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
