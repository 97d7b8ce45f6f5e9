"""/sys/firmware/efi on arm64: fw_platform_size, systab, and the ESRT as Linux parses and shows it.

Sources: Linux drivers/firmware/efi/efi.c (systab_show(), fw_platform_size_show(),
efi_subsys_attrs), drivers/firmware/efi/esrt.c (efi_esrt_init(),
esre_attr_show(), the entry attributes' formats); U-Boot
lib/efi_loader/efi_esrt.c (fw_type from the FMP image information).
"""

from __future__ import annotations

import errno
import uuid

import pytest

from lfafs.driver.efi_runtime import efi_status_to_err
from lfafs.driver.efi_sysfs import EfiSysfs
from lfafs.driver.image import DriverError
from lfafs.uefi import EFI_SYSTEM_RESOURCE_TABLE, ESRT_HEADER, EfiStatus, EsrtEntry, SystemTable, pack_esrt

from .efi_rig import boot


async def test_the_esrt_lists_the_components_without_an_activator_with_their_versions():
    p, t = await boot()
    files = t.sysfs.files
    assert files["esrt/fw_resource_count"] == (0o400, b"2\n")
    assert files["esrt/fw_resource_version"] == (0o400, b"1\n")
    assert files["esrt/entries/entry1/fw_class"][1] == b"d6d0eea7-fcea-d54b-9782-9934f234b6e4\n"  # bl33
    assert files["esrt/entries/entry1/fw_version"][1] == b"%d\n" % ((2025 << 16) | 10)
    assert files["esrt/entries/entry1/fw_type"][1] == b"1\n"  # system firmware
    assert files["esrt/entries/entry1/capsule_flags"][1] == b"0x0\n"
    assert all(mode == 0o400 for path, (mode, _) in files.items() if path.startswith("esrt/"))


async def test_a_profile_chooses_the_esrt_components():
    p, t = await boot(esrt=["rmm"])
    assert t.sysfs.files["esrt/entries/entry0/fw_class"][1] == b"6c0762a6-12f2-4b56-92cb-ba8f633606d9\n"
    assert "esrt/entries/entry1/fw_class" not in t.sysfs.files


async def test_arm64_shows_fw_platform_size_and_systab_but_not_the_x86_files():
    p, t = await boot()
    assert t.sysfs.files["fw_platform_size"] == (0o444, b"64\n")
    assert t.sysfs.files["systab"] == (0o400, b"SMBIOS3=0xfbfe00000\n")
    assert set(t.sysfs.children("")) == {"efivars", "esrt", "fw_platform_size", "systab"}


async def test_an_esrt_entry_refuses_a_reader_without_cap_sys_admin():
    p, t = await boot()
    with pytest.raises(DriverError) as e:
        t.sysfs.read("esrt/entries/entry0/fw_version", privileged=False)
    assert e.value.errno == errno.EACCES
    assert t.sysfs.read("esrt/fw_resource_count", privileged=False) == b"2\n"


def _table(raw: bytes) -> SystemTable:
    return SystemTable(config_tables={EFI_SYSTEM_RESOURCE_TABLE: raw})


def test_an_esrt_of_another_version_or_with_too_many_entries_is_not_shown():
    entry = EsrtEntry(uuid.uuid4(), 1, 1, 0, 0, 0, 0)
    good = pack_esrt([entry])
    assert "esrt/entries/entry0/fw_type" in EfiSysfs(_table(good)).files
    v2 = ESRT_HEADER.pack(1, 1, 2) + good[ESRT_HEADER.size:]
    over = ESRT_HEADER.pack(2, 1, 1) + good[ESRT_HEADER.size:] * 2
    for raw in (v2, over, good[:-1]):
        sysfs = EfiSysfs(_table(raw))
        assert not any(path.startswith("esrt") for path in sysfs.files) and sysfs.warnings


@pytest.mark.parametrize(("status", "err"), [
    (EfiStatus.SUCCESS, 0), (EfiStatus.INVALID_PARAMETER, -errno.EINVAL), (EfiStatus.OUT_OF_RESOURCES, -errno.ENOSPC),
    (EfiStatus.DEVICE_ERROR, -errno.EIO), (EfiStatus.WRITE_PROTECTED, -errno.EROFS),
    (EfiStatus.SECURITY_VIOLATION, -errno.EACCES), (EfiStatus.NOT_FOUND, -errno.ENOENT),
    (EfiStatus.ABORTED, -errno.EINTR), (EfiStatus.ACCESS_DENIED, -errno.EINVAL), (EfiStatus.UNSUPPORTED, -errno.EINVAL),
    (EfiStatus.BUFFER_TOO_SMALL, -errno.EINVAL)])
def test_efi_status_to_err(status, err):
    assert efi_status_to_err(status) == err
