"""The FUSE operations of a shard: ``nodes/<id>/`` is that node's /sys/firmware.

The mount's root holds one directory, ``nodes``, which lists the shard's
nodes; below ``nodes/<id>`` every operation is the node's own
lfafs.fs.SysfsOps, called with the ``/nodes/<id>`` prefix stripped, so a
node's tree has exactly the semantics of a single-node mount (kernfs
modes, sizes, write cuts, hash order, ENODEV after removal). A node that
is down answers EHOSTDOWN for everything below its directory. Two-path
operations across nodes fail with EXDEV, as across filesystems.
"""

from __future__ import annotations

import errno
import stat
import time
from collections.abc import Callable

import mfusepy

from lfafs.fs import SysfsOps

DIR_MODE = stat.S_IFDIR | 0o755
PREFIX = "/nodes/"

# The FUSE callbacks a single-node tree implements; each is routed to the node a path names.
ROUTED = tuple(sorted(n for n, v in vars(SysfsOps).items()
                      if callable(v) and not n.startswith("_") and hasattr(mfusepy.Operations, n)))
_TWO_PATHS = ("rename", "link")
# Fleet nodes serve lfa/ only: no efi/, so no release() (each FUSE callback is a trip through Python).
_NOT_ROUTED = ("getattr", "readdir", "statfs", "release")


def _fail(err: int):
    raise mfusepy.FuseOSError(err)


class FleetOps(mfusepy.Operations):
    """Path-based FUSE operations over the nodes a shard serves (fusepy API, raw_fi).

    ``node_ops(id)`` gives the SysfsOps of a running node, raises KeyError for
    an unknown id and returns None for a node that is down; ``node_ids()``
    lists the nodes. Both are called from FUSE worker threads: they read
    dictionaries only.
    """

    use_ns = True

    def __init__(self, node_ops: Callable[[str], SysfsOps | None], node_ids: Callable[[], list[str]]) -> None:
        self._node_ops = node_ops
        self._node_ids = node_ids
        self._born = time.time_ns()

    def _route(self, path: str) -> tuple[SysfsOps, str]:
        """The node's operations and the path within its tree, for a path below /nodes/<id>."""
        node, _, rest = path[len(PREFIX):].partition("/")
        try:
            ops = self._node_ops(node)
        except KeyError:
            _fail(errno.ENOENT)
        if ops is None:
            _fail(errno.EHOSTDOWN)
        return ops, "/" + rest

    def _top(self, path: str) -> bool:
        """True for the two directories of the shard itself: / and /nodes."""
        return path in ("/", "/nodes")

    # -- the shard's own two directories -------------------------------------------------------

    def _dir(self, nlink: int) -> dict:
        return {"st_mode": DIR_MODE, "st_nlink": nlink, "st_size": 0, "st_uid": 0, "st_gid": 0,
                "st_atime": self._born, "st_mtime": self._born, "st_ctime": self._born}

    def getattr(self, path: str, fh=None) -> dict:
        if path == "/":
            return self._dir(3)
        if path == "/nodes":
            return self._dir(2)  # node directories are not counted: a lookup must not list 5,000 names
        if not path.startswith(PREFIX):
            _fail(errno.ENOENT)
        ops, sub = self._route(path)
        return ops.getattr(sub, fh)

    def readdir(self, path: str, fh) -> list[str]:
        if path == "/":
            return [".", "..", "nodes"]
        if path == "/nodes":
            return [".", "..", *self._node_ids()]
        if not path.startswith(PREFIX):
            _fail(errno.ENOENT)
        ops, sub = self._route(path)
        return ops.readdir(sub, fh)

    def statfs(self, path: str) -> dict:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}


def _routed(name: str):
    def op(self: FleetOps, path: str, *args):
        if not path.startswith(PREFIX):
            if self._top(path):
                # the shard's directories: nothing may change them; they are not files
                _fail(errno.EISDIR if name in ("open", "read", "write", "truncate") else
                      errno.ENODATA if name == "getxattr" else errno.EPERM)
            _fail(errno.ENOENT if name not in ("create", "mknod", "mkdir", "symlink") else errno.EACCES)
        ops, sub = self._route(path)
        if name in _TWO_PATHS:
            other, *rest = args
            if not other.startswith(PREFIX):
                _fail(errno.EXDEV)
            other_ops, other_sub = self._route(other)
            if other_ops is not ops:
                _fail(errno.EXDEV)
            return getattr(ops, name)(sub, other_sub, *rest)
        return getattr(ops, name)(sub, *args)

    op.__name__ = name
    op.__doc__ = f"SysfsOps.{name} of the node the path names."
    return op


def _listxattr_top(self: FleetOps, path: str) -> list[str]:
    if self._top(path):
        return []
    return _routed("listxattr")(self, path)


for _name in ROUTED:
    if _name not in _NOT_ROUTED:
        setattr(FleetOps, _name, _routed(_name))
FleetOps.listxattr = _listxattr_top
