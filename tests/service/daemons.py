"""Finding the lfafs daemons of a mountpoint from /proc, for tests that check none is left behind."""

from __future__ import annotations

import os


def daemon_pids(mountpoint: str) -> list[int]:
    """Live daemons serving ``mountpoint`` (a zombie's cmdline is empty, so it is not one)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if mountpoint.encode() in argv and b"--foreground" in argv:
            pids.append(int(pid))
    return pids
