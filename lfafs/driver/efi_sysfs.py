"""/sys/firmware/efi on arm64: the attributes Linux shows and the ESRT it parses at boot.

- drivers/firmware/efi/efi.c: ``fw_platform_size`` (0444, "64"), ``systab``
  (0400, one ``KEY=0x...`` line per table found); ``fw_vendor``, ``runtime``
  and ``config_table`` exist on x86 only (their attributes are weak symbols
  that arm64 does not define, so the attribute list ends before them);
  ``efivars/`` is the mount point of efivarfs.
- drivers/firmware/efi/esrt.c: ``esrt/`` with ``fw_resource_count``,
  ``fw_resource_count_max``, ``fw_resource_version`` and
  ``entries/entry<N>/`` with the seven entry attributes, all 0400; an entry
  attribute read without CAP_SYS_ADMIN gives EACCES (esre_attr_show()).
  An ESRT of another version, or with more entries than its maximum, is
  not shown.

The tables come from the firmware's handoff as bytes (lfafs.uefi.SystemTable).
"""

from __future__ import annotations

import errno

import attrs

from lfafs.driver.efi_runtime import EfiRuntime, RuntimeServices
from lfafs.driver.efivarfs import DEFAULT_ABI, Efivarfs
from lfafs.driver.image import DriverError
from lfafs.uefi import (
    EFI_SYSTEM_RESOURCE_TABLE,
    ESRT_ENTRY,
    ESRT_HEADER,
    ESRT_VERSION,
    SMBIOS3_TABLE,
    SystemTable,
    guid_from_bytes,
)

ESRT_MAX_ENTRIES = 128  # esrt.c: an ESRT claiming more is refused
ENTRY_ATTRS = ("capsule_flags", "fw_class", "fw_type", "fw_version", "last_attempt_status", "last_attempt_version",
               "lowest_supported_fw_version")


def parse_esrt(raw: bytes | None, warn: list[str]) -> tuple[tuple[int, int, int], list[dict[str, bytes]]] | None:
    """efi_esrt_init() and esrt_sysfs_init(): the header and each entry's attribute text, or None."""
    if raw is None or len(raw) < ESRT_HEADER.size:
        return None
    count, count_max, version = ESRT_HEADER.unpack_from(raw)
    if version != ESRT_VERSION:
        warn.append(f"Unsupported ESRT version {version}.")
        return None
    if count > count_max or count > ESRT_MAX_ENTRIES:
        warn.append("ESRT has too many entries.")
        return None
    if len(raw) < ESRT_HEADER.size + count * ESRT_ENTRY.size:
        warn.append("ESRT header doesn't fit on single memory map entry.")
        return None
    entries = []
    for i in range(count):
        fw_class, fw_type, fw_version, lowest, flags, last_v, last_s = ESRT_ENTRY.unpack_from(
            raw, ESRT_HEADER.size + i * ESRT_ENTRY.size)
        entries.append({
            "fw_class": f"{guid_from_bytes(fw_class)}\n".encode(), "fw_type": b"%u\n" % fw_type,
            "fw_version": b"%u\n" % fw_version, "lowest_supported_fw_version": b"%u\n" % lowest,
            "capsule_flags": b"0x%x\n" % flags, "last_attempt_version": b"%u\n" % last_v,
            "last_attempt_status": b"%u\n" % last_s,
        })
    return (count, count_max, version), entries


class EfiSysfs:
    """The files of /sys/firmware/efi other than efivarfs: path (below efi/) -> (mode, text)."""

    def __init__(self, table: SystemTable) -> None:
        self.warnings: list[str] = []
        files: dict[str, tuple[int, bytes]] = {"fw_platform_size": (0o444, b"%d\n" % table.fw_platform_size)}
        systab = b""
        smbios3 = table.table(SMBIOS3_TABLE)
        if smbios3:
            systab += b"SMBIOS3=0x%x\n" % int.from_bytes(smbios3[:8], "little")
        files["systab"] = (0o400, systab)
        esrt = parse_esrt(table.table(EFI_SYSTEM_RESOURCE_TABLE), self.warnings)
        if esrt is not None:
            (count, count_max, version), entries = esrt
            files["esrt/fw_resource_count"] = (0o400, b"%u\n" % count)
            files["esrt/fw_resource_count_max"] = (0o400, b"%u\n" % count_max)
            files["esrt/fw_resource_version"] = (0o400, b"%u\n" % version)
            for i, entry in enumerate(entries):
                for attr, text in entry.items():
                    files[f"esrt/entries/entry{i}/{attr}"] = (0o400, text)
        self.files = files
        self.dirs = {"", "efivars"} | {p.rsplit("/", 1)[0] for p in files if "/" in p}
        if esrt is not None:
            self.dirs |= {"esrt", "esrt/entries"}

    def children(self, path: str) -> list[str]:
        """The names directly below ``path`` ("" for efi/ itself)."""
        prefix = f"{path}/" if path else ""
        names = {p[len(prefix):].split("/", 1)[0] for p in (*self.files, *self.dirs)
                 if p.startswith(prefix) and p != path}
        return sorted(n for n in names if n)

    def read(self, path: str, *, privileged: bool) -> bytes:
        """show(): the text; an ESRT entry refuses a caller without CAP_SYS_ADMIN."""
        if path not in self.files:
            raise DriverError(errno.ENOENT)
        if path.startswith("esrt/entries/") and not privileged:
            raise DriverError(errno.EACCES)
        return self.files[path][1]


@attrs.frozen
class EfiTree:
    """What the file system shows under efi/: the sysfs files, and efivarfs when the kernel mounted it."""

    sysfs: EfiSysfs
    efivarfs: Efivarfs | None


async def efi_tree(services: RuntimeServices, table: SystemTable, *, abi: str = DEFAULT_ABI, uid: int = 0,
                   gid: int = 0) -> EfiTree:
    """Boot-time Linux: /sys/firmware/efi from the system table, and efivarfs mounted when the ops exist."""
    runtime = EfiRuntime(services, table)
    efivarfs = None
    if runtime.efivars_registered:
        efivarfs = Efivarfs(runtime, abi=abi, uid=uid, gid=gid)
        await efivarfs.mount()
    return EfiTree(sysfs=EfiSysfs(table), efivarfs=efivarfs)
