"""The boot manifest EL3 writes at the start of the shared buffer (v0.5).

TF-A include/services/rmm_core_manifest.h (docs/smc-abi.md, "The RMM at
EL3"): ``struct rmm_manifest`` (a version, platform data, then for DRAM,
consoles, non-coherent and coherent device ranges, SMMUs and PCIe root
complexes a count, a pointer and a checksum), followed by the arrays, in
that order, as TF-A's FVP port lays them out
(plat/arm/board/fvp/fvp_common.c, plat_rmmd_load_manifest()). A checksum
is the two's-complement sum of the count, the pointer and every array word.
lfafs fills the DRAM banks and the console; the device, SMMU and PCIe lists
are empty.
"""

from __future__ import annotations

import struct

import attrs

from lfafs.smccc import RmmBootStatus
from lfafs.xlat import Memory

VERSION_0_5 = (0 << 16) | 5
PCIE_RC_INFO_VERSION_0_1 = 1
# version, padding, plat_data; dram, console, ncoh, coh, smmu lists (num, ptr, checksum);
# root complex list (num, rc_info_version, padding, ptr, checksum)
_HEADER = struct.Struct("<I4xQ" + "QQQ" * 5 + "QI4xQQ")
MANIFEST_SIZE = _HEADER.size  # sizeof(struct rmm_manifest): the bank array follows it
_BANK = struct.Struct("<QQ")
_CONSOLE = struct.Struct("<QQ8sQQQ")  # base, map_pages, name[8], clk_in_hz, baud_rate, flags
MASK = (1 << 64) - 1
assert MANIFEST_SIZE == 168 and _CONSOLE.size == 48


@attrs.frozen
class Console:
    """struct console_info."""

    base: int
    map_pages: int
    name: str
    clk_in_hz: int
    baud_rate: int


class ManifestError(ValueError):
    def __init__(self, status: RmmBootStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _words(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def _checksum(num: int, ptr: int, data: bytes) -> int:
    return (-(num + ptr + sum(_words(data)))) & MASK


def write_manifest(memory: Memory, shared: int, banks: list[tuple[int, int]],
                   consoles: list[Console] = ()) -> None:
    banks_ptr = shared + MANIFEST_SIZE
    bank_data = b"".join(_BANK.pack(b, s) for b, s in banks)
    consoles_ptr = banks_ptr + len(bank_data)
    console_data = b"".join(_CONSOLE.pack(c.base, c.map_pages, c.name.encode(), c.clk_in_hz, c.baud_rate, 0)
                            for c in consoles)
    empty = (0, 0, 0)
    memory.zero(shared, 4096)
    memory.write(shared, _HEADER.pack(
        VERSION_0_5, 0,
        len(banks), banks_ptr, _checksum(len(banks), banks_ptr, bank_data),
        len(consoles), consoles_ptr, _checksum(len(consoles), consoles_ptr, console_data),
        *empty, *empty, *empty,
        0, PCIE_RC_INFO_VERSION_0_1, 0, 0))
    memory.write(banks_ptr, bank_data + console_data)


def _header(memory: Memory, shared: int) -> tuple:
    return _HEADER.unpack(memory.read(shared, _HEADER.size))


def _list(memory: Memory, shared: int, num: int, ptr: int, checksum: int, entry: int, what: str) -> bytes:
    """A checksummed list as TF-RMM reads it (lib/rmm_el3_ifc/src/rmm_el3_ifc_manifest.c)."""
    if not 0 <= num <= 4096 // entry or not shared <= ptr <= shared + 4096 - entry * num:
        # TF-RMM trusts EL3's pointer; lfafs reads only inside the shared buffer.
        raise ManifestError(RmmBootStatus.MANIFEST_DATA_ERROR, f"{num} {what} at {ptr:#x}")
    data = memory.read(ptr, entry * num)
    if (num + ptr + checksum + sum(_words(data))) & MASK:
        raise ManifestError(RmmBootStatus.MANIFEST_DATA_ERROR, f"{what} checksum does not add up")
    return data


def check_version(memory: Memory, shared: int) -> None:
    """rmm_el3_ifc_process_boot_manifest(): a manifest of major 0, minor at least 3."""
    version = _header(memory, shared)[0]
    if (version >> 16) != 0 or (version & 0xFFFF) < 3:
        raise ManifestError(RmmBootStatus.MANIFEST_VERSION_NOT_SUPPORTED, f"manifest version {version:#x}")


def read_manifest(memory: Memory, shared: int) -> list[tuple[int, int]]:
    """The DRAM banks, after TF-RMM's checks (manifest 0.>=3, checksum)."""
    check_version(memory, shared)
    h = _header(memory, shared)
    num = h[2]
    if not 0 < num <= 8:  # PLAT_ARM_MAX_MEM_BANKS (TF-RMM plat/arm)
        raise ManifestError(RmmBootStatus.MANIFEST_DATA_ERROR, f"{num} DRAM banks")
    data = _list(memory, shared, num, h[3], h[4], _BANK.size, "DRAM banks")
    return [_BANK.unpack_from(data, i * _BANK.size) for i in range(num)]


def read_consoles(memory: Memory, shared: int) -> list[Console]:
    """rmm_el3_ifc_get_console_list_pa(): the consoles, checksum verified."""
    h = _header(memory, shared)
    data = _list(memory, shared, h[5], h[6], h[7], _CONSOLE.size, "consoles")
    out = []
    for i in range(h[5]):
        base, pages, name, clk, baud, _ = _CONSOLE.unpack_from(data, i * _CONSOLE.size)
        out.append(Console(base, pages, name.split(b"\0", 1)[0].decode("latin-1"), clk, baud))
    return out
