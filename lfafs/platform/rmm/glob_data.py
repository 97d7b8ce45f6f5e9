"""glob_data: the RMM's global state that outlives an activation.

As TF-RMM lib/glob_data (glob_data.h, glob_data_init()) and the LFA design
describe it: a version, the low-VA information (the dynamic context,
whole), glob_data's own PA/VA/size, the granule arrays, the image sequence
number and the RMM state (RMM_STATE_INIT on a fresh boot, carried over
unchanged by an activation). It lives in memory reserved from EL3 and is
mapped at the first VA of the dynamic pool. Its PA is the activation token
(TF-RMM v0.9.0), or is kept in every CPU's per-CPU metadata page (main).

The layout is lfafs's own (fixed offsets, little-endian), so that an image
reading it knows nothing but the token. lfafs's VA allocator state (the
bitmap and summary tree that stand in for TF-RMM's descriptor scan) is part
of the same reservation, after the header pages, as TF-RMM keeps its VMID
bitmap inside glob_data: the EL3 reservations stay exactly TF-RMM's
sequence (docs/rmm-lfa.md, "The RMM model").
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
PAGE = 4096
HEADER_SIZE = -(-(DYN_CTX_OFFSET + Context.context_bytes()) // PAGE) * PAGE
"""The fields and the dynamic context; the VA allocator state starts here."""
assert _FIELDS.size <= DYN_CTX_OFFSET


def size(alloc_bytes: int) -> int:
    """GLOB_DATA_MAX_SIZE for a pool whose VA allocator needs ``alloc_bytes``."""
    return HEADER_SIZE + -(-alloc_bytes // PAGE) * PAGE


def alloc_pa(pa: int) -> int:
    """Where the VA allocator state of the glob_data at ``pa`` lives."""
    return pa + HEADER_SIZE


class RmmState(enum.IntEnum):
    """TF-RMM enum rmm_state (lib/glob_data/include/glob_data.h); it gates RMI calls."""

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


def read_state(memory: Memory, pa: int) -> int:
    """The rmm_state word alone, as the RMI handler reads it on every call."""
    return memory.read64(pa + _STATE_OFFSET)


def write_state(memory: Memory, pa: int, state: RmmState) -> None:
    """glob_data_set_rmm_state()."""
    memory.write64(pa + _STATE_OFFSET, int(state))


_STATE_OFFSET = struct.calcsize("<QI4xQ")  # after magic, version, fw_img_sequence


def version_str(v: int) -> str:
    return f"{v >> 16}.{v & 0xFFFF}"


def reuse_problem(prev: GlobData, pa: int, version: int, pool_base: int, pool_size: int,
                  static_tables_needed: int) -> str:
    """Why a new image cannot take over the glob_data at ``pa``, or "".

    TF-RMM's checks on reuse: glob_data_init() asserts the self-PA;
    xlat_low_va_static_setup() wants the same region capacity (-ERANGE) and
    enough kept static tables (-ENOMEM); xlat_low_va_dyn_fixup() the same pool
    (-EINVAL). lfafs adds the version check TF-RMM leaves out (docs/rmm-lfa.md):
    major equal, minor not older.
    """
    theirs = prev.version
    if (version >> 16) != (theirs >> 16) or (version & 0xFFFF) < (theirs & 0xFFFF):
        return f"glob_data {version_str(theirs)} is not compatible with this image's {version_str(version)}"
    if prev.glob_data_pa != pa:
        return f"glob_data at {pa:#x} says it is at {prev.glob_data_pa:#x}"
    if prev.low_va_capacity != LOW_VA_CAPACITY:
        return f"low VA capacity {prev.low_va_capacity}"
    if prev.pool_base != pool_base or prev.pool_size != pool_size:
        return (f"dynamic pool {prev.pool_base:#x}+{prev.pool_size:#x} differs from this image's "
                f"{pool_base:#x}+{pool_size:#x}")
    if prev.static_tables_num < static_tables_needed:
        return f"{prev.static_tables_num} static tables kept, {static_tables_needed} needed"
    return ""
