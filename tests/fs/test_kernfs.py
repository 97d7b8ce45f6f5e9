"""kernfs and sysfs generics through a real mount: what any sysfs file does, LFA or not.

docs/sysfs-abi.md, "File semantics". Every answer here is the one the kernel
gives on /sys; the source of each is cited next to its test.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import time
import uuid

import pytest

from lfafs.fs import kernfs_order

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
SP1 = "f07b2a96-1d47-4d17-9ec8-86a64e253e5c"
SP2 = "c3ff2127-7e41-a9f8-05af-24a1afa33474"
VERA_GUID = "3ab71f81-32b9-496d-841b-e3d0e9fd1a48"  # hashes before every FVP GUID


def err_of(fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    return e.value.errno


def add_component(m, guid: str, name: str = "scp") -> None:
    from lfafs.platform.profile import ComponentSpec

    spec = ComponentSpec(name=name, guid=uuid.UUID(guid), activator="none", version=(1, 0),
                         may_reset_cpu=False, cpu_rendezvous_required=False)
    m.call(m.platform.add_component, spec)


def activate_rmm(m) -> None:
    """An activation, so that the driver rescans (lfa_fw.c, update_fw_images_tree())."""
    m.call(m.platform.stage, "rmm", (1, 0))
    m.read(RMM, "activation_pending")
    m.write(RMM, "activate")


# -- writes -----------------------------------------------------------------------------------


def test_a_write_longer_than_a_page_is_cut_to_4096_bytes(mount):
    # fs/kernfs/file.c, kernfs_fop_write_iter(): sysfs sets no atomic_write_len, so
    # len = min(len, PAGE_SIZE); the call returns 4096, never E2BIG.
    assert mount.write(SP1, "auto_activate", "1" * 5000) == 4096
    assert mount.read(SP1, "auto_activate") == "1\n"


def test_a_buffered_writer_finishes_a_long_write_with_a_second_store(mount):
    # The same clamp: Python's writer retries the remaining 904 bytes, a second store().
    with open(mount.path(SP1, "force_cpu_rendezvous"), "w") as f:
        f.write("0" * 5000)
    assert mount.read(SP1, "force_cpu_rendezvous") == "0\n"


# -- readdir order ------------------------------------------------------------------------------


def test_the_hash_is_kernfs_name_hash():
    # fs/kernfs/dir.c, kernfs_name_hash(); include/linux/stringhash.h. The image-directory
    # order below is the one `find` printed on Vera (NV-Kernels pull requests 312 and 314).
    seen = ["may_reset_cpu", "pending_version", "cpu_rendezvous", "cancel", "force_cpu_rendezvous", "activate",
            "activation_capable", "activation_pending"]
    assert kernfs_order(seen) == seen


def test_an_image_directory_lists_its_files_in_hash_order(mount):
    # fs/kernfs/dir.c, kernfs_fop_readdir(): the sibling rbtree, ordered by kernfs_name_compare().
    assert os.listdir(mount.path(RMM)) == [
        "may_reset_cpu", "pending_version", "cpu_rendezvous", "auto_activate", "cancel", "force_cpu_rendezvous",
        "activate", "activation_capable", "activation_pending", "current_version", "name"]


def test_lfa_lists_guid_directories_in_hash_order(mount):
    assert [n[:8] for n in os.listdir(mount.lfa)] == [
        "6c0762a6", "f07b2a96", "c3ff2127", "47d4086d", "05d0e189", "d6d0eea7"]


def test_a_rescan_inserts_a_new_guid_in_its_hash_slot_not_at_the_end(mount):
    # kernfs_link_sibling() inserts by hash, so a GUID the rescan adds can come first.
    add_component(mount, VERA_GUID)
    activate_rmm(mount)
    assert os.listdir(mount.lfa)[0] == VERA_GUID


# -- nlink ----------------------------------------------------------------------------------------


def test_lfa_nlink_is_two_plus_its_image_directories(mount):
    # fs/kernfs/inode.c, kernfs_refresh_inode(): set_nlink(inode, kn->dir.subdirs + 2).
    assert os.stat(mount.lfa).st_nlink == 2 + 6
    assert os.stat(mount.path(RMM)).st_nlink == 2
    add_component(mount, VERA_GUID)
    activate_rmm(mount)
    assert os.stat(mount.lfa).st_nlink == 2 + 7


# -- the namespace belongs to the kernel -----------------------------------------------------------


def test_creating_a_name_is_eacces(mount):
    # fs/namei.c, lookup_open(): a directory without ->create answers EACCES.
    assert err_of(os.open, mount.path(RMM, "new"), os.O_WRONLY | os.O_CREAT, 0o644) == errno.EACCES
    assert err_of(os.open, os.path.join(mount.lfa, "new"), os.O_WRONLY | os.O_CREAT, 0o644) == errno.EACCES
    # fs/namei.c, do_mknodat(): a regular file goes through vfs_create(), the same EACCES.
    assert err_of(os.mknod, mount.path(RMM, "node"), stat.S_IFREG | 0o644) == errno.EACCES


@pytest.mark.parametrize("op", ["mkdir", "rmdir", "unlink", "rename", "symlink", "link", "mkfifo"])
def test_namespace_changes_are_eperm(mount, op):
    # fs/kernfs/dir.c, kernfs_iop_mkdir()/kernfs_iop_rmdir()/kernfs_iop_rename() without syscall_ops;
    # fs/namei.c, vfs_unlink()/vfs_symlink()/vfs_link()/vfs_mknod() without the inode operation.
    d, f = mount.path(RMM), mount.path(RMM, "name")
    calls = {"mkdir": lambda: os.mkdir(os.path.join(d, "x")),
             "rmdir": lambda: os.rmdir(d),
             "unlink": lambda: os.unlink(f),
             "rename": lambda: os.rename(f, os.path.join(d, "other")),
             "symlink": lambda: os.symlink("name", os.path.join(d, "x")),
             "link": lambda: os.link(f, os.path.join(d, "x")),
             "mkfifo": lambda: os.mkfifo(os.path.join(d, "x"))}
    assert err_of(calls[op]) == errno.EPERM
    assert "name" in os.listdir(d) and len(os.listdir(d)) == 11


def test_root_may_chmod_chown_and_touch_and_stat_shows_it(mount):
    # fs/kernfs/inode.c, kernfs_iop_setattr(): the node keeps the new mode, owner and times.
    f = mount.path(SP1, "auto_activate")
    os.chmod(f, 0o600)
    os.chown(f, 1000, 1001)
    os.utime(f, ns=(1_000_000_000, 2_000_000_000))
    st = os.stat(f)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1001)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
    before = time.time_ns()
    os.utime(f)  # touch: now
    assert os.stat(f).st_mtime_ns >= before - 10**9
    os.chmod(mount.path(SP1), 0o700)
    assert stat.S_IMODE(os.stat(mount.path(SP1)).st_mode) == 0o700


def test_chmod_does_not_lift_kernfs_open_checks(mount):
    # fs/kernfs/file.c, kernfs_fop_open(): the open needs a mode bit *and* show()/store(),
    # checked even for root: a write-only attribute stays unreadable whatever its mode.
    os.chmod(mount.path(RMM, "activate"), 0o644)
    assert err_of(os.open, mount.path(RMM, "activate"), os.O_RDONLY) == errno.EACCES
    os.chmod(mount.path(RMM, "name"), 0)
    assert err_of(os.open, mount.path(RMM, "name"), os.O_RDONLY) == errno.EACCES
    os.chmod(mount.path(RMM, "name"), 0o666)
    assert err_of(os.open, mount.path(RMM, "name"), os.O_WRONLY) == errno.EACCES
    assert mount.read(RMM, "name") == "TF-RMM\n"


def test_truncate_by_root_succeeds_and_changes_nothing(mount):
    # kernfs_iop_setattr() accepts ATTR_SIZE without acting on it.
    os.truncate(mount.path(RMM, "name"), 0)
    assert mount.read(RMM, "name") == "TF-RMM\n"
    assert os.stat(mount.path(RMM, "name")).st_size == 4096


# -- removed nodes --------------------------------------------------------------------------------


def test_an_open_file_of_a_removed_image_answers_enodev(mount):
    # fs/kernfs/file.c: kernfs_get_active() fails once the node is removed, so
    # kernfs_seq_start() and kernfs_fop_write_iter() return ENODEV.
    rfd = os.open(mount.path(SP2, "name"), os.O_RDONLY)
    wfd = os.open(mount.path(SP2, "auto_activate"), os.O_WRONLY)
    try:
        mount.call(mount.platform.remove_component, "sp2")
        activate_rmm(mount)
        for _ in range(100):
            if SP2 not in os.listdir(mount.lfa):
                break
            time.sleep(0.01)
        assert err_of(os.pread, rfd, 100, 0) == errno.ENODEV
        assert err_of(os.write, wfd, b"1") == errno.ENODEV
        assert err_of(os.stat, mount.path(SP2, "name")) == errno.ENOENT
    finally:
        os.close(rfd)
        os.close(wfd)


# -- no ENOSYS ------------------------------------------------------------------------------------


def test_extended_attributes_answer_as_kernfs(mount):
    # fs/kernfs/inode.c, kernfs_xattr_handlers: trusted.* and security.* are kept on the
    # node; user.* needs KERNFS_ROOT_SUPPORT_USER_XATTR, which sysfs lacks.
    f = mount.path(RMM, "name")
    assert os.listxattr(f) == []
    assert err_of(os.getxattr, f, "user.x") == errno.ENODATA
    assert err_of(os.setxattr, f, "user.x", b"1") == errno.EOPNOTSUPP
    os.setxattr(f, "trusted.x", b"v")
    assert os.getxattr(f, "trusted.x") == b"v" and os.listxattr(f) == ["trusted.x"]
    os.removexattr(f, "trusted.x")
    assert err_of(os.removexattr, f, "trusted.x") == errno.ENODATA


def test_fallocate_and_ioctl_answer_as_sysfs(mount):
    # fs/open.c, vfs_fallocate(): no ->fallocate is EOPNOTSUPP; fs/ioctl.c: no ioctl is ENOTTY.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    fd = os.open(mount.path(SP1, "auto_activate"), os.O_WRONLY)
    try:
        assert libc.fallocate(fd, 0, 0, 1) == -1 and ctypes.get_errno() == errno.EOPNOTSUPP
        assert err_of(fcntl.ioctl, fd, 0x5401, b"\0" * 64) == errno.ENOTTY  # TCGETS
        os.fsync(fd)
    finally:
        os.close(fd)


def test_the_rest_of_the_file_calls_succeed(mount):
    # sysfs answers these; a FUSE operation left unimplemented would answer ENOSYS.
    f = mount.path(RMM, "name")
    os.statvfs(mount.lfa)
    assert os.access(f, os.R_OK) and not os.access(mount.path(RMM, "activate"), os.R_OK | os.X_OK)
    fd = os.open(mount.lfa, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)
    fd = os.open(f, os.O_RDONLY)
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH)
        assert os.lseek(fd, 0, os.SEEK_END) == 4096
    finally:
        os.close(fd)
