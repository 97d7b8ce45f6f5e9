"""The FUSE operations: a /sys/firmware-like tree whose lfa/ the driver model serves.

sysfs (kernfs) semantics, operation by operation (docs/sysfs-abi.md, "File
semantics"): modes 0444/0200/0644, owner root, size 4096; opening a file in
a direction its mode or its attribute does not allow fails with EACCES even
for root; a write is cut to 4096 bytes; a read at offset 0 renders the value
afresh and later offsets continue that rendering; entries are listed in
kernfs hash order; new names cannot be made and nothing can be removed or
renamed, but root may chmod, chown and touch; an open file of a removed
image answers ENODEV. Direct I/O and no caching, so listings follow rescans
at once.

``efi/`` beside ``lfa/`` (class _EfiFiles, below): the kernfs files of
/sys/firmware/efi (fw_platform_size, systab, esrt/) and, at efi/efivars, the
efivarfs mount with efivarfs's own file semantics (lfafs/driver/efivarfs.py).
FUSE cannot report efivarfs's statfs magic; everything else is answered as
efivarfs and the VFS above it answer (docs/efi.md, "Differences").

The filesystem holds no LFA rules: it asks the driver. FUSE worker threads
enter the Trio-owned driver with ``trio.from_thread``; values the driver
keeps cached are read without entering Trio, so they keep answering while
an activation holds the driver busy.

One module: mfusepy wants the operations as one class, and the kernfs rules
they apply are kept together with them.
"""

from __future__ import annotations

import collections
import errno
import functools
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable

import attrs
import mfusepy
import trio

from lfafs.driver import ATTRIBUTES, LfaDriver
from lfafs.driver.efi_sysfs import EfiTree
from lfafs.driver.lfa import DriverError

PAGE = 4096
HANDLES = 4096
MAX_IDLE_THREADS = 10
DIR_MODE = stat.S_IFDIR | 0o755
UTIME_NOW = (1 << 30) - 1  # utimensat(2) tv_nsec values, as libfuse passes them on
UTIME_OMIT = (1 << 30) - 2
_MASK64 = (1 << 64) - 1
_GOLDEN_RATIO_64 = 0x61C8864680B583EB  # include/linux/hash.h
_INT_MAX = (1 << 31) - 1


def kernfs_name_hash(name: str) -> int:
    """fs/kernfs/dir.c, kernfs_name_hash() with no namespace tag.

    partial_name_hash() over the bytes, end_name_hash() (hash_long(h, 32): the
    top 32 bits of h times the 64-bit golden ratio), then 31 bits, with 0, 1
    and INT_MAX kept for the directory's magic positions
    (include/linux/stringhash.h, include/linux/hash.h).
    """
    h = 0
    for c in name.encode():
        h = ((h + (c << 4) + (c >> 4)) * 11) & _MASK64
    h = ((h * _GOLDEN_RATIO_64) & _MASK64) >> 32
    h &= 0x7FFF_FFFF
    if h < 2:
        h += 2
    return min(h, _INT_MAX - 1)


def kernfs_order(names: Iterable[str]) -> list[str]:
    """The order of a kernfs directory's sibling rbtree, which readdir walks: hash, then strcmp().

    fs/kernfs/dir.c, kernfs_name_compare(), kernfs_link_sibling(), kernfs_fop_readdir().
    """
    return sorted(names, key=lambda n: (kernfs_name_hash(n), n.encode()))


@attrs.define
class _Iattr:
    """What kernfs keeps on a node once a caller changed it (kn->iattr): fs/kernfs/inode.c,
    __kernfs_setattr() and the simple_xattr store of kernfs_vfs_xattr_set().

    ``node`` is the object the entry belongs to; when the path names another
    object (the image was removed and added again), the entry is forgotten,
    as the kernel's new node starts clean.
    """

    node: object
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime: int | None = None
    mtime: int | None = None
    ctime: int | None = None
    xattrs: dict[str, bytes] = attrs.Factory(dict)


FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long): the payload is an int (fs/ioctl.c)
FS_IOC_SETFLAGS = 0x40086602
FS_IOC32_GETFLAGS = 0x80046601
FS_IOC32_SETFLAGS = 0x40046602
FS_IOC_FSGETXATTR = 0x801C581F  # sent by the VFS's fileattr path before every SETFLAGS (fuse_fileattr_get())
FS_IOC_FSSETXATTR = 0x401C5820
FSXATTR_SIZE = 28


class _EfiFiles:
    """efi/: the kernfs attributes of /sys/firmware/efi and the efivarfs mount at efi/efivars.

    Every operation of SysfsOps hands a path below efi/ (or a path-less call on an
    open efivarfs file, which libfuse makes after the file was unlinked) to the
    ``_efi_*`` method of the same name. efivarfs rules are the model's; this class
    only maps FUSE calls to them: open files by handle, the caller's uid from the
    FUSE context, the ioctls' buffers.
    """

    _efi: EfiTree | None
    _token: trio.lowlevel.TrioToken
    _in_trio: Callable[..., object]  # SysfsOps._in_trio: how a FUSE thread enters Trio

    @property
    def has_efi(self) -> bool:
        return self._efi is not None

    def reboot_efi(self, tree: EfiTree) -> None:
        """A new kernel boot after a platform reset: efivarfs mounted again, handles of the old one gone.

        Only for a mount made with an efi tree (its release callback is registered at mount time).
        """
        if self._efi is None:
            raise ValueError("this mount was made without efi/: make it with SysfsOps(..., efi=tree)")
        with self._mu:
            self._efi = tree
            self._efi_handles.clear()

    def _efi_path(self, path: str | None) -> bool:
        return self._efi is not None and (path is None or path == "/efi" or path.startswith("/efi/"))

    def _efi_parse(self, path: str | None, fh=None) -> tuple:
        """("efi_dir", rel) | ("efi_attr", rel) | ("efivars",) | ("efivar", name, inode)."""
        if path is None:
            return self._efi_open_file(fh)
        rel = path[len("/efi"):].strip("/")
        fs = self._efi.efivarfs
        if rel == "efivars" or rel.startswith("efivars/"):
            rest = rel[len("efivars"):].strip("/")
            if not rest:
                return ("efivars",) if fs is not None else ("efi_dir", "efivars")
            if fs is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
            if "/" in rest:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            try:
                return ("efivar", rest, fs.lookup(rest))
            except DriverError as e:
                raise mfusepy.FuseOSError(e.errno) from None
        if rel in self._efi.sysfs.files:
            return ("efi_attr", rel)
        if rel in self._efi.sysfs.dirs:
            return ("efi_dir", rel)
        raise mfusepy.FuseOSError(errno.ENOENT)

    def _efi_open_file(self, fh):
        f = self._efi_handles.get(getattr(fh, "fh", fh)) if fh is not None else None
        if f is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return ("efivar", f.inode.name, f.inode)

    def _efi_now(self, fn: Callable, *args, **kw):
        """Run a quick synchronous efivarfs call here, under the handle lock: open, create, release and
        listdir touch only the directory and the open counts, and going through Trio would make the
        window in which another process's stat() races them wider than on Linux."""
        with self._mu:
            try:
                return fn(*args, **kw)
            except DriverError as e:
                raise mfusepy.FuseOSError(e.errno) from None

    def _efi_getattr(self, path: str | None, fh=None) -> dict:
        try:
            node = self._efi_parse(path, fh)
        except mfusepy.FuseOSError:
            if fh is None or path is None or not path.startswith("/efi/efivars/"):
                raise
            node = self._efi_open_file(fh)  # fstat() of an open file whose name is gone
        fs = self._efi.efivarfs
        if node[0] == "efivar":
            return fs.stat(node[2])
        if node[0] == "efivars":
            return fs.root_stat()
        if node[0] == "efi_attr":
            out = {"st_mode": stat.S_IFREG | self._efi.sysfs.files[node[1]][0], "st_nlink": 1, "st_size": PAGE}
        else:
            subdirs = sum(1 for n in self._efi.sysfs.children(node[1])
                          if f"{node[1]}/{n}".strip("/") in self._efi.sysfs.dirs)
            out = {"st_mode": DIR_MODE, "st_nlink": 2 + subdirs, "st_size": 0}
        out.update(st_uid=0, st_gid=0, st_atime=self._born, st_mtime=self._born, st_ctime=self._born)
        return self._with_iattr(out, path, node)

    def _efi_readdir(self, path: str) -> list[str]:
        node = self._efi_parse(path)
        if node[0] == "efivars":
            return [".", "..", *self._efi_now(self._efi.efivarfs.listdir)]
        if node[0] != "efi_dir":
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return [".", "..", *kernfs_order(self._efi.sysfs.children(node[1]))]

    def _any_node(self, path: str) -> tuple:
        """The node of any path: an efi/ one or one of the rest of the tree."""
        return self._efi_parse(path) if self._efi_path(path) else self._parse(path)

    def _efivarfs_node(self, path: str | None, fh=None) -> tuple | None:
        """The efivarfs node of ``path`` (or of the open file ``fh``), None elsewhere."""
        if not self._efi_path(path):
            return None
        node = self._efi_parse(path, fh)
        return node if node[0] in ("efivar", "efivars") else None

    def _efi_setattr(self, node: tuple, **changes) -> int:
        """notify_change() on efivarfs: the file's inode, or the root (only the read-only check)."""
        if node[0] == "efivar":
            self._in_trio(self._efi.efivarfs.setattr, node[2], sync=True, **changes)
        elif self._efi.efivarfs.read_only:
            raise mfusepy.FuseOSError(errno.EROFS)
        return 0

    def _efi_create(self, path: str, mode: int, fi) -> int:
        node_dir, _, name = path.rpartition("/")
        if node_dir != "/efi/efivars" or self._efi.efivarfs is None:
            raise mfusepy.FuseOSError(errno.EACCES)  # kernfs: no ->create
        f = self._efi_now(self._efi.efivarfs.create, name, mode, fi.flags)
        return self._efi_handle(f, fi)

    def _efi_handle(self, f, fi) -> int:
        with self._mu:
            fh = next(self._next_fh)
            self._efi_handles[fh] = f
        fi.fh = fh
        fi.direct_io = 1
        return 0

    def _efi_open(self, path: str, fi) -> int:
        node = self._efi_parse(path)
        if node[0] == "efivar":
            # flags 0, without O_LARGEFILE, is the FUSE-internal open that FS_IOC_GETFLAGS makes
            # (fs/fuse/ioctl.c, fuse_priv_ioctl_prepare()): efivarfs never sees it.
            f = self._efi_now(self._efi.efivarfs.open, node[1], fi.flags, counted=fi.flags != 0)
            return self._efi_handle(f, fi)
        if node[0] != "efi_attr":
            raise mfusepy.FuseOSError(errno.EISDIR)
        if fi.flags & os.O_ACCMODE != os.O_RDONLY:
            raise mfusepy.FuseOSError(errno.EACCES)  # kernfs_fop_open(): no store()
        fi.direct_io = 1
        return 0

    def _efi_read(self, path: str | None, size: int, offset: int, fi) -> bytes:
        uid = mfusepy.fuse_get_context()[0]
        f = self._efi_handles.get(fi.fh)
        if f is not None:
            return self._in_trio(self._efi.efivarfs.read, f, size, offset, uid)
        node = self._efi_parse(path)
        if node[0] != "efi_attr":
            raise mfusepy.FuseOSError(errno.EISDIR)
        try:
            text = self._efi.sysfs.read(node[1], privileged=uid == 0)
        except DriverError as e:
            raise mfusepy.FuseOSError(e.errno) from None
        return text[offset:offset + size]

    def _efi_write(self, path: str | None, data: bytes, offset: int, fi) -> int:
        f = self._efi_handles.get(fi.fh)
        if f is None:
            raise mfusepy.FuseOSError(errno.EACCES)
        return self._in_trio(self._efi.efivarfs.write, f, bytes(data))

    def _efi_release(self, path: str | None, fi) -> int:
        # FUSE sends RELEASE after close() has returned: answered here, without the hop into Trio
        with self._mu:
            f = self._efi_handles.pop(fi.fh, None)
        if f is not None:
            self._efi_now(self._efi.efivarfs.release, f)
        return 0

    def _efi_unlink(self, path: str) -> int:
        node = self._efi_parse(path)
        if node[0] != "efivar":
            raise mfusepy.FuseOSError(errno.EPERM)
        self._in_trio(self._efi.efivarfs.unlink, node[1])
        return 0

    def _efi_ioctl(self, path: str | None, cmd: int, fh, data) -> int:
        import ctypes  # only the ioctl buffers need it

        node = self._efi_parse(path, fh)
        if node[0] not in ("efivar", "efivars"):
            raise mfusepy.FuseOSError(errno.ENOTTY)
        fs, inode = self._efi.efivarfs, node[2] if node[0] == "efivar" else None
        cmd &= 0xFFFF_FFFF
        if cmd in (FS_IOC_GETFLAGS, FS_IOC32_GETFLAGS):
            ctypes.memmove(data, fs.get_flags(inode).to_bytes(4, "little"), 4)
        elif cmd in (FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS):
            flags = int.from_bytes(ctypes.string_at(data, 4), "little")
            self._in_trio(fs.set_flags, inode, flags, sync=True)  # the VFS checked CAP_LINUX_IMMUTABLE
        elif cmd == FS_IOC_FSGETXATTR:
            raw = fs.fsxattr_flags(inode).to_bytes(4, "little") + bytes(FSXATTR_SIZE - 4)
            ctypes.memmove(data, raw, FSXATTR_SIZE)
        elif cmd == FS_IOC_FSSETXATTR:
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)  # efivarfs_fileattr_set(): fileattr_has_fsx()
        else:
            raise mfusepy.FuseOSError(errno.ENOTTY)
        return 0

    def _efi_statfs(self, path: str) -> dict:
        node = self._efi_parse(path)
        if node[0] in ("efivar", "efivars"):
            st = self._in_trio(self._efi.efivarfs.statfs)
            return {"f_bsize": st["f_bsize"], "f_frsize": st["f_frsize"], "f_blocks": st["f_blocks"],
                    "f_bfree": st["f_bfree"], "f_bavail": st["f_bavail"], "f_files": 0, "f_ffree": 0,
                    "f_namemax": st["f_namemax"]}
        return {"f_bsize": PAGE, "f_frsize": PAGE, "f_namemax": 255}


class SysfsOps(_EfiFiles, mfusepy.Operations):
    """Path-based FUSE operations over an LfaDriver (fusepy API, raw_fi)."""

    use_ns = True

    def __init__(self, driver: LfaDriver, trio_token: trio.lowlevel.TrioToken, *,
                 passthrough: str | None = None, efi: EfiTree | None = None) -> None:
        self._efi = efi  # /sys/firmware/efi, or None: no efi/ directory
        self._efi_handles: dict[int, object] = {}  # open efivarfs files by FUSE handle
        if efi is None:
            self.release = None  # no release() callback at all for an lfa/-only mount (mfusepy skips None)
        self._driver = driver
        self._token = trio_token
        self._passthrough = passthrough  # host directory shown beside lfa/ (read-only), or None
        self._born = time.time_ns()
        # Per open handle: [the value rendered at offset 0, the image the file belongs to].
        # There is no release() callback (each callback is a round trip through Python),
        # so the table is bounded instead: a handle evicted after HANDLES newer opens
        # renders anew and is checked by its path only.
        self._handles: collections.OrderedDict[int, list] = collections.OrderedDict()
        self._next_fh = itertools.count(1)
        self._iattrs: dict[str, _Iattr] = {}
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

    def _node_object(self, node: tuple) -> object:
        """The object a path's kernfs node stands for, so changes die with it."""
        if node[0] in ("image", "attr"):
            return self._driver.images.get(node[1])
        if node[0] == "lfa":
            return self._driver
        return self

    def _iattr(self, path: str, node: tuple, *, create: bool = False) -> _Iattr | None:
        obj = self._node_object(node)
        with self._mu:
            ia = self._iattrs.get(path)
            if ia is not None and ia.node is not obj:
                del self._iattrs[path]
                ia = None
            if ia is None and create:
                ia = self._iattrs[path] = _Iattr(obj)
            return ia

    def _host_dirs(self) -> list[str]:
        if self._passthrough is None or not os.path.isdir(self._passthrough):
            return []
        return [n for n in os.listdir(self._passthrough) if n != "lfa" and (n != "efi" or self._efi is None)]

    # -- Trio ---------------------------------------------------------------------------------

    def _in_trio(self, fn: Callable, *args, sync: bool = False, **kw):
        """Run ``fn`` in the Trio thread that owns the driver and the platform (an async function,
        or a plain one with ``sync``): a DriverError becomes its errno, a finished run ENODEV."""
        call = functools.partial(fn, *args, **kw)
        try:
            if sync:
                return trio.from_thread.run_sync(call, trio_token=self._token)
            return trio.from_thread.run(call, trio_token=self._token)
        except DriverError as e:
            raise mfusepy.FuseOSError(e.errno) from None
        except trio.RunFinishedError:
            raise mfusepy.FuseOSError(errno.ENODEV) from None

    # -- metadata ----------------------------------------------------------------------------

    def getattr(self, path: str, fh=None) -> dict:
        if self._efi_path(path):
            return self._efi_getattr(path, fh)
        try:
            node = self._parse(path)
        except mfusepy.FuseOSError:
            node = self._open_removed(path, fh)  # fstat() of an open file outlives its node
        if node[0] == "host":
            st = os.lstat(node[1])
            keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
            out = {k: getattr(st, k) for k in keys}
            out["st_mode"] &= ~0o222  # read-only pass-through
            for k in ("st_atime", "st_mtime", "st_ctime"):
                out[k] = getattr(st, k + "_ns", int(out[k] * 1e9))
        elif node[0] == "attr":
            out = {"st_mode": stat.S_IFREG | ATTRIBUTES[node[2]], "st_nlink": 1, "st_size": PAGE}
        else:
            # fs/kernfs/inode.c, kernfs_refresh_inode(): a directory's nlink is 2 + its subdirectories.
            subdirs = {"root": lambda: int(self._driver.present) + int(self._efi is not None) + sum(
                           os.path.isdir(os.path.join(self._passthrough, n)) for n in self._host_dirs()),
                       "lfa": lambda: len(self._driver.images),
                       "image": lambda: 0}[node[0]]()
            out = {"st_mode": DIR_MODE, "st_nlink": 2 + subdirs, "st_size": 0}
        if node[0] != "host":
            out.update(st_uid=0, st_gid=0, st_atime=self._born, st_mtime=self._born, st_ctime=self._born)
        return self._with_iattr(out, path, node)

    def _with_iattr(self, out: dict, path: str, node) -> dict:
        """A stat with what chmod, chown and utimens set on the node (kernfs keeps them in its iattrs)."""
        ia = self._iattr(path, node)
        if ia is not None:
            if ia.mode is not None:
                out["st_mode"] = stat.S_IFMT(out["st_mode"]) | ia.mode
            for key in ("uid", "gid", "atime", "mtime", "ctime"):
                if getattr(ia, key) is not None:
                    out["st_" + key] = getattr(ia, key)
        return out

    def _open_removed(self, path: str, fh) -> tuple:
        parts = [p for p in path.split("/") if p]
        if fh is not None and len(parts) == 3 and parts[0] == "lfa" and parts[2] in self._driver.files():
            return ("attr", parts[1], parts[2])
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh) -> list[str]:
        if self._efi_path(path):
            return self._efi_readdir(path)
        node = self._parse(path)
        if node[0] == "root":  # /sys/firmware's entries are kernfs siblings too
            names = kernfs_order((["lfa"] if self._driver.present else []) + (["efi"] if self._efi else [])
                                 + self._host_dirs())
        elif node[0] == "lfa":
            names = kernfs_order(list(self._driver.images))  # a copy made under the GIL
        elif node[0] == "image":
            names = kernfs_order(self._driver.files())
        elif node[0] == "host" and os.path.isdir(node[1]):
            names = os.listdir(node[1])  # the host's own readdir order
        else:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return [".", "..", *names]

    def readlink(self, path: str) -> str:
        node = self._parse(path)
        if node[0] != "host":
            raise mfusepy.FuseOSError(errno.EINVAL)
        return os.readlink(node[1])

    # -- what root may change: fs/kernfs/inode.c, kernfs_iop_setattr() -------------------------

    def chmod(self, path: str, mode: int) -> int:
        if (efivarfs := self._efivarfs_node(path)) is not None:
            return self._efi_setattr(efivarfs, mode=mode & 0o7777)
        node = self._any_node(path)
        ia = self._iattr(path, node, create=True)
        ia.mode, ia.ctime = mode & 0o7777, time.time_ns()
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        if (efivarfs := self._efivarfs_node(path)) is not None:
            return self._efi_setattr(efivarfs, uid=None if uid == -1 else uid, gid=None if gid == -1 else gid)
        node = self._any_node(path)
        ia = self._iattr(path, node, create=True)
        if uid != -1:
            ia.uid = uid
        if gid != -1:
            ia.gid = gid
        ia.ctime = time.time_ns()
        return 0

    def utimens(self, path: str, times=None) -> int:
        now = time.time_ns()
        atime, mtime = times if times is not None else (UTIME_NOW, UTIME_NOW)
        if (efivarfs := self._efivarfs_node(path)) is not None:
            at, mt = ((now if t == UTIME_NOW else None if t == UTIME_OMIT else t) for t in (atime, mtime))
            return self._efi_setattr(efivarfs, atime=at, mtime=mt)
        node = self._any_node(path)
        ia = self._iattr(path, node, create=True)
        for key, value in (("atime", atime), ("mtime", mtime)):
            if value != UTIME_OMIT:
                setattr(ia, key, now if value == UTIME_NOW else value)
        ia.ctime = now
        return 0

    def truncate(self, path: str, length: int, fh=None) -> int:
        # kernfs_iop_setattr() accepts a size and changes nothing; `echo 1 > file` truncates
        # before it writes. Who may truncate the kernel decides (default_permissions).
        if (efivarfs := self._efivarfs_node(path, fh)) is not None:
            return self._efi_setattr(efivarfs, size=length)
        self._any_node(path)
        return 0

    # -- extended attributes: fs/kernfs/inode.c, kernfs_xattr_handlers --------------------------

    _XATTR_STORED = ("trusted.", "security.")  # kept on the node (simple_xattr)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if self._efivarfs_node(path) is not None:
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)  # efivarfs has no xattr handlers
        node = self._any_node(path)
        if not name.startswith(self._XATTR_STORED + ("user.",)):
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)  # no handler for the prefix
        ia = self._iattr(path, node)
        if ia is None or name not in ia.xattrs:
            raise mfusepy.FuseOSError(errno.ENODATA)
        return ia.xattrs[name]

    def listxattr(self, path: str) -> list[str]:
        if self._efivarfs_node(path) is not None:
            return []
        ia = self._iattr(path, self._any_node(path))
        names = list(ia.xattrs) if ia is not None else []
        if mfusepy.fuse_get_context()[0] != 0:
            # simple_xattr_list() lists trusted.* only to CAP_SYS_ADMIN; the VFS leaves
            # the filtering to the filesystem, so it is done here (root stands for the capability).
            names = [n for n in names if not n.startswith("trusted.")]
        return names

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        if self._efivarfs_node(path) is not None:
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
        node = self._any_node(path)
        if not name.startswith(self._XATTR_STORED):
            # user.* needs KERNFS_ROOT_SUPPORT_USER_XATTR, which sysfs does not set
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
        ia = self._iattr(path, node, create=True)
        if options & os.XATTR_CREATE and name in ia.xattrs:
            raise mfusepy.FuseOSError(errno.EEXIST)
        if options & os.XATTR_REPLACE and name not in ia.xattrs:
            raise mfusepy.FuseOSError(errno.ENODATA)
        ia.xattrs[name] = bytes(value)
        return 0

    def removexattr(self, path: str, name: str) -> int:
        if self._efivarfs_node(path) is not None:
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
        node = self._any_node(path)
        if not name.startswith(self._XATTR_STORED):
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
        ia = self._iattr(path, node)
        if ia is None or ia.xattrs.pop(name, None) is None:
            raise mfusepy.FuseOSError(errno.ENODATA)
        return 0

    # -- the namespace is the kernel's: nothing can be made, removed or renamed -------------------

    def create(self, path: str, mode: int, fi=None) -> int:
        if self._efi_path(path):
            return self._efi_create(path, mode, fi)
        raise mfusepy.FuseOSError(errno.EACCES)  # fs/namei.c, lookup_open(): no ->create

    def mknod(self, path: str, mode: int, dev: int) -> int:
        # fs/namei.c, do_mknodat(): a regular file goes through vfs_create() (no ->create:
        # EACCES), anything else through vfs_mknod() (no ->mknod: EPERM).
        is_file = stat.S_IFMT(mode) in (0, stat.S_IFREG)
        if is_file and self._efi_path(path) and path.rpartition("/")[0] == "/efi/efivars" and self._efi.efivarfs:
            self._in_trio(self._efi.efivarfs.create, path.rpartition("/")[2], mode, 0, sync=True, opened=False)
            return 0  # efivarfs_create() through vfs_create(): the file exists, nobody has it open
        raise mfusepy.FuseOSError(errno.EACCES if is_file else errno.EPERM)

    def mkdir(self, path: str, mode: int) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # fs/kernfs/dir.c, kernfs_iop_mkdir(): no syscall_ops

    def rmdir(self, path: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # kernfs_iop_rmdir()

    def rename(self, old: str, new: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # kernfs_iop_rename()

    def unlink(self, path: str) -> int:
        if self._efi_path(path):
            return self._efi_unlink(path)
        raise mfusepy.FuseOSError(errno.EPERM)  # fs/namei.c, vfs_unlink(): no ->unlink

    def symlink(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # vfs_symlink(): no ->symlink

    def link(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # vfs_link(): no ->link

    # -- files ----------------------------------------------------------------------------------

    def open(self, path: str, fi) -> int:
        if self._efi_path(path):
            return self._efi_open(path, fi)
        node = self._parse(path)
        acc = fi.flags & os.O_ACCMODE
        if node[0] == "host":
            if acc != os.O_RDONLY:
                raise mfusepy.FuseOSError(errno.EACCES)
            _no_o_direct(fi)
            fi.direct_io = 1
            return 0
        if node[0] != "attr":
            raise mfusepy.FuseOSError(errno.EISDIR)
        ia = self._iattr(path, node)
        mode = ia.mode if ia is not None and ia.mode is not None else ATTRIBUTES[node[2]]
        has_read, has_write = bool(ATTRIBUTES[node[2]] & 0o444), bool(ATTRIBUTES[node[2]] & 0o222)
        reading = acc in (os.O_RDONLY, os.O_RDWR)
        writing = acc in (os.O_WRONLY, os.O_RDWR)
        # fs/kernfs/file.c, kernfs_fop_open(): sysfs checks the mode bits and whether the
        # attribute has show()/store() itself, after the VFS, so even root gets EACCES.
        if (writing and not (mode & 0o222 and has_write)) or (reading and not (mode & 0o444 and has_read)):
            raise mfusepy.FuseOSError(errno.EACCES)
        _no_o_direct(fi)
        with self._mu:
            fh = next(self._next_fh)
            self._handles[fh] = [None, self._driver.images.get(node[1])]
            if len(self._handles) > HANDLES:
                self._handles.popitem(last=False)
        fi.fh = fh
        fi.direct_io = 1
        _parallel_direct_writes(fi)
        return 0

    def _open_attr(self, path: str, fi) -> tuple[str, str, list | None]:
        """The image and attribute of an open file; ENODEV once its image is gone (kernfs_get_active())."""
        _, _, guid, attr = path.split("/", 3)
        with self._mu:
            handle = self._handles.get(fi.fh)
        now = self._driver.images.get(guid)
        if now is None or (handle is not None and handle[1] is not now):
            raise mfusepy.FuseOSError(errno.ENODEV)
        return guid, attr, handle

    def read(self, path: str, size: int, offset: int, fi) -> bytes:
        if self._efi_path(path):
            return self._efi_read(path, size, offset, fi)
        if not path.startswith("/lfa/"):
            node = self._parse(path)
            # No descriptor is kept open (and so no release() is needed): read by path.
            fd = os.open(node[1], os.O_RDONLY)
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)
        guid, attr, handle = self._open_attr(path, fi)
        rendered = handle[0] if handle is not None else None
        if offset == 0 or rendered is None:
            try:
                rendered = self._driver.read_cached(guid, attr)
            except DriverError as e:
                raise mfusepy.FuseOSError(e.errno) from None
            if rendered is None:  # a value the driver asks firmware for
                rendered = self._in_trio(self._driver.read, guid, attr)
            if handle is not None:
                handle[0] = rendered
        return rendered[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fi) -> int:
        if self._efi_path(path):
            return self._efi_write(path, data, offset, fi)
        if not path.startswith("/lfa/"):
            raise mfusepy.FuseOSError(errno.EACCES)
        guid, attr, _ = self._open_attr(path, fi)
        # fs/kernfs/file.c, kernfs_fop_write_iter(): without atomic_write_len (sysfs sets none)
        # a write is cut to PAGE_SIZE; the caller sees a short write, never E2BIG.
        return self._in_trio(self._driver.write, guid, attr, bytes(data[:PAGE]))

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh) -> int:
        raise mfusepy.FuseOSError(errno.EOPNOTSUPP)  # fs/open.c, vfs_fallocate(): no ->fallocate

    def release(self, path: str, fi) -> int:
        """Only with efi/ (see __init__): efivarfs_file_release() counts the closes."""
        return self._efi_release(path, fi)

    def ioctl(self, path: str, cmd: int, arg, fh, flags: int, data) -> int:
        if self._efi_path(path):
            return self._efi_ioctl(path, cmd, fh, data)
        raise mfusepy.FuseOSError(errno.ENOTTY)  # kernfs has no ->unlocked_ioctl

    def statfs(self, path: str) -> dict:
        if self._efi_path(path):
            return self._efi_statfs(path)
        return {"f_bsize": PAGE, "f_frsize": PAGE, "f_namemax": 255}


def _no_o_direct(fi) -> None:
    """fs/open.c, do_dentry_open(): after a successful ->open, O_DIRECT is EINVAL on a file whose
    mapping has no direct_IO, as every sysfs file's (kernfs sets no FMODE_CAN_ODIRECT)."""
    if fi.flags & os.O_DIRECT:
        raise mfusepy.FuseOSError(errno.EINVAL)


def _parallel_direct_writes(fi) -> None:
    """Let writes through different opens of one file run at once (FOPEN_PARALLEL_DIRECT_WRITES).

    kernfs serialises writes per open file only (of->mutex, fs/kernfs/file.c,
    kernfs_fop_write_iter()); FUSE takes the inode lock for every direct write
    unless the open sets this flag, which libfuse offers from 3.15 on. With an
    older libfuse a second writer of the same file waits for the first
    (docs/sysfs-abi.md, "What differs from Linux").
    """
    if hasattr(fi, "parallel_direct_writes"):
        fi.parallel_direct_writes = 1


def mount_options(*, auto_unmount: bool = False, allow_other: bool = False) -> dict:
    """libfuse options: foreground (no fork inside Trio), threads, nothing cached.

    default_permissions: the kernel checks modes and owners as the VFS checks
    them on sysfs (generic_permission(), setattr_prepare(), access()), for every
    operation and every user; the kernfs checks that go further
    (kernfs_fop_open()) are SysfsOps.open's. Without it FUSE lets any user who
    can reach the mount do anything the daemon can (read root-only pass-through
    files, write activate).

    allow_other only when asked for (``lfafs mount --allow-other``, ``lfafs
    run``): then every user gets what /sys/firmware gives them (modes and owners
    as shown); without it only the daemon's user can use the mount at all.
    """
    opts = {
        "foreground": True,
        "nothreads": False,
        "fsname": "lfafs",
        "subtype": "lfafs",
        "default_permissions": True,
        "direct_io": True,
        # Every path walk still asks (entry_timeout 0: a rescan's removal shows at once), and a
        # LOOKUP reply refreshes the attributes; caching them for a second saves the GETATTR
        # that default_permissions' check would otherwise send on every open (about 1.8x per
        # open/read/close, docs/performance.md). Only fstat of an fd held open sees them late.
        "attr_timeout": 1.0,
        "entry_timeout": 0,
        "negative_timeout": 0,
    }
    # Idle FUSE workers kept (libfuse 3's own figure before 3.12): unset, libfuse 3.12-3.14 hand the
    # loop -1 (unbounded) and print "Ignoring invalid max threads value" at every mount
    # (lib/fuse_loop_mt.c, fuse_loop_cfg_set_idle_threads()).
    opts["max_idle_threads"] = MAX_IDLE_THREADS
    if auto_unmount:
        opts["auto_unmount"] = True
    if os.geteuid() != 0:
        # An ordinary user's mount (through fusermount3): the files are that user's, as sysfs's are
        # root's, so the same user (or root in its user namespace, lfafs run) may write activate;
        # allow_other only where /etc/fuse.conf lets users ask for it.
        opts.update(uid=os.geteuid(), gid=os.getegid())
    if allow_other and (os.geteuid() == 0 or _user_allow_other()):
        opts["allow_other"] = True
    return opts


def _user_allow_other(conf: str = "/etc/fuse.conf") -> bool:
    try:
        with open(conf) as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def serve(ops: SysfsOps, mountpoint: str, *, auto_unmount: bool = False, allow_other: bool = False) -> None:
    """Run the FUSE loop until the mount goes away (blocking: call it from a thread).

    With efi/, hard_remove: an unlinked efivarfs file that is still open keeps
    working through its handle, as on Linux, instead of libfuse hiding it by a
    rename (which the tree refuses).
    """
    opts = mount_options(auto_unmount=auto_unmount, allow_other=allow_other)
    if ops.has_efi:
        opts["hard_remove"] = True
    mfusepy.FUSE(ops, mountpoint, raw_fi=True, **opts)
