from __future__ import annotations

import pytest

from .efi_harness import efi_mounts
from .harness import Mounted, fuse_unavailable


@pytest.fixture
def mount(tmp_path):
    why = fuse_unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    # Where FUSE is available a failing mount is a failure, never a skip.
    m = Mounted(tmp_path / "firmware")
    yield m
    m.close()


@pytest.fixture
def mount_factory(tmp_path):
    why = fuse_unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    made = []

    def make(**kw):
        m = Mounted(tmp_path / f"firmware{len(made)}", **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


@pytest.fixture
def efi_factory():
    """EfiMounted mounts (efi_harness.py), made on demand and closed after the test."""
    why = fuse_unavailable()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    with efi_mounts() as make:
        yield make


@pytest.fixture
def efi(efi_factory):
    return efi_factory()
