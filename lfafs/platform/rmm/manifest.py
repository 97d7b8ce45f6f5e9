"""The boot manifest EL3 writes at the start of the shared buffer (v0.5).

TF-A include/services/rmm_core_manifest.h (docs/smc-abi.md, "The RMM at EL3"): a version,
then for DRAM a count, a pointer to the bank array and a checksum, which is
the two's-complement sum of the count, the pointer and every array word.
lfafs fills only the DRAM entry; the other lists are empty.
"""

from __future__ import annotations

import struct

from lfafs.smccc import RmmBootStatus
from lfafs.xlat import Memory

VERSION_0_5 = (0 << 16) | 5
_HEADER = struct.Struct("<I4xQQQQ")  # version, plat_data, dram.num_banks, dram.banks, dram.checksum
BANKS_OFFSET = 160
MASK = (1 << 64) - 1


class ManifestError(ValueError):
    def __init__(self, status: RmmBootStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _checksum(num: int, ptr: int, words: list[int]) -> int:
    return (-(num + ptr + sum(words))) & MASK


def write_manifest(memory: Memory, shared: int, banks: list[tuple[int, int]]) -> None:
    words = [w for bank in banks for w in bank]
    ptr = shared + BANKS_OFFSET
    memory.zero(shared, 4096)
    memory.write(shared, _HEADER.pack(VERSION_0_5, 0, len(banks), ptr, _checksum(len(banks), ptr, words)))
    memory.write(ptr, struct.pack(f"<{len(words)}Q", *words))


def read_manifest(memory: Memory, shared: int) -> list[tuple[int, int]]:
    """The DRAM banks, after TF-RMM's checks (manifest 0.>=3, checksum)."""
    version, _, num, ptr, checksum = _HEADER.unpack(memory.read(shared, _HEADER.size))
    if (version >> 16) != 0 or (version & 0xFFFF) < 3:
        raise ManifestError(RmmBootStatus.MANIFEST_VERSION_NOT_SUPPORTED, f"manifest version {version:#x}")
    if not 0 < num <= 8 or not shared <= ptr <= shared + 4096 - 16 * num:
        raise ManifestError(RmmBootStatus.MANIFEST_DATA_ERROR, f"{num} DRAM banks at {ptr:#x}")
    words = list(struct.unpack(f"<{2 * num}Q", memory.read(ptr, 16 * num)))
    if (num + ptr + sum(words) + checksum) & MASK:
        raise ManifestError(RmmBootStatus.MANIFEST_DATA_ERROR, "DRAM bank checksum does not add up")
    return [(words[2 * i], words[2 * i + 1]) for i in range(num)]
