"""The reliability suite: fuzz, crash consistency, soak and bad input, with printed seeds.

Not part of ``make test``: it runs with ``make reliability`` (LFAFS_RELIABILITY=full), in CI as
``LFAFS_RELIABILITY=short .venv/bin/python -m pytest -q tests/reliability``, or when
tests/reliability is named on the command line (full unless LFAFS_RELIABILITY says short).

Every test draws from ``rng``, seeded from the run's seed and the test's name: the seed is printed
in the header and with any failure, and ``LFAFS_SEED=<seed>`` replays the run. Each test may
``figures[...] = value``; the figures of the run are printed at its end and written to
build/reliability.json (docs/reliability.md quotes the last run).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import shutil
import subprocess
import tempfile
import time

import pytest

from lfafs.service import spawn

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURES_FILE = ROOT / "build" / "reliability.json"
_FIGURES: dict[str, dict] = {}
_SEED = int(os.environ.get("LFAFS_SEED") or random.SystemRandom().randrange(1 << 32))


def _named_here(config) -> bool:
    for arg in config.invocation_params.args:
        path = pathlib.Path(str(arg).split("::")[0])
        with contextlib.suppress(OSError):
            path = (config.invocation_params.dir / path).resolve()
            if path == HERE or HERE in path.parents:
                return True
    return False


def pytest_ignore_collect(collection_path, config):
    if collection_path.name.startswith("test_") and not (os.environ.get("LFAFS_RELIABILITY") or _named_here(config)):
        return True  # only on request: make reliability, or tests/reliability named
    return None


def level() -> str:
    value = os.environ.get("LFAFS_RELIABILITY", "full")
    if value not in ("full", "short"):
        raise pytest.UsageError(f"LFAFS_RELIABILITY must be full or short, not {value!r}")
    return value


def pick(full, short):
    """The full run's figure or the short run's."""
    return full if level() == "full" else short


def pytest_report_header(config):
    return f"lfafs reliability: level {level()}, seed {_SEED} (replay with LFAFS_SEED={_SEED})"


@pytest.fixture
def seed(request) -> int:
    return random.Random(f"{_SEED}:{request.node.name}").randrange(1 << 32)


@pytest.fixture
def rng(seed) -> random.Random:
    return random.Random(seed)


@pytest.fixture
def figures(request) -> dict:
    out = _FIGURES.setdefault(request.node.name, {})
    start = time.monotonic()
    yield out
    out["seconds"] = round(time.monotonic() - start, 1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        test_seed = random.Random(f"{_SEED}:{item.name}").randrange(1 << 32)
        report.sections.append(("replay", f"run seed {_SEED}, test seed {test_seed}: "
                                          f"LFAFS_SEED={_SEED} LFAFS_RELIABILITY={level()} "
                                          f"pytest tests/reliability -k '{item.name}'"))


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section(f"reliability figures (level {level()}, seed {_SEED})")
    for name, values in _FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    FIGURES_FILE.parent.mkdir(exist_ok=True)
    FIGURES_FILE.write_text(json.dumps({"level": level(), "seed": _SEED, "when": time.strftime("%Y-%m-%d %H:%M"),
                                        "tests": _FIGURES}, indent=1))


# -- shared fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def public_dir():
    """A directory every user can reach (pytest's own are root's only)."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root and /dev/fuse")
    top = tempfile.mkdtemp(prefix="lfafs-rel-", dir="/tmp")
    os.chmod(top, 0o755)
    yield top
    for d in sorted((os.path.join(r, n) for r, ds, _ in os.walk(top, topdown=True) for n in ds), reverse=True):
        if os.path.ismount(d):
            subprocess.run(["fusermount3", "-u", "-z", d], capture_output=True)
            subprocess.run(["umount", "-l", d], capture_output=True)
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def mountpoint(public_dir) -> str:
    path = os.path.join(public_dir, "firmware")
    os.mkdir(path)
    return path


@pytest.fixture
def daemon(mountpoint):
    with spawn.running(mountpoint, allow_other=True) as d:
        yield d


class SmallDisk:
    """A tmpfs of ``size``: filled, freed or made read-only at will."""

    def __init__(self, path: str, size: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")

    def fill(self, leave: int = 0) -> None:
        """Fill the disk, leaving about ``leave`` bytes free."""
        st = os.statvfs(self.path)
        want = max(0, st.f_bavail * st.f_frsize - leave)
        fd = os.open(os.path.join(self.path, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            with contextlib.suppress(OSError):
                while want > 0:
                    want -= os.write(fd, b"\0" * min(want, 65536))
        finally:
            os.close(fd)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, "filler"))

    def read_only(self, on: bool = True) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", self.path], check=True,
                       capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", self.path], capture_output=True)
