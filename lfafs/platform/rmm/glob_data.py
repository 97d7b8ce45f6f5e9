"""glob_data: the RMM's global state that outlives an activation.

As the TF-RMM LFA design describes it: a version, the low-VA information
(the dynamic context, whole), the VA allocator's bitmap and its PA/VA/size,
glob_data's own PA/VA/size, the granule arrays, plus the image sequence
number and the RMM state. It lives in memory reserved from EL3 and is
mapped at the first VA of the dynamic pool; its PA is the activation token.

The layout is lfafs's own (fixed offsets, little-endian), so that an image
reading it knows nothing but the token.
"""

from __future__ import annotations

import enum
import struct

import attrs

from lfafs.xlat import Context, Memory

MAGIC = 0x4C46_4141_5441_4447  # "GDATAAFL"
VERSION_1_0 = 0x0001_0000  # major << 16 | minor
LOW_VA_CAPACITY = 11  # TF-RMM TOTAL_MMAP_REGIONS (6 + 5)

_FIELDS = struct.Struct(
    "<Q"    # magic
    "I4x"   # version
    "Q"     # fw_img_sequence
    "Q"     # rmm_state
    "3Q"    # glob_data pa, va, size
    "3Q"    # bitmap pa, va, size
    "3Q"    # va allocator: pool base, pool size, pool tables
    "3Q"    # granules pa, va, size
    "3Q"    # dev granules pa, va, size
    "Q"     # number of granules
    "2Q"    # static tables pa, count (reused by the next image)
    "Q"     # low VA regions capacity
)
DYN_CTX_OFFSET = 256
SIZE = -(-(DYN_CTX_OFFSET + Context.context_bytes()) // 4096) * 4096
assert _FIELDS.size <= DYN_CTX_OFFSET


class RmmState(enum.IntEnum):
    """TF-RMM enum rmm_state."""

    INIT = 0
    INTERMEDIATE = 1
    ACTIVE = 2


@attrs.define
class GlobData:
    version: int
    fw_img_sequence: int
    rmm_state: RmmState
    glob_data_pa: int
    glob_data_va: int
    glob_data_size: int
    bitmap_pa: int
    bitmap_va: int
    bitmap_size: int
    pool_base: int
    pool_size: int
    pool_tables: int
    granules_pa: int
    granules_va: int
    granules_size: int
    dev_granules_pa: int
    dev_granules_va: int
    dev_granules_size: int
    num_granules: int
    static_tables_pa: int
    static_tables_num: int
    low_va_capacity: int = LOW_VA_CAPACITY

    def write(self, memory: Memory, pa: int) -> None:
        memory.write(pa, _FIELDS.pack(
            MAGIC, self.version, self.fw_img_sequence, int(self.rmm_state),
            self.glob_data_pa, self.glob_data_va, self.glob_data_size,
            self.bitmap_pa, self.bitmap_va, self.bitmap_size,
            self.pool_base, self.pool_size, self.pool_tables,
            self.granules_pa, self.granules_va, self.granules_size,
            self.dev_granules_pa, self.dev_granules_va, self.dev_granules_size,
            self.num_granules, self.static_tables_pa, self.static_tables_num, self.low_va_capacity,
        ))


class GlobDataError(ValueError):
    """glob_data at the token's PA cannot be used."""


def read(memory: Memory, pa: int) -> GlobData:
    raw = memory.read(pa, _FIELDS.size)
    fields = _FIELDS.unpack(raw)
    if fields[0] != MAGIC:
        raise GlobDataError(f"no glob_data at {pa:#x} (magic {fields[0]:#x})")
    try:
        state = RmmState(fields[3])
    except ValueError:
        raise GlobDataError(f"glob_data at {pa:#x} has an unknown RMM state {fields[3]}") from None
    return GlobData(fields[1], fields[2], state, *fields[4:])


def dyn_ctx_pa(pa: int) -> int:
    return pa + DYN_CTX_OFFSET


def version_str(v: int) -> str:
    return f"{v >> 16}.{v & 0xFFFF}"
