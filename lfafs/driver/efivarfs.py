"""efivarfs as Linux presents it: a model of fs/efivarfs/ and the VFS checks around it.

The file system speaks only EFI runtime services (efi_runtime.EfiRuntime).
Function names follow fs/efivarfs/{super,inode,file,vars}.c so the two can be
read side by side:

- mount: efivar_init() walks GetNextVariableName with a 512-byte name
  buffer; each variable becomes a file ``Name-guid`` (a "/" shown as "!"),
  immutable unless efivar_variable_is_removable(); the random-seed vendor is
  skipped; the directory is a snapshot from then on;
- a file is the 4-byte little-endian attributes and the data; every read
  asks firmware again (a size probe, then the data), and a variable that is
  gone reads as EOF;
- one write is one SetVariable: fewer than 4 bytes, attribute bits outside
  the kernel's mask, or a failed efivar_validate() give EINVAL before any
  firmware call; then a size probe updates ``st_size``; a write that deletes
  the variable removes the file as the kernel build says (``lifetime``);
- unlink is SetVariable with attributes 0 and no data (any failure but
  NOT_FOUND: EINVAL); ``O_TRUNC`` and ``truncate`` change nothing (v6.14+);
- FS_IOC_GETFLAGS/SETFLAGS carry only FS_IMMUTABLE_FL; the VFS answers EPERM
  for write-opens, truncation, attribute changes and unlink of an immutable
  file, and EROFS for every change on a read-only mount (no SetVariable);
- statfs reports QueryVariableInfo(NV|BS|RT) with a block size of 1.

Errors are raised as DriverError(errno), as the LFA driver model raises them.

Why this module is long: efivarfs is one file system in Linux too, and its
VFS checks belong with it.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import time
import uuid
from collections.abc import Callable

import attrs
import trio

from lfafs.driver import efivars_validate as v
from lfafs.driver.efi_runtime import EfiRuntime, efi_status_to_err
from lfafs.driver.image import DriverError
from lfafs.uefi import LINUX_EFI_RANDOM_SEED, NV_BS_RT, EfiStatus, RtSupported

EFIVARFS_MAGIC = 0xDE5E81E4
FS_IMMUTABLE_FL = 0x10
FS_XFLAG_IMMUTABLE = 0x8
NAME_MAX = 255
EFI_VARIABLE_MASK = 0x7F  # include/linux/efi.h: NV BS RT HW_ERROR AUTH TIME_AUTH APPEND
RATELIMIT_BURST, RATELIMIT_INTERVAL, RATELIMIT_SLEEP = 100, 1.0, 0.050  # user->ratelimit; msleep(50)


@attrs.frozen(kw_only=True)
class EfivarfsAbi:
    """One kernel build's efivarfs, where the versions differ (docs/efi.md, "Kernel versions")."""

    name: str
    summary: str
    # What happens to a file whose variable is gone: "a" (before v6.14) a deleting write drops it at
    # once, a never-written or failed file stays with size 0; "b" (the v6.14 series as posted) the last
    # close removes every file of size 0; "c" (v6.14 with the fwupd workaround) only a successful
    # deleting write marks it (size 1 while open) and the last close removes it.
    lifetime: str
    setattr_keeps_size: bool  # efivarfs_setattr() (8b4bc207f981): truncation accepted, size kept
    attribute_mask: int = EFI_VARIABLE_MASK
    name_buffer: int = 512  # efivar_init()'s GetNextVariableName buffer, in bytes


EFIVARFS_ABIS: dict[str, EfivarfsAbi] = {
    "v6.13": EfivarfsAbi(name="v6.13", summary="before the v6.14 lifetime rework", lifetime="a",
                         setattr_keeps_size=False),
    "v6.14-rc": EfivarfsAbi(name="v6.14-rc", summary="the v6.14 series as posted (the kernel selftest's build)",
                            lifetime="b", setattr_keeps_size=True),
    "v6.14": EfivarfsAbi(name="v6.14", summary="v6.14 and later, with the fwupd workaround (the default)",
                         lifetime="c", setattr_keeps_size=True),
}
DEFAULT_ABI = "v6.14"


@attrs.define(eq=False)
class Inode:
    """A file of the directory (its dentry and inode), or the root."""

    name: str  # the file name as it was created or enumerated
    var_name: str  # the variable's name as UCS-2 code units
    guid: uuid.UUID
    mode: int
    uid: int
    gid: int
    immutable: bool
    size: int
    times: list[int]  # atime, mtime, ctime in ns
    open_count: int = 0
    removed: bool = False  # var->removed: a write must not set it any more
    linked: bool = True  # the dentry is in the directory


@attrs.define(eq=False)
class OpenFile:
    inode: Inode
    flags: int
    counted: bool = True  # efivarfs_file_open() ran (not a FUSE-internal open for an ioctl)


class _RateLimit:
    """The per-user read ratelimit (kernel/user.c alloc_uid(): 100 per second; root has none)."""

    def __init__(self) -> None:
        self.begin: float | None = None
        self.count = 0

    def allow(self, now: float) -> bool:
        if self.begin is None or now >= self.begin + RATELIMIT_INTERVAL:
            self.begin, self.count = now, 0
        if self.count < RATELIMIT_BURST:
            self.count += 1
            return True
        return False


class Efivarfs:
    """One mount of efivarfs over the kernel's EFI runtime layer."""

    def __init__(self, runtime: EfiRuntime, *, abi: str = DEFAULT_ABI, uid: int = 0, gid: int = 0,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if abi not in EFIVARFS_ABIS:
            raise ValueError(f"unknown efivarfs build {abi!r}; choose one of {', '.join(EFIVARFS_ABIS)}")
        self.rt = runtime
        self.abi = EFIVARFS_ABIS[abi]
        self.uid, self.gid = uid, gid  # the uid= and gid= mount options
        self.clock = clock
        self.read_only = not runtime.supports_writes  # efivarfs_fill_super(): SB_RDONLY
        self._files: dict[str, Inode] = {}  # by file_key(), newest last (readdir shows newest first)
        self._ratelimits: dict[int, _RateLimit] = {}
        now = clock()
        self.root_times = [now, now, now]
        self.warnings: list[str] = []  # pr_warn() lines

    # -- mount: efivarfs_fill_super() and efivar_init() --------------------------------------------

    async def mount(self) -> None:
        """Enumerate the variables; -EOPNOTSUPP fails the mount when firmware has no GetNextVariableName."""
        if not self.rt.efivars_registered:
            raise DriverError(errno.EOPNOTSUPP)
        name, guid = "", uuid.UUID(int=0)
        seen: set[tuple[str, uuid.UUID]] = set()
        async with self.rt.efivars_lock:
            while True:
                status, size, next_name, next_guid = await self.rt.get_next_variable_name(
                    self.abi.name_buffer, name, guid)
                if status == EfiStatus.SUCCESS:
                    if (next_name, next_guid) in seen:  # variable_is_present(): dup_variable_bug()
                        self.warnings.append(f"efivars: duplicate variable: {next_name}-{next_guid}")
                        break
                    seen.add((next_name, next_guid))
                    await self._callback(next_name, next_guid)
                    name, guid = next_name, next_guid
                elif status == EfiStatus.UNSUPPORTED:
                    raise DriverError(errno.EOPNOTSUPP)
                elif status == EfiStatus.NOT_FOUND:
                    break
                elif status == EfiStatus.BUFFER_TOO_SMALL:
                    self.warnings.append(f"efivars: Variable name size exceeds maximum ({size} > "
                                         f"{self.abi.name_buffer})")
                    break
                else:
                    self.warnings.append(f"efivars: get_next_variable: status={status:x}")
                    break

    async def _callback(self, var_name: str, guid: uuid.UUID) -> None:
        """efivarfs_callback(): one file per variable, sized by a GetVariable probe."""
        if guid == LINUX_EFI_RANDOM_SEED:
            return
        shown = var_name.replace("/", "!")
        fname = f"{shown}-{guid}"
        status, _, size, _ = await self.rt.get_variable(var_name, guid, attributes=False, data_size=0, data=False)
        data_size = size if status == EfiStatus.BUFFER_TOO_SMALL else 0
        now = self.clock()
        self._files[v.file_key(fname)] = Inode(
            name=fname, var_name=var_name, guid=guid, mode=0o644, uid=self.uid, gid=self.gid,
            immutable=not v.is_removable(guid, shown), size=data_size + 4, times=[now, now, now])

    # -- the directory -----------------------------------------------------------------------------

    def lookup(self, name: str) -> Inode:
        """efivarfs_d_hash() refuses an invalid name with EINVAL; a valid unknown one is ENOENT."""
        if not v.valid_name(name):
            raise DriverError(errno.EINVAL)
        inode = self._files.get(v.file_key(name))
        if inode is None or not inode.linked:
            raise DriverError(errno.ENOENT)
        return inode

    def listdir(self) -> list[str]:
        """dcache_readdir(): the newest dentry first."""
        return [i.name for i in reversed(self._files.values()) if i.linked]

    def stat(self, inode: Inode) -> dict:
        atime, mtime, ctime = inode.times
        return {"st_mode": stat.S_IFREG | inode.mode, "st_nlink": 1 if inode.linked else 0, "st_uid": inode.uid,
                "st_gid": inode.gid, "st_size": inode.size, "st_atime": atime, "st_mtime": mtime,
                "st_ctime": ctime}

    def root_stat(self) -> dict:
        atime, mtime, ctime = self.root_times
        return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_uid": self.uid, "st_gid": self.gid,
                "st_size": 0, "st_atime": atime, "st_mtime": mtime, "st_ctime": ctime}

    # -- open, create, release: may_open(), efivarfs_create(), efivarfs_file_open/release() ----------

    def _may_write(self, inode: Inode) -> None:
        if self.read_only:
            raise DriverError(errno.EROFS)
        if inode.immutable:
            raise DriverError(errno.EPERM)

    def open(self, name: str, flags: int, *, counted: bool = True) -> OpenFile:
        inode = self.lookup(name)
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR) or flags & os.O_TRUNC:
            self._may_write(inode)
        if flags & os.O_TRUNC:
            self._truncate(inode)
        if counted:
            inode.open_count += 1
        return OpenFile(inode=inode, flags=flags, counted=counted)

    def create(self, name: str, mode: int, flags: int, *, opened: bool = True) -> OpenFile:
        """efivarfs_create(): an empty "uncommitted" file; the opener may write it even when immutable.

        ``opened`` is False for mknod(2), which creates the file without opening it.
        """
        if not v.valid_name(name):
            raise DriverError(errno.EINVAL)
        key = v.file_key(name)
        if key in self._files and self._files[key].linked:
            raise DriverError(errno.EEXIST)
        if self.read_only:
            raise DriverError(errno.EROFS)
        var_part, guid = v.split_name(name)
        if guid == LINUX_EFI_RANDOM_SEED:
            raise DriverError(errno.EPERM)
        # VariableName[i] = d_name.name[i]: one byte of the file name per UCS-2 unit
        var_name = var_part.encode("utf-8", "surrogateescape").decode("latin-1")
        now = self.clock()
        inode = Inode(name=name, var_name=var_name, guid=guid, mode=mode & 0o7777, uid=self.uid, gid=self.gid,
                      immutable=not v.is_removable(guid, var_part), size=0, times=[now, now, now])
        self._files.pop(key, None)
        self._files[key] = inode
        self.root_times[1] = self.root_times[2] = now
        if opened:
            inode.open_count += 1
        return OpenFile(inode=inode, flags=flags, counted=opened)

    def release(self, f: OpenFile) -> None:
        """efivarfs_file_release(): on the last close, a file the lifetime rule marks goes away."""
        if not f.counted:
            return
        inode = f.inode
        inode.open_count -= 1
        if self.abi.lifetime == "a":
            return
        gone_size = 0 if self.abi.lifetime == "b" else 1
        inode.removed = inode.open_count == 0 and inode.size == gone_size
        if inode.removed:
            inode.linked = False

    # -- read and write: efivarfs_file_read(), efivarfs_file_write() -----------------------------

    async def read(self, f: OpenFile, size: int, offset: int, uid: int = 0) -> bytes:
        if uid != 0:
            limit = self._ratelimits.setdefault(uid, _RateLimit())
            while not limit.allow(trio.current_time()):
                await trio.sleep(RATELIMIT_SLEEP)
        inode = f.inode
        async with self.rt.efivars_lock:  # efivar_entry_size()
            status, _, datasize, _ = await self.rt.get_variable(inode.var_name, inode.guid, attributes=False,
                                                                data_size=0, data=False)
        if status != EfiStatus.BUFFER_TOO_SMALL:
            err = efi_status_to_err(status)
            if err == -errno.ENOENT:
                return b""  # an uncommitted (or vanished) variable reads as EOF
            if err:
                raise DriverError(-err)
            datasize = 0
        async with self.rt.efivars_lock:  # efivar_entry_get()
            status, attributes, datasize, data = await self.rt.get_variable(
                inode.var_name, inode.guid, attributes=True, data_size=datasize, data=True)
        err = efi_status_to_err(status)
        if err:
            raise DriverError(-err)
        blob = struct.pack("<I", attributes or 0) + (data or b"")[:datasize]
        return blob[offset:offset + size]

    async def write(self, f: OpenFile, data: bytes) -> int:
        """One write() is one SetVariable; the file offset is never read."""
        if len(data) < 4:
            raise DriverError(errno.EINVAL)
        attributes = struct.unpack_from("<I", data)[0]
        if attributes & ~self.abi.attribute_mask:
            raise DriverError(errno.EINVAL)
        payload = bytes(data[4:])
        inode = f.inode
        if inode.removed and self.abi.lifetime != "a":
            raise DriverError(errno.EIO)  # the file was removed: a write racing with it
        err, was_set, datasize = await self._set_get_size(inode, attributes, payload)
        if not was_set and err:
            raise DriverError(errno.EIO if err == -errno.ENOENT else -err)
        if err == -errno.ENOENT:  # the write deleted the variable
            if self.abi.lifetime == "a":
                inode.linked = False  # drop_nlink(); d_delete()
            else:
                inode.size = 0 if self.abi.lifetime == "b" else 1
        else:
            inode.size = datasize + 4
            now = self.clock()
            inode.times[1] = inode.times[2] = now
        return len(data)

    async def _set_get_size(self, inode: Inode, attributes: int, payload: bytes) -> tuple[int, bool, int]:
        """efivar_entry_set_get_size(): (negative errno or 0, whether SetVariable succeeded, new size)."""
        if not v.validate(inode.guid, inode.var_name, payload):
            return -errno.EINVAL, False, len(payload)
        async with self.rt.efivars_lock:
            status = await self.rt.set_variable(inode.var_name, inode.guid, attributes, payload)
            if status != EfiStatus.SUCCESS:
                return efi_status_to_err(status), False, len(payload)
            status, _, size, _ = await self.rt.get_variable(inode.var_name, inode.guid, attributes=False,
                                                            data_size=0, data=False)
        if status not in (EfiStatus.SUCCESS, EfiStatus.BUFFER_TOO_SMALL):
            return efi_status_to_err(status), True, 0
        return 0, True, size

    # -- unlink, setattr -----------------------------------------------------------------------------

    async def unlink(self, name: str) -> None:
        """efivarfs_unlink(): SetVariable(attributes 0, no data); any failure but NOT_FOUND is EINVAL."""
        inode = self.lookup(name)
        self._may_write(inode)
        async with self.rt.efivars_lock:  # efivar_entry_delete()
            status = await self.rt.set_variable(inode.var_name, inode.guid, 0, b"")
        if status not in (EfiStatus.SUCCESS, EfiStatus.NOT_FOUND):
            raise DriverError(errno.EINVAL)
        inode.linked = False
        self.root_times[1] = self.root_times[2] = self.clock()

    def _truncate(self, inode: Inode) -> None:
        if not self.abi.setattr_keeps_size:
            inode.size = 0  # simple_setattr(): the inode's size, never the variable

    def setattr(self, inode: Inode, *, size: int | None = None, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, atime: int | None = None, mtime: int | None = None) -> None:
        """notify_change() then efivarfs_setattr(): a size is accepted and ignored (v6.14+)."""
        self._may_write(inode)
        if size is not None and not self.abi.setattr_keeps_size:
            inode.size = size  # simple_setattr(): the inode's size, never the variable
        if mode is not None:
            inode.mode = mode & 0o7777
        if uid is not None:
            inode.uid = uid
        if gid is not None:
            inode.gid = gid
        if atime is not None:
            inode.times[0] = atime
        if mtime is not None:
            inode.times[1] = mtime
        inode.times[2] = self.clock()

    # -- FS_IOC_GETFLAGS / SETFLAGS: efivarfs_fileattr_get/set() ----------------------------------------

    def get_flags(self, inode: Inode | None) -> int:
        """The root directory (``None``) has no flags."""
        return FS_IMMUTABLE_FL if inode is not None and inode.immutable else 0

    def set_flags(self, inode: Inode | None, flags: int, *, cap_linux_immutable: bool = True) -> None:
        if self.read_only:
            raise DriverError(errno.EROFS)  # ioctl_setflags(): mnt_want_write_file()
        old = self.get_flags(inode)
        if (old ^ flags) & FS_IMMUTABLE_FL and not cap_linux_immutable:
            raise DriverError(errno.EPERM)  # fileattr_set_prepare()
        if flags & ~FS_IMMUTABLE_FL:
            raise DriverError(errno.EOPNOTSUPP)
        if inode is not None:
            inode.immutable = bool(flags & FS_IMMUTABLE_FL)
            inode.times[2] = self.clock()

    def fsxattr_flags(self, inode: Inode | None) -> int:
        """FS_IOC_FSGETXATTR's fsx_xflags, as fileattr_fill_flags() derives them."""
        return FS_XFLAG_IMMUTABLE if self.get_flags(inode) & FS_IMMUTABLE_FL else 0

    # -- statfs: efivarfs_statfs() --------------------------------------------------------------------

    async def statfs(self) -> dict:
        storage = remaining = 0
        if self.rt.has(RtSupported.QUERY_VARIABLE_INFO):
            status, info = await self.rt.query_variable_info(int(NV_BS_RT))
            if status == EfiStatus.SUCCESS and info is not None:
                storage, remaining = info[0], info[1]
            elif status not in (EfiStatus.SUCCESS, EfiStatus.UNSUPPORTED):
                self.warnings.append(f"query_variable_info() failed: {status:#x}")
        return {"f_type": EFIVARFS_MAGIC, "f_bsize": 1, "f_frsize": 1, "f_blocks": storage, "f_bfree": remaining,
                "f_bavail": remaining, "f_files": 0, "f_ffree": 0, "f_namemax": NAME_MAX}
