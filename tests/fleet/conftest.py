"""Fixtures of the fleet tests: the lfafs_fleet fixture, scripts taken from docs/fleet.md,
a fleet brought up with the CLI, and an `lfafs` on PATH whose `fleet` is python -m lfafs.fleet."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from lfafs.fleet.testing import lfafs_fleet, unavailable_mount  # noqa: F401 - the fixture under test

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "fleet.md"


def doc_files() -> dict[str, str]:
    """The files docs/fleet.md shows: a '<!-- file: NAME -->' line, then a fenced block."""
    text = DOC.read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, re.S)}


def fleet_cli(*args: str, check: bool = False, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "lfafs.fleet", *args], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"lfafs fleet {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


@pytest.fixture
def mounted():
    why = unavailable_mount()
    if why:
        pytest.skip(why)


@pytest.fixture
def shim_path(tmp_path) -> dict[str, str]:
    """An environment whose `lfafs` runs `python -m lfafs.fleet` for `lfafs fleet ...`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "lfafs"
    shim.write_text(f'#!/bin/sh\nif [ "$1" = fleet ]; then shift; exec {sys.executable} -m lfafs.fleet "$@"; fi\n'
                    f'exec {sys.executable} -m lfafs "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.fixture
def fleet_up(tmp_path, mounted):
    """Bring fleets up with the CLI (`lfafs fleet up`); each is brought down at the end."""
    roots: list[str] = []

    def up(description: pathlib.Path, *options: str) -> str:
        root = str(tmp_path / f"root{len(roots)}")
        roots.append(root)
        fleet_cli("up", str(description), "--root", root, *options, check=True)
        return root

    yield up
    for root in roots:
        if os.path.exists(os.path.join(root, "fleet.json")):
            fleet_cli("down", "--root", root)
