"""Crash consistency: SIGKILL at random points of a process that changes the flash as fast as it can,
on a normal disk, on a full one (a small tmpfs, ``size=``) and on one made read-only under it. After
every kill the state directory holds exactly the last flash that was saved, or the one being saved when
the kill came, never a mixture and never a corrupt file; the next start removes every temporary file
and unnamed image. Then the same with the real daemon, killed in the middle of activations."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from lfafs.platform import Platform
from lfafs.service import spawn
from lfafs.service.control import Client
from lfafs.service.state import StateDir
from tests.reliability._crash_child import summary
from tests.reliability.conftest import ROOT, SmallDisk, pick

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture(scope="module")
def server():
    """The fork server: lfafs imported once, a child forked per trial."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability._crash_child"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield proc
    proc.stdin.close()
    proc.wait(30)


def _ask(server, line: str) -> int:
    server.stdin.write(line + "\n")
    server.stdin.flush()
    return int(server.stdout.readline())


def _expected(log: str) -> tuple[list, list | None]:
    """(flashes the disk may hold, the last one saved): the last saved, and the one being saved if any."""
    saved, pending = None, None
    if not os.path.exists(log):
        return [None], None  # killed before it opened its log: before any save
    with open(log) as f:
        for line in f:
            if line.startswith("saving "):
                pending = json.loads(line[len("saving "):])
            elif line.startswith("saved"):
                saved, pending = pending, None
            elif line.startswith("failed"):
                pending = None
    return [saved] + ([pending] if pending is not None else []), saved


def _on_disk(state: str) -> list | None:
    loaded = StateDir(state).load(Platform.from_profile())  # a corrupt file raises StateError: a failure
    return None if loaded is None else summary(*loaded)


def _leftovers(state: str) -> list[str]:
    out = [n for _r, _d, names in os.walk(state) for n in names if ".tmp." in n]
    flash = os.path.join(state, "flash.json")
    named = set(json.load(open(flash))["images"].values()) if os.path.exists(flash) else set()
    images = os.path.join(state, "images")
    out += [n for n in (os.listdir(images) if os.path.isdir(images) else []) if n not in named]
    return out


def _trials(server, rng, base: str, logs: str, n: int, *, disk: SmallDisk | None = None, mode: str = "plain") -> dict:
    stats = {"trials": 0, "killed_while_saving": 0, "saves_before_kill": 0, "failed_saves": 0, "left_behind": 0}
    for i in range(n):
        state = os.path.join(base, f"t{i}")
        log = os.path.join(logs, f"t{i}.log")  # beside the disk under test, which may be full or read-only
        if disk is not None:
            disk.free()
            if mode == "full":
                disk.fill(leave=rng.choice([0, 2_000, 20_000, 80_000, 300_000]))
        pid = _ask(server, f"trial {state} {rng.randrange(1 << 32)} {log}")
        time.sleep(rng.uniform(0.0, 0.25))
        if mode == "read-only":
            _remount_ro(disk)
            time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        _ask(server, f"reap {pid}")
        if disk is not None and mode == "read-only":
            disk.read_only(False)
        allowed, _saved = _expected(log)
        got = _on_disk(state)
        assert got in allowed, f"trial {i} ({mode}): the disk holds {got}, expected one of {allowed}"
        text = open(log).read() if os.path.exists(log) else ""
        stats["trials"] += 1
        stats["saves_before_kill"] += text.count("saved\n")
        stats["failed_saves"] += text.count("failed\n")
        stats["killed_while_saving"] += len(allowed) > 1
        stats["left_behind"] += len(_leftovers(state)) > 0
        # the next start, once the disk works again: the same flash, nothing left behind
        if disk is not None:
            disk.free()
        if os.path.exists(state):
            sd = StateDir(state)
            try:
                sd.attach(Platform.from_profile(), "restart")
                assert _leftovers(state) == [], f"trial {i} ({mode}): left after a restart: {_leftovers(state)}"
                assert _on_disk(state) == got or got is None
            finally:
                sd.release()
        if os.path.exists(log):
            os.unlink(log)
        shutil.rmtree(state, ignore_errors=True)
    return stats


def _remount_ro(disk: SmallDisk) -> None:
    """Read-only as soon as no file is open for writing (a save in progress holds one)."""
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        r = subprocess.run(["mount", "-o", "remount,ro", disk.path], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.002)


def test_crash_consistency_on_a_normal_disk(server, rng, seed, public_dir, figures):
    stats = _trials(server, rng, os.path.join(public_dir, "plain"), public_dir, pick(220, 30))
    figures.update(seed=seed, **stats)


def test_crash_consistency_on_a_full_disk(server, rng, seed, public_dir, figures):
    disk = SmallDisk(os.path.join(public_dir, "full"), "2m")
    try:
        stats = _trials(server, rng, os.path.join(disk.path, "states"), public_dir, pick(60, 10), disk=disk,
                        mode="full")
    finally:
        disk.close()
    figures.update(seed=seed, **stats)
    assert stats["failed_saves"] > 0  # the disk did fill under the saves


def test_crash_consistency_on_a_disk_made_read_only(server, rng, seed, public_dir, figures):
    disk = SmallDisk(os.path.join(public_dir, "ro"), "64m")
    try:
        stats = _trials(server, rng, os.path.join(disk.path, "states"), public_dir, pick(60, 10), disk=disk,
                        mode="read-only")
    finally:
        disk.close()
    figures.update(seed=seed, **stats)


def test_sigkill_of_the_daemon_in_the_middle_of_activations(rng, seed, mountpoint, public_dir, figures):
    state = os.path.join(public_dir, "daemon-state")
    outcomes = {"old_still_staged": 0, "new": 0}
    for trial in range(pick(20, 3)):
        version = f"{trial + 1}.{rng.randrange(100)}"
        with spawn.running(mountpoint, state_dir=state) as d:
            before = _read(mountpoint, "current_version")
            Client(mount=mountpoint).stage("rmm", version=version)
            if rng.random() < 0.5:
                Client(mount=mountpoint).call("fail", component="rmm", at="activate", latency=rng.uniform(0, 0.3),
                                              once=True)
            _read(mountpoint, "activation_pending")
            writer = subprocess.Popen(["sh", "-c", f"echo 1 > {mountpoint}/lfa/{RMM}/activate"],
                                      stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, 0.3))
            d.process.send_signal(signal.SIGKILL)
            d.process.wait(30)
            writer.wait(30)
            _wait_unmounted(mountpoint)
        with spawn.running(mountpoint, state_dir=state):
            now = _read(mountpoint, "current_version")
            assert now in (before, version), f"trial {trial}: {now} is neither {before} nor {version}"
            assert _leftovers(state) == []
            if now == before:
                assert _read(mountpoint, "activation_pending") == "1"
                outcomes["old_still_staged"] += 1
            else:
                outcomes["new"] += 1
    figures.update(seed=seed, trials=sum(outcomes.values()), **outcomes)


def _wait_unmounted(mnt: str) -> None:
    """auto_unmount; until it has run, the dead mount answers ENOTCONN (not a mount, not a directory)."""
    end = time.monotonic() + 10
    while not (os.path.isdir(mnt) and not os.path.ismount(mnt)):
        if time.monotonic() > end:
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
            pytest.fail(f"a killed daemon's mount at {mnt} was not removed by auto_unmount within 10 s")
        time.sleep(0.02)


def _read(mnt: str, attr: str) -> str:
    with open(os.path.join(mnt, "lfa", RMM, attr)) as f:
        return f.read().strip()
