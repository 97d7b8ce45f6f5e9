"""An lfafs mount and the FUSE binding's floor, served side by side in this process.

Both fs.py and efi.py compare a file of the lfafs mount with a constant
mfusepy file at the same depth: both are served in this process, so both
pay for the same interpreter, and the ratio is fair.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterator

import trio


class ConstantFloor:
    """The floor of the binding: an mfusepy filesystem serving one constant.

    It has the same shape as lfafs's trees (two directory levels, then a
    file), so both pay for the same lookups; ``writable`` makes writes and
    truncates succeed and do nothing (for efivarfs's read-write files).
    """

    use_ns = True

    def __init__(self, content: bytes, *, size: int | None = None, writable: bool = False) -> None:
        self.content = content
        self.size = len(content) if size is None else size
        self.mode = 0o644 if writable else 0o444
        if writable:
            self.write = lambda path, data, offset, fi: len(data)
            self.truncate = lambda path, length, fh=None: 0

    def getattr(self, path, fh=None):
        depth = len([p for p in path.split("/") if p])
        if depth < 3:
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        return {"st_mode": stat.S_IFREG | self.mode, "st_nlink": 1, "st_size": self.size}

    def readdir(self, path, fh):
        return [".", "..", "x"]

    def open(self, path, fi):
        fi.direct_io = 1
        return 0

    def read(self, path, size, offset, fi):
        return self.content[offset:offset + size]


@contextlib.contextmanager
def beside_floor(bench: str, floor_ops, tmp: str, **run_mount_kw) -> Iterator[tuple[object, str, str]]:
    """(the Mount, the lfafs mountpoint, the floor's mountpoint) under ``tmp``; both unmounted on exit."""
    # Here, not at the top: the other benchmarks run where libfuse is missing.
    import mfusepy

    from lfafs.fs import mount_options
    from lfafs.service import spawn
    from lfafs.service.daemon import run_mount

    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        raise SystemExit(f"lfafs bench {bench}: needs root and /dev/fuse to mount")
    floor_mnt, lfa_mnt = os.path.join(tmp, "floor"), os.path.join(tmp, "lfafs")
    os.makedirs(floor_mnt)
    os.makedirs(lfa_mnt)
    floor = threading.Thread(target=lambda: mfusepy.FUSE(floor_ops, floor_mnt, raw_fi=True, **mount_options()),
                             daemon=True)
    floor.start()
    state: dict = {}
    ready = threading.Event()

    def on_ready(mount) -> None:
        state["mount"] = mount
        ready.set()

    lfa = threading.Thread(target=lambda: trio.run(lambda: run_mount(lfa_mnt, ready=on_ready, **run_mount_kw)),
                           daemon=True)
    lfa.start()
    try:
        for _ in range(3000):
            if os.path.ismount(floor_mnt) and ready.is_set():
                break
            time.sleep(0.01)
        else:
            raise SystemExit(f"lfafs bench {bench}: the mounts did not come up")
        yield state["mount"], lfa_mnt, floor_mnt
    finally:
        for mnt in (floor_mnt, lfa_mnt):
            spawn.unmount(mnt)
        floor.join(10)
        lfa.join(10)
