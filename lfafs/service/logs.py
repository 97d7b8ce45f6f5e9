"""A daemon's log: what it did, and the kernel log of the driver it models, in its runtime directory.

The daemon writes timestamped lines to its stderr (``say``): its start and
stop, signals, scenario events, and every line of the modelled kernel log
(``driver.klog``) prefixed ``kernel:``. A daemon in the foreground (systemd,
``make run``) logs to wherever its stderr goes; a background one (``lfafs
mount`` without --foreground, ``lfafs run``, the fixtures) has its stderr
in ``<runtime dir>/daemon.log``, which ``lfafs logs MOUNTPOINT`` prints.

The runtime directory is the control socket's (docs/control-protocol.md);
the daemon removes it when it stops cleanly, so a mount leaves nothing
behind. A daemon that died keeps it, so its log explains why.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable, Iterator

from lfafs.service.control import socket_path

LOG = "daemon.log"
KERNEL = "kernel: "


def runtime_dir(mountpoint: str) -> str:
    return os.path.dirname(socket_path(os.path.abspath(mountpoint)))


def log_path(mountpoint: str) -> str:
    return os.path.join(runtime_dir(mountpoint), LOG)


def open_log(mountpoint: str):
    """A fresh log file for a daemon about to start (the runtime directory made 0700)."""
    d = runtime_dir(mountpoint)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    return open(os.path.join(d, LOG), "wb")


def remove_runtime_dir(mountpoint: str | None = None, directory: str | None = None) -> None:
    """Remove the log and the directory itself; anything else in it (a live socket) keeps it."""
    d = directory or runtime_dir(mountpoint)
    try:
        os.unlink(os.path.join(d, LOG))
    except OSError:
        pass
    try:
        os.rmdir(d)
    except OSError:
        pass


def stamp(text: str) -> str:
    now = datetime.datetime.now().isoformat(timespec="milliseconds")
    return f"{now} {text}"


def say(text: str) -> None:
    """One log line on stderr, timestamped."""
    print(stamp(text), file=sys.stderr, flush=True)


async def follow_klog(klog, write: Callable[[str], None] = say) -> None:
    """Write each line of the modelled kernel log as it appears (the driver's dmesg)."""
    last = None  # the last record written; the ring drops old ones, so find it by identity
    while True:
        records = list(klog.lines)
        start = next((i + 1 for i in range(len(records) - 1, -1, -1) if records[i] is last), 0)
        for t, _, msg in records[start:]:
            write(f"{KERNEL}[{t:12.6f}] {msg}")
        if records:
            last = records[-1]
        await klog.changed.wait()


def read(mountpoint: str, *, kernel: bool = False, follow: bool = False,
         alive: Callable[[], bool] | None = None) -> Iterator[str]:
    """The lines of a mount's daemon log (only the kernel's with ``kernel``); FileNotFoundError if none."""
    path = log_path(mountpoint)
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                if not kernel:
                    yield line.rstrip("\n")
                elif KERNEL in line:
                    yield line.split(KERNEL, 1)[1].rstrip("\n")
                continue
            if not follow or not os.path.exists(path) or (alive is not None and not alive()):
                return
            time.sleep(0.1)
