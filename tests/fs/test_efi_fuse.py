"""efi/ beside lfa/ on a real FUSE mount: efivarfs's files as programs see them, and the sysfs files around it.

Sources: Linux fs/efivarfs/{super,inode,file}.c (see tests/driver/test_efivarfs.py),
fs/ioctl.c (ioctl_getflags()/ioctl_setflags(), fileattr_set_prepare(): the
CAP_LINUX_IMMUTABLE check), fs/fuse/ioctl.c (fuse_fileattr_get() asks
FS_IOC_FSGETXATTR before a SETFLAGS), fs/fuse/inode.c fuse_statfs() (the
magic is FUSE's), drivers/firmware/efi/esrt.c.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import shutil
import struct
import subprocess
import time

import pytest

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
TEST_GUID = "210be57c-9849-4fc7-a635-e6382d1aec27"
ATTRS = struct.pack("<I", 7)



def oserror(fn, *args) -> int:
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


def write(path: str, data: bytes, flags: int = os.O_WRONLY) -> int:
    fd = os.open(path, flags, 0o644)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def getflags(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return buf[0]
    finally:
        os.close(fd)


def setflags(path: str, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [flags]), True)
    finally:
        os.close(fd)


def gone(path: str) -> bool:
    """FUSE sends RELEASE after close() returns: give the last close a moment to take the file away."""
    for _ in range(200):
        if not os.path.exists(path):
            return True
        time.sleep(0.005)
    return False


def as_user(*argv: str, uid: int = 1000) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
                          capture_output=True, text=True)


def test_efi_sits_beside_lfa_which_is_unchanged(efi):
    assert sorted(os.listdir(efi.mnt)) == ["efi", "lfa"]
    assert len(os.listdir(efi.lfa)) == 6
    assert sorted(os.listdir(efi.efi)) == ["efivars", "esrt", "fw_platform_size", "systab"]


def test_a_variable_file_is_attributes_and_data_with_efivarfs_modes(efi):
    st = os.stat(efi.var("BootOrder"))
    assert (oct(st.st_mode), st.st_uid, st.st_size) == ("0o100644", 0, 8)
    assert read(efi.var("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"
    assert oct(os.stat(efi.efivars).st_mode) == "0o40755"
    assert read(efi.var("BootOrder", "8BE4DF61-93CA-11D2-AA0D-00E098032B8C")) == read(efi.var("BootOrder"))


@pytest.mark.parametrize("fname", ["foo", "foo-bar", "-12345678-1234-1234-1234-123456789abc",
                                   "a-12345678=1234-1234-1234-123456789abc"])
def test_an_invalid_name_is_einval_even_to_look_up(efi, fname):
    path = os.path.join(efi.efivars, fname)
    assert oserror(os.stat, path) == errno.EINVAL
    assert oserror(write, path, ATTRS + b"\0", os.O_WRONLY | os.O_CREAT) == errno.EINVAL


def test_the_random_seed_vendor_cannot_be_created(efi):
    path = efi.var("Seed", "1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b")
    assert oserror(write, path, ATTRS + b"\0", os.O_WRONLY | os.O_CREAT) == errno.EPERM


def test_an_immutable_variable_refuses_writes_truncation_and_unlink_until_chattr(efi):
    path = efi.var("SecureBoot")
    assert getflags(path) == 0x10 and getflags(efi.var("BootOrder")) == 0
    assert oserror(os.open, path, os.O_WRONLY) == errno.EPERM
    assert oserror(os.truncate, path, 0) == errno.EPERM
    assert oserror(os.unlink, path) == errno.EPERM
    assert oserror(os.chmod, path, 0o600) == errno.EPERM
    setflags(path, 0)
    assert getflags(path) == 0
    assert oserror(write, path, struct.pack("<I", 6) + b"\x01") == errno.EROFS  # U-Boot's read-only property


def test_the_creating_open_may_write_a_new_immutable_variable(efi):
    path = os.path.join(efi.efivars, f"Fresh-{TEST_GUID}")
    assert write(path, ATTRS + b"hello", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == 9
    assert getflags(path) == 0x10 and read(path) == ATTRS + b"hello"
    assert oserror(os.open, path, os.O_WRONLY) == errno.EPERM


@pytest.mark.skipif(shutil.which("chattr") is None or shutil.which("capsh") is None,
                    reason="needs e2fsprogs and libcap2-bin")
def test_lsattr_and_chattr_work_and_need_cap_linux_immutable(efi):
    path = efi.var("SecureBoot")
    assert subprocess.run(["lsattr", path], capture_output=True, text=True).stdout.split()[0][4] == "i"
    r = subprocess.run(["capsh", "--drop=cap_linux_immutable", "--", "-c", f"chattr -i {path}"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert subprocess.run(["chattr", "+a", path], capture_output=True, text=True).returncode != 0
    assert subprocess.run(["chattr", "-i", path], capture_output=True).returncode == 0
    assert subprocess.run(["lsattr", path], capture_output=True, text=True).stdout.split()[0][4] == "-"


def test_write_rules_and_deletes(efi):
    path = efi.var("Timeout")
    assert oserror(write, path, b"\x07\x00\x00") == errno.EINVAL
    assert oserror(write, path, struct.pack("<I", 0x87) + b"\x05\x00") == errno.EINVAL
    assert oserror(write, efi.var("BootOrder"), ATTRS + b"\x01\x00\x02") == errno.EINVAL  # odd BootOrder
    assert oserror(write, path, ATTRS) == errno.EINVAL  # efivar_validate(): Timeout is 2 bytes, even to delete
    path = os.path.join(efi.efivars, f"Doomed-{TEST_GUID}")
    write(path, ATTRS + b"x", os.O_WRONLY | os.O_CREAT)
    setflags(path, 0)
    fd = os.open(path, os.O_WRONLY)
    assert os.write(fd, ATTRS) == 4  # attributes only: a delete
    assert os.fstat(fd).st_size == 1  # v6.14 marks it, and removes it at the last close
    os.close(fd)
    assert gone(path)
    os.unlink(efi.var("BootOrder"))
    assert not os.path.exists(efi.var("BootOrder"))


def test_truncating_a_variable_changes_nothing(efi):
    path = efi.var("BootOrder")
    assert subprocess.run(["bash", "-c", f": > {path}"]).returncode == 0
    assert os.stat(path).st_size == 8 and read(path) == b"\x07\x00\x00\x00\x01\x00\x00\x00"


def test_a_created_unwritten_file_reads_eof_and_stays(efi):
    path = os.path.join(efi.efivars, f"Uncommitted-{TEST_GUID}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    assert os.read(fd, 100) == b""
    os.close(fd)
    assert os.stat(path).st_size == 0 and oct(os.stat(path).st_mode) == "0o100600"


def test_an_open_file_outlives_its_unlink_and_reads_eof(efi):
    path = os.path.join(efi.efivars, f"OpenUnlink-{TEST_GUID}")
    write(path, ATTRS + b"\0", os.O_WRONLY | os.O_CREAT)
    setflags(path, 0)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    assert os.read(fd, 5) == b""
    os.close(fd)


def test_statfs_gives_bytes_from_query_variable_info_but_fuses_magic(efi):
    st = os.statvfs(efi.efivars)
    total, remaining, _ = efi.call(lambda: efi.platform.uefi.sp.store.query_variable_info(7))
    assert (st.f_bsize, st.f_frsize, st.f_blocks, st.f_bfree, st.f_namemax) == (1, 1, total, remaining, 255)
    r = subprocess.run(["stat", "-f", "-c", "%t", efi.efivars], capture_output=True, text=True)
    assert r.stdout.strip() == "65735546"  # FUSE_SUPER_MAGIC: efivarfs's 0xde5e81e4 cannot be shown


def test_mainline_u_boot_makes_the_mount_read_only(efi_factory):
    m = efi_factory(uefi={"configuration": "mainline"})
    assert oserror(os.open, m.var("BootOrder"), os.O_WRONLY) == errno.EROFS
    assert oserror(write, os.path.join(m.efivars, f"New-{TEST_GUID}"), ATTRS + b"x",
                   os.O_WRONLY | os.O_CREAT) == errno.EROFS
    assert oserror(os.unlink, m.var("BootOrder")) == errno.EROFS
    st = os.statvfs(m.efivars)
    assert (st.f_blocks, st.f_bfree) == (0, 0)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_other_users_may_read_variables_but_not_write_them_nor_read_the_esrt(efi):
    assert as_user("cat", efi.var("BootOrder")).returncode == 0
    r = as_user("sh", "-c", f"printf x >> {efi.var('BootOrder')}")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    for path in (os.path.join(efi.efi, "esrt/entries/entry0/fw_version"), os.path.join(efi.efi, "systab")):
        assert "Permission denied" in as_user("cat", path).stderr
    assert as_user("cat", os.path.join(efi.efi, "fw_platform_size")).stdout == "64\n"


def test_esrt_files_read_as_linux_prints_them(efi):
    entry = os.path.join(efi.efi, "esrt/entries/entry1")
    assert sorted(os.listdir(entry)) == ["capsule_flags", "fw_class", "fw_type", "fw_version", "last_attempt_status",
                                         "last_attempt_version", "lowest_supported_fw_version"]
    assert read(os.path.join(entry, "fw_class")) == b"d6d0eea7-fcea-d54b-9782-9934f234b6e4\n"
    assert os.stat(os.path.join(entry, "fw_class")).st_size == 4096
    assert oserror(os.open, os.path.join(entry, "fw_class"), os.O_WRONLY) == errno.EACCES
