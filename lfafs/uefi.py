"""The shared vocabulary of the EFI runtime-services boundary: statuses, attributes, GUIDs, tables.

Firmware (the UEFI runtime model in lfafs/platform/uboot.py) answers with
these words and the Linux model (lfafs/driver/efivarfs.py) reads them, as
smccc.py does for the SMC boundary. Values are the UEFI specification's, as
U-Boot (include/efi.h, include/efi_api.h) and Linux (include/linux/efi.h)
spell them. Names are strings of UCS-2 code units (each character below
0x10000); GUIDs are ``uuid.UUID`` in their canonical text order.
"""

from __future__ import annotations

import enum
import struct
import uuid

import attrs

_ERR = 1 << 63


class EfiStatus(enum.IntEnum):
    """EFI_STATUS: errors have bit 63 set (UEFI Appendix D; U-Boot include/efi.h)."""

    SUCCESS = 0
    LOAD_ERROR = _ERR | 1
    INVALID_PARAMETER = _ERR | 2
    UNSUPPORTED = _ERR | 3
    BAD_BUFFER_SIZE = _ERR | 4
    BUFFER_TOO_SMALL = _ERR | 5
    NOT_READY = _ERR | 6
    DEVICE_ERROR = _ERR | 7
    WRITE_PROTECTED = _ERR | 8
    OUT_OF_RESOURCES = _ERR | 9
    NOT_FOUND = _ERR | 14
    ACCESS_DENIED = _ERR | 15
    ABORTED = _ERR | 21
    SECURITY_VIOLATION = _ERR | 26

    @classmethod
    def name_of(cls, value: int) -> str:
        try:
            return f"EFI_{cls(value).name}"
        except ValueError:
            return f"EFI_STATUS {value:#x}"


class VarAttr(enum.IntFlag):
    """EFI_VARIABLE_* attribute bits."""

    NON_VOLATILE = 0x01
    BOOTSERVICE_ACCESS = 0x02
    RUNTIME_ACCESS = 0x04
    HARDWARE_ERROR_RECORD = 0x08
    AUTHENTICATED_WRITE_ACCESS = 0x10
    TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20
    APPEND_WRITE = 0x40
    ENHANCED_AUTHENTICATED_ACCESS = 0x80


NV_BS_RT = VarAttr.NON_VOLATILE | VarAttr.BOOTSERVICE_ACCESS | VarAttr.RUNTIME_ACCESS
BS_RT = VarAttr.BOOTSERVICE_ACCESS | VarAttr.RUNTIME_ACCESS
ATTRIBUTE_MASK_UEFI = 0xFF  # U-Boot and Trusted Services: EFI_VARIABLE_MASK includes 0x80


class RtSupported(enum.IntFlag):
    """EFI_RT_PROPERTIES_TABLE RuntimeServicesSupported bits (U-Boot include/efi_api.h)."""

    GET_TIME = 0x0001
    SET_TIME = 0x0002
    GET_WAKEUP_TIME = 0x0004
    SET_WAKEUP_TIME = 0x0008
    GET_VARIABLE = 0x0010
    GET_NEXT_VARIABLE_NAME = 0x0020
    SET_VARIABLE = 0x0040
    SET_VIRTUAL_ADDRESS_MAP = 0x0080
    CONVERT_POINTER = 0x0100
    GET_NEXT_HIGH_MONOTONIC_COUNT = 0x0200
    RESET_SYSTEM = 0x0400
    UPDATE_CAPSULE = 0x0800
    QUERY_CAPSULE_CAPABILITIES = 0x1000
    QUERY_VARIABLE_INFO = 0x2000


# Vendor GUIDs
EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
LINUX_EFI_RANDOM_SEED = uuid.UUID("1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b")  # LINUX_EFI_RANDOM_SEED_TABLE_GUID
LINUX_EFI_CRASH = uuid.UUID("cfc8fc79-be2e-4ddc-97f0-9f98bfe298a0")
EFI_CAPSULE_REPORT = uuid.UUID("39b68c46-f7fb-441b-b6ec-16b0f69821f3")
EFI_CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
EFI_CERT_SHA256 = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")
EFI_CERT_TYPE_PKCS7 = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
# Configuration tables (the system table's list the kernel walks at boot)
EFI_SYSTEM_RESOURCE_TABLE = uuid.UUID("b122a263-3661-4f68-9929-78f8b0d62180")  # ESRT
EFI_RT_PROPERTIES_TABLE = uuid.UUID("eb66918a-7eef-402a-842e-931d21c38ae9")
SMBIOS3_TABLE = uuid.UUID("f2fd1544-9794-4a2c-992e-e5bbcf20e394")


def guid_bytes(guid: uuid.UUID) -> bytes:
    """EFI_GUID in memory: Data1..Data3 little-endian, Data4 as is (uuid's bytes_le)."""
    return guid.bytes_le


def guid_from_bytes(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes_le=bytes(raw[:16]).ljust(16, b"\0"))


def ucs2(name: str) -> bytes:
    """A variable name as firmware holds it: UCS-2 code units and the terminating NUL."""
    return name.encode("utf-16-le", "surrogatepass") + b"\0\0"


def from_ucs2(raw: bytes) -> str:
    """UCS-2 code units up to the first NUL (or the end) as a str of code units."""
    units = struct.unpack(f"<{len(raw) // 2}H", raw[: len(raw) // 2 * 2])
    out = []
    for u in units:
        if u == 0:
            break
        out.append(chr(u))
    return "".join(out)


# -- the EFI System Resource Table, as firmware lays it out in memory -------------------------

ESRT_HEADER = struct.Struct("<IIQ")  # fw_resource_count, fw_resource_count_max, fw_resource_version
ESRT_ENTRY = struct.Struct("<16sIIIIII")  # fw_class, fw_type, fw_version, lowest, capsule_flags, last v, last s
ESRT_VERSION = 1


class EsrtFwType(enum.IntEnum):
    UNKNOWN = 0
    SYSTEM_FIRMWARE = 1
    DEVICE_FIRMWARE = 2
    UEFI_DRIVER = 3


@attrs.frozen
class EsrtEntry:
    fw_class: uuid.UUID
    fw_type: int
    fw_version: int
    lowest_supported_fw_version: int
    capsule_flags: int
    last_attempt_version: int
    last_attempt_status: int

    def pack(self) -> bytes:
        return ESRT_ENTRY.pack(guid_bytes(self.fw_class), self.fw_type, self.fw_version,
                               self.lowest_supported_fw_version, self.capsule_flags,
                               self.last_attempt_version, self.last_attempt_status)


def pack_esrt(entries: list[EsrtEntry], count_max: int | None = None) -> bytes:
    count_max = len(entries) if count_max is None else count_max
    return ESRT_HEADER.pack(len(entries), count_max, ESRT_VERSION) + b"".join(e.pack() for e in entries)


@attrs.frozen
class SystemTable:
    """What the kernel finds at boot: the configuration tables by GUID, as bytes.

    The firmware hands this over at ExitBootServices; the kernel parses it
    (the ESRT, the RT properties table) as Linux does from memory, so
    nothing but bytes crosses from the firmware model to the kernel model.
    """

    config_tables: dict[uuid.UUID, bytes]
    fw_platform_size: int = 64  # AArch64 firmware

    def table(self, guid: uuid.UUID) -> bytes | None:
        return self.config_tables.get(guid)


RT_PROPERTIES = struct.Struct("<HHI")  # Version, Length, RuntimeServicesSupported
RT_PROPERTIES_VERSION = 1


def pack_rt_properties(supported: int) -> bytes:
    return RT_PROPERTIES.pack(RT_PROPERTIES_VERSION, RT_PROPERTIES.size, supported)
