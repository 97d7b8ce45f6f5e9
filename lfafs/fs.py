"""The FUSE operations: a /sys/firmware-like tree whose lfa/ the driver model serves.

sysfs file semantics, even for root: modes 0444/0200/0644, owner root, size
4096; opening a file in a direction its mode does not allow fails with
EACCES; ``echo 1 >`` (open with O_TRUNC, a truncate, then a write) works;
writes over 4096 bytes fail with E2BIG; a read at offset 0 renders the value
afresh and later offsets continue that rendering; direct I/O, no caching,
so listings follow rescans at once.

The filesystem holds no LFA rules: it asks the driver. FUSE worker threads
enter the Trio-owned driver with ``trio.from_thread``; values the driver
keeps cached are read without entering Trio, so they keep answering while
an activation holds the driver busy.
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable

import mfusepy
import trio

from lfafs.driver import ATTRIBUTES, LfaDriver
from lfafs.driver.lfa import DriverError

PAGE = 4096
HANDLES = 4096
DIR_MODE = stat.S_IFDIR | 0o755


class SysfsOps(mfusepy.Operations):
    """Path-based FUSE operations over an LfaDriver (fusepy API, raw_fi)."""

    use_ns = True

    def __init__(self, driver: LfaDriver, trio_token: trio.lowlevel.TrioToken, *,
                 passthrough: str | None = None) -> None:
        self._driver = driver
        self._token = trio_token
        self._passthrough = passthrough  # host directory shown beside lfa/ (read-only), or None
        self._born = time.time_ns()
        # The value rendered at offset 0, per open handle. There is no release()
        # callback (each callback is a round trip through Python), so the table is
        # bounded instead: a handle evicted after HANDLES newer opens renders anew.
        self._handles: collections.OrderedDict[int, bytes | None] = collections.OrderedDict()
        self._next_fh = itertools.count(1)
        self._mu = threading.Lock()  # never name an attribute like a FUSE op (e.g. "lock")

    # -- paths ---------------------------------------------------------------------------

    def _parse(self, path: str) -> tuple:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return ("root",)
        if parts[0] == "lfa" and self._driver.present:
            if len(parts) == 1:
                return ("lfa",)
            guid = parts[1]
            if guid not in self._driver.images:
                raise mfusepy.FuseOSError(errno.ENOENT)
            if len(parts) == 2:
                return ("image", guid)
            if len(parts) == 3 and parts[2] in self._driver.files():
                return ("attr", guid, parts[2])
            raise mfusepy.FuseOSError(errno.ENOENT)
        if self._passthrough is not None and parts[0] != "lfa":
            host = os.path.join(self._passthrough, *parts)
            if os.path.lexists(host):
                return ("host", host)
        raise mfusepy.FuseOSError(errno.ENOENT)

    def _times(self) -> dict:
        return {"st_atime": self._born, "st_mtime": self._born, "st_ctime": self._born}

    # -- Trio ---------------------------------------------------------------------------------

    def _in_trio(self, fn: Callable, *args):
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except DriverError as e:
            raise mfusepy.FuseOSError(e.errno) from None
        except trio.RunFinishedError:
            raise mfusepy.FuseOSError(errno.ENODEV) from None

    # -- metadata ----------------------------------------------------------------------------

    def getattr(self, path: str, fh=None) -> dict:
        node = self._parse(path)
        if node[0] == "host":
            st = os.lstat(node[1])
            keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
            out = {k: getattr(st, k) for k in keys}
            out["st_mode"] &= ~0o222  # read-only pass-through
            for k in ("st_atime", "st_mtime", "st_ctime"):
                out[k] = getattr(st, k + "_ns", int(out[k] * 1e9))
            return out
        if node[0] in ("root", "lfa", "image"):
            return {"st_mode": DIR_MODE, "st_nlink": 2, "st_uid": 0, "st_gid": 0, "st_size": 0, **self._times()}
        mode = ATTRIBUTES[node[2]]
        return {"st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_uid": 0, "st_gid": 0, "st_size": PAGE,
                **self._times()}

    def readdir(self, path: str, fh) -> list[str]:
        node = self._parse(path)
        if node[0] == "root":
            names = ["lfa"] if self._driver.present else []
            if self._passthrough is not None and os.path.isdir(self._passthrough):
                names += [n for n in sorted(os.listdir(self._passthrough)) if n != "lfa"]
        elif node[0] == "lfa":
            names = list(self._driver.images)  # a copy made under the GIL
        elif node[0] == "image":
            names = list(self._driver.files())
        elif node[0] == "host" and os.path.isdir(node[1]):
            names = sorted(os.listdir(node[1]))
        else:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return [".", "..", *names]

    def readlink(self, path: str) -> str:
        node = self._parse(path)
        if node[0] != "host":
            raise mfusepy.FuseOSError(errno.EINVAL)
        return os.readlink(node[1])

    # -- files ----------------------------------------------------------------------------------

    def open(self, path: str, fi) -> int:
        node = self._parse(path)
        acc = fi.flags & os.O_ACCMODE
        if node[0] == "host":
            if acc != os.O_RDONLY:
                raise mfusepy.FuseOSError(errno.EACCES)
            if not os.access(node[1], os.R_OK):
                raise mfusepy.FuseOSError(errno.EACCES)
            fi.direct_io = 1
            return 0
        if node[0] != "attr":
            raise mfusepy.FuseOSError(errno.EISDIR)
        mode = ATTRIBUTES[node[2]]
        reading = acc in (os.O_RDONLY, os.O_RDWR)
        writing = acc in (os.O_WRONLY, os.O_RDWR)
        # kernfs: no show() for a write-only file, no store() for a read-only one; even for root.
        if (reading and not mode & 0o444) or (writing and not mode & 0o200):
            raise mfusepy.FuseOSError(errno.EACCES)
        if writing and mfusepy.fuse_get_context()[0] != 0:
            raise mfusepy.FuseOSError(errno.EACCES)  # owner root, mode 0200/0644
        with self._mu:
            fh = next(self._next_fh)
            self._handles[fh] = None
            if len(self._handles) > HANDLES:
                self._handles.popitem(last=False)
        fi.fh = fh
        fi.direct_io = 1
        return 0

    def read(self, path: str, size: int, offset: int, fi) -> bytes:
        node = self._parse(path)
        if node[0] == "host":
            # No descriptor is kept open (and so no release() is needed): read by path.
            fd = os.open(node[1], os.O_RDONLY)
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)
        _, guid, attr = node
        with self._mu:
            rendered = self._handles.get(fi.fh)
        if offset == 0 or rendered is None:
            rendered = self._driver.read_cached(guid, attr)
            if rendered is None:  # a value the driver asks firmware for
                rendered = self._in_trio(self._driver.read, guid, attr)
            with self._mu:
                if fi.fh in self._handles:
                    self._handles[fi.fh] = rendered
        return rendered[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fi) -> int:
        node = self._parse(path)
        if node[0] != "attr":
            raise mfusepy.FuseOSError(errno.EACCES)
        if len(data) > PAGE:
            raise mfusepy.FuseOSError(errno.E2BIG)
        return self._in_trio(self._driver.write, node[1], node[2], bytes(data))

    def truncate(self, path: str, length: int, fh=None) -> int:
        # `echo 1 > file` truncates before it writes: a no-op for a writable attribute.
        node = self._parse(path)
        if node[0] != "attr" or not ATTRIBUTES[node[2]] & 0o200 or mfusepy.fuse_get_context()[0] != 0:
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def statfs(self, path: str) -> dict:
        return {"f_bsize": PAGE, "f_frsize": PAGE, "f_namemax": 255}


def mount_options(*, auto_unmount: bool = False) -> dict:
    """libfuse options: foreground (no fork inside Trio), threads, nothing cached."""
    opts = {
        "foreground": True,
        "nothreads": False,
        "fsname": "lfafs",
        "subtype": "lfafs",
        "default_permissions": False,
        "allow_other": True,
        "direct_io": True,
        "attr_timeout": 0,
        "entry_timeout": 0,
        "negative_timeout": 0,
    }
    if auto_unmount:
        opts["auto_unmount"] = True
    return opts


def serve(ops: SysfsOps, mountpoint: str, *, auto_unmount: bool = False) -> None:
    """Run the FUSE loop until the mount goes away (blocking: call it from a thread)."""
    mfusepy.FUSE(ops, mountpoint, raw_fi=True, **mount_options(auto_unmount=auto_unmount))
