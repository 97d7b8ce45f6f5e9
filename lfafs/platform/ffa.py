"""FF-A words: function ids, error codes, versions, partition descriptors, and the NS memory they use.

Values are TF-A's include/services/ffa_svc.h and Hafnium's
inc/vmapi/hf/ffa.h (FF-A v1.3). A call is SMC32 (``0x84000000 | n``) or
SMC64 (``0xC4000000 | n``); a status travels as FFA_ERROR with the error
code in w2. UUIDs travel as four 32-bit words, each the little-endian
reading of four bytes of the UUID in RFC order (TF-A
convert_uuid_to_u32_array(), U-Boot lib/uuid.c uuid_str_to_le_bin()).
"""

from __future__ import annotations

import enum
import struct
import uuid

from lfafs.smccc import MASK64

SMC32 = 0x8400_0000
SMC64 = 0xC400_0000
FNUM_MIN, FNUM_MAX = 0x60, 0x8F  # the function numbers the SPMD owns (TF-A ffa_svc.h)


class FfaFn(enum.IntEnum):
    """FF-A function numbers (the low byte of the function id)."""

    ERROR = 0x60
    SUCCESS = 0x61
    INTERRUPT = 0x62
    VERSION = 0x63
    FEATURES = 0x64
    RX_RELEASE = 0x65
    RXTX_MAP = 0x66
    RXTX_UNMAP = 0x67
    PARTITION_INFO_GET = 0x68
    ID_GET = 0x69
    MSG_WAIT = 0x6B
    RUN = 0x6D
    MSG_SEND_DIRECT_REQ = 0x6F
    MSG_SEND_DIRECT_RESP = 0x70
    MEM_SHARE = 0x73
    MEM_RETRIEVE_REQ = 0x74
    MEM_RECLAIM = 0x77
    SPM_ID_GET = 0x85
    PARTITION_INFO_GET_REGS = 0x8B
    MSG_SEND_DIRECT_REQ2 = 0x8D
    MSG_SEND_DIRECT_RESP2 = 0x8E


def fid32(fn: FfaFn) -> int:
    return SMC32 | fn


def fid64(fn: FfaFn) -> int:
    return SMC64 | fn


def is_ffa_fid(fid: int) -> bool:
    """A function id the SPMD handles: OEN 4, fast, SMC32 or SMC64, number 0x60..0x8F."""
    fid &= 0xFFFF_FFFF
    return (fid & ~0x4000_00FF) == SMC32 and FNUM_MIN <= (fid & 0xFF) <= FNUM_MAX


def is_smc64(fid: int) -> bool:
    return bool(fid & 0x4000_0000)


def ffa_fid_name(fid: int) -> str | None:
    """'FFA_MSG_SEND_DIRECT_REQ_64' for an FF-A function id, None for any other id."""
    if not is_ffa_fid(fid):
        return None
    try:
        fn = FfaFn(fid & 0xFF)
    except ValueError:
        return f"FFA_{fid & 0xFF:#x}"
    return f"FFA_{fn.name}" + ("_64" if is_smc64(fid) and fn not in _ALWAYS_32 else "")


_ALWAYS_32 = frozenset({FfaFn.ERROR, FfaFn.VERSION, FfaFn.FEATURES, FfaFn.RX_RELEASE, FfaFn.RXTX_UNMAP,
                        FfaFn.PARTITION_INFO_GET, FfaFn.ID_GET, FfaFn.SPM_ID_GET})


class FfaError(enum.IntEnum):
    """w2 of FFA_ERROR."""

    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    NO_MEMORY = -3
    BUSY = -4
    INTERRUPTED = -5
    DENIED = -6
    RETRY = -7
    ABORTED = -8

    @classmethod
    def name_of(cls, w2: int) -> str:
        value = w2 & 0xFFFF_FFFF
        value = value - (1 << 32) if value >> 31 else value
        try:
            return cls(value).name
        except ValueError:
            return f"{value}"


def ffa_version(major: int, minor: int) -> int:
    return (major << 16) | minor


FFA_VERSION_1_0 = ffa_version(1, 0)
FFA_VERSION_1_1 = ffa_version(1, 1)
FFA_VERSION_1_3 = ffa_version(1, 3)


class PartitionProps(enum.IntFlag):
    """Partition information descriptor properties (FF-A v1.3; Hafnium inc/vmapi/hf/ffa.h)."""

    DIRECT_REQ_RECV = 1 << 0
    DIRECT_REQ_SEND = 1 << 1
    INDIRECT_MSG = 1 << 2
    NOTIFICATION = 1 << 3
    VM_CREATED = 1 << 6
    VM_DESTROYED = 1 << 7
    AARCH64 = 1 << 8
    DIRECT_REQ2_RECV = 1 << 9
    DIRECT_REQ2_SEND = 1 << 10
    LIVE_ACTIVATION = 1 << 11
    CPU_RENDEZVOUS = 1 << 12


_V1_0_PROPS = PartitionProps.DIRECT_REQ_RECV | PartitionProps.DIRECT_REQ_SEND | PartitionProps.INDIRECT_MSG
_V1_2_PROPS = PartitionProps(0x7FF)  # bits 11 and 12 are reported only at FF-A v1.3


def uuid_words(guid: uuid.UUID) -> tuple[int, int, int, int]:
    """w1..w4 of PARTITION_INFO_GET for ``guid``: little-endian words of the RFC-order bytes."""
    return struct.unpack("<4I", guid.bytes)


def uuid_from_words(w1: int, w2: int, w3: int, w4: int) -> uuid.UUID:
    return uuid.UUID(bytes=struct.pack("<4I", w1 & 0xFFFF_FFFF, w2 & 0xFFFF_FFFF, w3 & 0xFFFF_FFFF,
                                       w4 & 0xFFFF_FFFF))


NIL_UUID = uuid.UUID(int=0)


def partition_descriptor(version: int, part_id: int, contexts: int, props: int,
                         protocol: uuid.UUID, image: uuid.UUID | None) -> bytes:
    """One partition information descriptor as a caller of ``version`` receives it.

    v1.0: id, execution contexts, properties (8 bytes); v1.1/v1.2 add the
    protocol UUID (24 bytes); v1.3 adds the image UUID, the partition's FF-A
    version and a reserved word (48 bytes).
    """
    if version < FFA_VERSION_1_1:
        return struct.pack("<HHI", part_id, contexts, props & _V1_0_PROPS)
    if version < FFA_VERSION_1_3:
        return struct.pack("<HHI16s", part_id, contexts, props & _V1_2_PROPS, protocol.bytes)
    return struct.pack("<HHI16s16sII", part_id, contexts, props, protocol.bytes,
                       (image or NIL_UUID).bytes, FFA_VERSION_1_3, 0)


def descriptor_size(version: int) -> int:
    return 8 if version < FFA_VERSION_1_1 else 24 if version < FFA_VERSION_1_3 else 48


PAGE = 4096


class NsMemory:
    """Non-secure memory that FF-A endpoints share: the MM buffer and RX/TX pages.

    A window of physical addresses; every access is bounds-checked and a bad
    one raises ``ValueError`` (the caller turns it into the real system's
    answer). Only the window is emulated: it stands for the DRAM2 carve-out
    that Trusted Services' FVP manifest declares (default-sp
    MM_COMM_BUFFER_ADDRESS 0x8_8100_0000).
    """

    def __init__(self, base: int, size: int) -> None:
        if base % PAGE or size % PAGE or size <= 0:
            raise ValueError(f"NS window [{base:#x}, +{size:#x}) must be whole 4 KB pages")
        self.base = base
        self.size = size
        self._mem = bytearray(size)

    def contains(self, pa: int, n: int) -> bool:
        return 0 <= n and self.base <= pa and pa + n <= self.base + self.size and pa + n <= MASK64

    def view(self, pa: int, n: int) -> memoryview:
        """A writable view of [pa, pa + n), for an endpoint that maps that region (its bounds are the view's)."""
        if not self.contains(pa, n):
            raise ValueError(f"[{pa:#x}, +{n:#x}) is outside the NS window")
        off = pa - self.base
        return memoryview(self._mem)[off:off + n]

    def read(self, pa: int, n: int) -> bytes:
        if not self.contains(pa, n):
            raise ValueError(f"[{pa:#x}, +{n:#x}) is outside the NS window")
        off = pa - self.base
        return bytes(self._mem[off:off + n])

    def write(self, pa: int, data: bytes) -> None:
        if not self.contains(pa, len(data)):
            raise ValueError(f"[{pa:#x}, +{len(data):#x}) is outside the NS window")
        off = pa - self.base
        self._mem[off:off + len(data)] = data
