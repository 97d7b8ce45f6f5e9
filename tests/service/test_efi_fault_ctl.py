"""`lfafs ctl efi fail` seen through a real FUSE mount: the errno of efivarfs, and how `status` shows the faults.

The errno a reader or writer of efivarfs gets for an FFA_ERROR is the
composition of three upstream tables, restated here (not taken from the model):

- U-Boot drivers/firmware/arm-ffa/arm-ffa-uclass.c, ffa_to_std_errno() with
  ffa_to_std_errmap[]: FFA_ERROR's w2 -> errno;
- U-Boot lib/efi_loader/efi_variable_tee.c, ffa_mm_communicate(): that errno
  -> EFI status (-EINVAL DEVICE_ERROR, -EPERM INVALID_PARAMETER, -EACCES
  ACCESS_DENIED, -EBUSY OUT_OF_RESOURCES, anything else ACCESS_DENIED);
- Linux drivers/firmware/efi/efi.c, efi_status_to_err(): EFI status -> errno,
  which fs/efivarfs/file.c efivarfs_file_read() (through efivar_entry_size())
  and efivarfs_file_write() (through efivar_entry_set_get_size()) return.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from lfafs.uefi import EfiStatus as S

LFAFS = [sys.executable, "-m", "lfafs"]
GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

# U-Boot arm-ffa-uclass.c ffa_to_std_errmap[]
UBOOT_FFA_ERRNO = {"NOT_SUPPORTED": -errno.EOPNOTSUPP, "INVALID_PARAMETERS": -errno.EINVAL,
                   "NO_MEMORY": -errno.ENOMEM, "BUSY": -errno.EBUSY, "INTERRUPTED": -errno.EINTR,
                   "DENIED": -errno.EACCES, "RETRY": -errno.EAGAIN, "ABORTED": -errno.ECANCELED}
# U-Boot efi_variable_tee.c ffa_mm_communicate() (its default: ACCESS_DENIED)
UBOOT_ERRNO_EFI = {-errno.EINVAL: S.DEVICE_ERROR, -errno.EPERM: S.INVALID_PARAMETER, -errno.EACCES: S.ACCESS_DENIED,
                   -errno.EBUSY: S.OUT_OF_RESOURCES}
# Linux efi.c efi_status_to_err() (its default: -EINVAL)
LINUX_EFI_ERRNO = {S.SUCCESS: 0, S.INVALID_PARAMETER: -errno.EINVAL, S.OUT_OF_RESOURCES: -errno.ENOSPC,
                   S.DEVICE_ERROR: -errno.EIO, S.WRITE_PROTECTED: -errno.EROFS, S.SECURITY_VIOLATION: -errno.EACCES,
                   S.NOT_FOUND: -errno.ENOENT, S.ABORTED: -errno.EINTR}


def errno_of_ffa_error(name: str) -> int:
    """The positive errno efivarfs returns when every direct request is answered FFA_ERROR ``name``."""
    status = UBOOT_ERRNO_EFI.get(UBOOT_FFA_ERRNO[name], S.ACCESS_DENIED)
    return -LINUX_EFI_ERRNO.get(status, -errno.EINVAL)


@pytest.fixture(scope="module")
def mnt(daemon):
    """The module's daemon (conftest.py), by its mountpoint."""
    return daemon.mountpoint


@pytest.fixture
def clean(mnt):
    """The test's faults are disarmed whatever happens, for the next test on the shared daemon."""
    yield mnt
    ctl(mnt, "efi", "clear-faults")


def ctl(mnt: str, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([*LFAFS, "ctl", "--mount", mnt, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def var(mnt: str, name: str) -> str:
    return os.path.join(mnt, "efi", "efivars", f"{name}-{GLOBAL}")


def read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def write(path: str, blob: bytes) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, blob)
    finally:
        os.close(fd)


@pytest.mark.parametrize("error", ["INVALID_PARAMETERS", "DENIED", "NOT_SUPPORTED", "ABORTED"])
def test_a_non_busy_ffa_error_reaches_efivarfs_as_u_boot_and_linux_map_it(clean, error):
    # INVALID_PARAMETERS: -EINVAL, DEVICE_ERROR, EIO. The others: no case of their own in ffa_mm_communicate(),
    # so ACCESS_DENIED, which efi_status_to_err() has no case for either: EINVAL (FF-A ABORTED is not EFI_ABORTED)
    mnt = clean
    expected = errno_of_ffa_error(error)
    assert expected != errno.ENOSPC  # what BUSY gives: these are the other paths through the tables
    timeout = read(var(mnt, "Timeout"))
    assert len(timeout) == 6  # attributes and a 2-byte value
    ctl(mnt, "efi", "fail", "ffa-error", "--ffa-error", error)
    with pytest.raises(OSError) as e:
        read(var(mnt, "BootOrder"))
    assert e.value.errno == expected, os.strerror(e.value.errno)
    with pytest.raises(OSError) as e:
        write(var(mnt, "Timeout"), timeout[:4] + bytes([timeout[4] ^ 0xFF, timeout[5]]))
    assert e.value.errno == expected, os.strerror(e.value.errno)
    ctl(mnt, "efi", "clear-faults")
    assert read(var(mnt, "Timeout")) == timeout  # the refused write changed nothing


def test_status_shows_the_armed_request_fault_readably(clean):
    mnt = clean
    ctl(mnt, "efi", "fail", "ffa-error", "--ffa-error", "DENIED", "--count", "3")
    ctl(mnt, "efi", "fail", "storage-full")
    text = ctl(mnt, "status").stdout
    uefi_line = next(line for line in text.splitlines() if line.startswith("uefi:"))
    assert "RequestFault(" not in text and "FfaError" not in text, uefi_line
    assert "ffa-error" in uefi_line and "DENIED" in uefi_line and "3" in uefi_line, uefi_line
    assert "storage-full" in uefi_line
    faults = json.loads(ctl(mnt, "status", "--json").stdout)["uefi"]["faults"]
    assert len(faults) == 2 and faults[1] == "storage-full", faults
    assert "DENIED" in faults[0] and "3" in faults[0] and "RequestFault(" not in faults[0], faults

    ctl(mnt, "efi", "fail", "mm-error", "--mm-return", "DENIED")  # replaces the request fault
    faults = json.loads(ctl(mnt, "status", "--json").stdout)["uefi"]["faults"]
    assert "mm-error" in faults[0] and "DENIED" in faults[0] and "RequestFault(" not in faults[0], faults


def test_status_drops_a_counted_fault_once_it_is_spent(clean):
    mnt = clean
    ctl(mnt, "efi", "fail", "busy", "--count", "1")
    assert len(json.loads(ctl(mnt, "status", "--json").stdout)["uefi"]["faults"]) == 1
    with pytest.raises(OSError):
        read(var(mnt, "BootOrder"))  # its one request
    assert read(var(mnt, "BootOrder"))  # the fault no longer acts
    assert json.loads(ctl(mnt, "status", "--json").stdout)["uefi"]["faults"] == []
