"""Crash consistency of NV variables: SIGKILL a daemon with --state-dir at random points of a loop of
SetVariable writes through its efivarfs files, restart it, and check that every write that returned
success is there with its value, the one write in flight at the kill is there whole or not at all, and no
value is torn. On a full disk (a small tmpfs) a refused write (EIO or ENOSPC to the writer) leaves the
old value, in the running daemon and after the restart.

The values carry their own digest, so a torn or mixed value cannot pass for a written one.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import signal
import struct
import threading
import time

from lfafs.service import spawn
from tests.reliability.conftest import SmallDisk, pick
from tests.reliability.test_crash_consistency import _leftovers, _wait_unmounted

VENDOR = "6c666166-7300-4669-8c6c-0000000000c5"
NAMES = [f"LfafsCrash{i}" for i in range(6)]  # 14 variables at boot + 6 fit the FVP's 35 slots
NV_BS_RT = 0x7
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10  # linux/fs.h


def _value(rng, trial: int, seq: int) -> bytes:
    body = f"{trial:04d}:{seq:08d}:".encode() + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600)))
    return body + hashlib.sha256(body).digest()[:8]


def _whole(data: bytes) -> bool:
    return len(data) >= 8 and hashlib.sha256(data[:-8]).digest()[:8] == data[-8:]


def _path(mnt: str, name: str) -> str:
    return os.path.join(mnt, "efi", "efivars", f"{name}-{VENDOR}")


def _set(mnt: str, name: str, data: bytes) -> None:
    """A SetVariable through efivarfs: create the file, clear the immutable flag (as efivar -w), write."""
    path = _path(mnt, name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        flags = bytearray(4)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
        if struct.unpack("<l", flags)[0] & FS_IMMUTABLE_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("<l", struct.unpack("<l", flags)[0] & ~FS_IMMUTABLE_FL))
    finally:
        os.close(fd)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, struct.pack("<I", NV_BS_RT) + data)
    finally:
        os.close(fd)


def _get(mnt: str, name: str) -> bytes | None:
    try:
        with open(_path(mnt, name), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    if not raw:
        return None
    assert raw[:4] == struct.pack("<I", NV_BS_RT), f"{name}: attributes {raw[:4].hex()}"
    return raw[4:]


class _Writer(threading.Thread):
    """SetVariable as fast as it can until the mount dies: what succeeded, was refused, was in flight."""

    def __init__(self, mnt: str, rng, trial: int, confirmed: dict) -> None:
        super().__init__(daemon=True)
        self.mnt, self.rng, self.trial, self.confirmed = mnt, rng, trial, confirmed
        self.in_flight: tuple[str, bytes] | None = None
        self.writes = self.refused = 0
        self.refused_checked = 0

    def run(self) -> None:
        seq = 0
        while True:
            name = self.rng.choice(NAMES)
            data = _value(self.rng, self.trial, seq)
            seq += 1
            self.in_flight = (name, data)
            try:
                _set(self.mnt, name, data)
            except OSError as e:
                if e.errno in (errno.EIO, errno.ENOSPC):  # the save failed: the old value stays
                    self.in_flight = None
                    self.refused += 1
                    try:
                        now = _get(self.mnt, name)
                    except OSError:
                        return  # killed between the refusal and the check
                    assert now == self.confirmed.get(name), f"{name}: a refused write changed the value"
                    self.refused_checked += 1
                    time.sleep(0.002)
                    continue
                return  # ENOTCONN and friends: the daemon was killed; in_flight may or may not be saved
            self.confirmed[name] = data
            self.in_flight = None
            self.writes += 1


def _trials(rng, mnt: str, state: str, n: int, disk: SmallDisk | None = None) -> dict:
    stats = {"trials": 0, "writes_acknowledged": 0, "in_flight_at_kill": 0, "in_flight_landed": 0,
             "refused": 0, "refused_checked_live": 0, "variables_checked": 0}
    confirmed: dict[str, bytes] = {}
    for trial in range(n):
        if disk is not None:
            disk.free()
        with spawn.running(mnt, state_dir=state) as d:
            for name in NAMES:  # the last run's acknowledged values came back
                assert _get(mnt, name) == confirmed.get(name), f"trial {trial}: {name} differs after a restart"
            if disk is not None:
                disk.fill(leave=rng.choice([0, 1_000, 4_000, 40_000]))
            w = _Writer(mnt, rng, trial, confirmed)
            w.start()
            time.sleep(rng.uniform(0.02, 0.4))
            d.process.send_signal(signal.SIGKILL)
            d.process.wait(30)
            w.join(30)
            assert not w.is_alive(), f"trial {trial}: the writer still runs after the kill"
            _wait_unmounted(mnt)
        if disk is not None:
            disk.free()
        stats["trials"] += 1
        stats["writes_acknowledged"] += w.writes
        stats["refused"] += w.refused
        stats["refused_checked_live"] += w.refused_checked
        with spawn.running(mnt, state_dir=state):
            assert _leftovers(state) == [], f"trial {trial}: left after a restart: {_leftovers(state)}"
            for name in NAMES:
                got = _get(mnt, name)
                assert got is None or _whole(got), f"trial {trial}: {name} is torn: {got[:24]!r}..."
                allowed = [confirmed.get(name)]
                if w.in_flight is not None and w.in_flight[0] == name:
                    allowed.append(w.in_flight[1])
                assert got in allowed, (f"trial {trial}: {name} holds {got and got[:14]!r}, expected one of "
                                        f"{[a and a[:14] for a in allowed]}")
                if got is not None and got != confirmed.get(name):
                    stats["in_flight_landed"] += 1
                    confirmed[name] = got
                stats["variables_checked"] += 1
            stats["in_flight_at_kill"] += w.in_flight is not None
    return stats


def test_variable_writes_survive_sigkill_of_the_daemon(rng, seed, mountpoint, public_dir, figures):
    stats = _trials(rng, mountpoint, os.path.join(public_dir, "var-state"), pick(40, 6))
    figures.update(seed=seed, **stats)
    assert stats["writes_acknowledged"] > 0


def test_variable_writes_refused_by_a_full_disk_keep_the_old_value(rng, seed, mountpoint, public_dir, figures):
    disk = SmallDisk(os.path.join(public_dir, "var-full"), "2m")
    try:
        stats = _trials(rng, mountpoint, os.path.join(disk.path, "state"), pick(20, 4), disk=disk)
    finally:
        disk.close()
    figures.update(seed=seed, **stats)
    assert stats["refused"] > 0  # the disk did refuse writes
