"""efivarfs behaviours through a real FUSE mount: what programs see, where the FUSE layer could change it.

Each test names the behaviour and the upstream code it follows; expected
values are restated from that code:

- Linux fs/efivarfs/inode.c efivarfs_fileattr_set() (only FS_IMMUTABLE_FL,
  other bits EOPNOTSUPP) and efivarfs_unlink() (any failure but NOT_FOUND is
  EINVAL); fs/efivarfs/file.c efivarfs_file_read() (a new GetVariable at every
  read, NOT_FOUND reads as EOF, the per-user ratelimit of kernel/user.c
  alloc_uid(): 100 a second, then msleep(50); root has none) and
  efivarfs_file_write() (-ENOENT from SetVariable is EIO); fs/efivarfs/super.c
  efivarfs_statfs() and efivar_init() (the listing is taken at mount);
  drivers/firmware/efi/efi.c efi_status_to_err();
- U-Boot lib/efi_loader/efi_variable_tee.c ffa_mm_communicate() (FF-A BUSY is
  EFI_OUT_OF_RESOURCES);
- fwupd plugins/uefi-capsule/fu-uefi-capsule-plugin.c (the "UEFI secure boot"
  security attribute) through libfwupdplugin/fu-efivars.c
  fu_efivars_get_secure_boot() (bit 0 of SecureBoot's data; no data: not enabled).
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess

import pytest

from lfafs.platform.ffa import FfaError
from lfafs.platform.spmc import RequestFault
from lfafs.platform.variable_store import AccessVariable
from lfafs.smccc import Fid
from lfafs.uefi import ucs2

from .test_efi_fuse import oserror, read, setflags, write

FS_IOC_SETFLAGS = 0x40086602
TEST_GUID = "210be57c-9849-4fc7-a635-e6382d1aec27"
ATTRS = struct.pack("<I", 7)
BOOT_ORDER = b"\x07\x00\x00\x00\x01\x00\x00\x00"  # the profile's BootOrder 0001,0000 with NV|BS|RT
GLOBAL_LE = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")  # 8be4df61-93ca-11d2-aa0d-00e098032b8c



def _firmware_set(m, var: str, data: bytes, attributes: int = 7) -> None:
    """A change made in the SP behind Linux's back (another OS, a setup menu)."""
    raw = ucs2(var)
    m.call(lambda: m.platform.uefi.sp.store.set_variable(AccessVariable(
        guid=GLOBAL_LE, data_size=len(data), name_size=len(raw), attributes=attributes, name=raw, data=data)))


def test_setflags_with_a_bit_other_than_immutable_is_eopnotsupp(efi):
    """efivarfs_fileattr_set(): flags outside FS_IMMUTABLE_FL are refused, through FUSE's ioctl too."""
    path = efi.var("BootOrder")
    fd = os.open(path, os.O_RDONLY)
    try:
        for flags in (0x20, 0x10 | 0x20, 0x80000):  # append-only, immutable|append, FS_EXTENT_FL
            with pytest.raises(OSError) as e:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [flags]), True)
            assert e.value.errno == errno.EOPNOTSUPP, hex(flags)
    finally:
        os.close(fd)


def test_every_read_through_the_mount_asks_firmware_again_but_the_listing_stays(efi):
    """A firmware-side change shows on the next read (no page cache); the directory is the mount-time snapshot."""
    assert read(efi.var("BootOrder")) == BOOT_ORDER
    _firmware_set(efi, "BootOrder", b"\x09\x00")
    assert read(efi.var("BootOrder")) == b"\x07\x00\x00\x00\x09\x00"
    fd = os.open(efi.var("BootOrder"), os.O_RDONLY)
    try:
        assert os.pread(fd, 6, 0) == b"\x07\x00\x00\x00\x09\x00"
        _firmware_set(efi, "BootOrder", b"\x03\x00\x04\x00")
        assert os.pread(fd, 8, 0) == b"\x07\x00\x00\x00\x03\x00\x04\x00"  # same open file, new contents
    finally:
        os.close(fd)
    _firmware_set(efi, "Fresh", b"\x01")
    assert "Fresh-8be4df61-93ca-11d2-aa0d-00e098032b8c" not in os.listdir(efi.efivars)
    _firmware_set(efi, "Timeout", b"", 0)  # firmware deletes it: the file stays and reads 0 bytes
    assert "Timeout-8be4df61-93ca-11d2-aa0d-00e098032b8c" in os.listdir(efi.efivars)
    assert read(efi.var("Timeout")) == b""


def test_deleting_a_missing_variable_by_write_is_eio_and_a_failing_unlink_is_einval(efi_factory):
    """efivarfs_file_write(): SetVariable NOT_FOUND (-ENOENT) becomes EIO; efivarfs_unlink(): any failure EINVAL."""
    m = efi_factory(uefi={"secure_boot": True})
    path = os.path.join(m.efivars, f"NeverSet-{TEST_GUID}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert oserror(os.write, fd, ATTRS) == errno.EIO  # attributes only: a delete of a missing variable
    finally:
        os.close(fd)
    kek = m.var("KEK")
    setflags(kek, 0)
    assert oserror(os.unlink, kek) == errno.EINVAL  # an authenticated variable refuses the plain delete
    assert os.path.exists(kek)


def test_ffa_busy_makes_a_read_through_the_mount_enospc(efi):
    """The SP busy (as while it is live-activated): FFA BUSY, EFI_OUT_OF_RESOURCES, ENOSPC on read() itself."""
    efi.call(lambda: setattr(efi.platform.uefi.partition, "fault", RequestFault(ffa_error=FfaError.BUSY)))
    assert oserror(read, efi.var("BootOrder")) == errno.ENOSPC
    efi.call(lambda: setattr(efi.platform.uefi.partition, "fault", None))
    assert read(efi.var("BootOrder")) == BOOT_ORDER


def test_without_query_variable_info_in_the_rt_mask_statfs_sizes_are_0_and_the_mount_is_writable(efi_factory):
    """efivarfs_statfs() leaves the sizes 0 without EFI_RT_SUPPORTED_QUERY_VARIABLE_INFO; SetVariable stays."""
    m = efi_factory(uefi={"rt_supported": 0x21F0 & ~0x2000})
    st = os.statvfs(m.efivars)
    assert (st.f_bsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_namemax) == (1, 0, 0, 0, 255)
    assert write(m.var("BootOrder"), ATTRS + b"\x00\x00") == 6
    assert read(m.var("BootOrder")) == ATTRS + b"\x00\x00"


_READS = ("import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY)\nt = time.monotonic()\n"
          "for _ in range(150):\n    os.pread(fd, 64, 0)\nprint(time.monotonic() - t)\n")


@pytest.mark.skipif(shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"),
                    reason="needs util-linux setpriv and /usr/bin/python3")
def test_reads_by_another_user_are_rate_limited_through_the_mount_and_roots_are_not(efi):
    """150 reads: root is never slowed; another user gets 100 in the first second, then waits for the next."""
    def timed(*prefix: str) -> float:
        r = subprocess.run([*prefix, "/usr/bin/python3", "-c", _READS, efi.var("BootOrder")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return float(r.stdout)
    root = timed()
    if root > 0.5:
        pytest.skip(f"150 reads took root {root:.2f} s: too slow to tell a one-second ratelimit apart")
    user = timed("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups")
    assert user >= 0.9


@pytest.mark.skipif(shutil.which("fwupdtool") is None or shutil.which("unshare") is None,
                    reason="needs fwupd's fwupdtool and unshare")
def test_fwupds_secure_boot_attribute_turns_off_after_a_naive_sp_activation(efi_factory, tmp_path):
    """A naive restart loses the volatile SecureBoot: its file reads 0 bytes and fwupd reports it not enabled."""
    from tests.clients.conftest import FWUPD_PRIVATE_STATE, run_in_namespace

    m = efi_factory(uefi={"live_state": "naive", "secure_boot": True})
    esp = tmp_path / "esp"
    (esp / "EFI").mkdir(parents=True)
    # fwupd's own state (history, device cache) goes to tmpfs in the private namespace, not the host's /var
    command = FWUPD_PRIVATE_STATE + "fwupdtool security --force --plugins uefi-capsule"

    def secure_boot_line() -> str:
        r = run_in_namespace(m, command, env={"FWUPD_UEFI_ESP_PATH": str(esp), "NO_COLOR": "1"})
        line = next((x for x in r.stdout.splitlines() if "UEFI secure boot" in x), None)
        assert line is not None, r.stdout + r.stderr
        return re.sub(r"\x1b\[[0-9;]*m", "", line)

    assert secure_boot_line().split(":", 1)[1].strip() == "Enabled"

    async def activate():
        p = m.platform
        p.stage("sp2", version=(2, 0))
        await p.smc(Fid.LFA_GET_INVENTORY, 5)
        await p.smc(Fid.LFA_PRIME, 5)
        return (await p.smc(Fid.LFA_ACTIVATE, 5, 1)).x0
    assert m.acall(activate) == 0
    assert read(m.var("SecureBoot")) == b""
    assert secure_boot_line().split(":", 1)[1].strip() == "Disabled"
