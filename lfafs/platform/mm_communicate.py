"""The MM communicate buffer: header, SMM variable functions, payload layouts, return codes.

Little-endian, as U-Boot include/mm_communication.h and Trusted Services
protocols/service/smm_variable/parameters.h lay it out:

    EFI_MM_COMMUNICATE_HEADER   HeaderGuid[16] MessageLength u64        (24 bytes, packed)
    SMM_VARIABLE_COMMUNICATE    Function u64 ReturnStatus u64 Data[]    (16 bytes)

Payload offsets are the real ones (Trusted Services offsetof(..., Name)):
the access header's Name is at 36, but C's sizeof is 40, so U-Boot's
``MessageLength`` carries 4 spare bytes. Both sizes are named here.
"""

from __future__ import annotations

import enum
import struct
import uuid

from lfafs.uefi import EfiStatus, from_ucs2, guid_from_bytes

SMM_VARIABLE_GUID = uuid.UUID("ed32d533-99e6-4209-9cc0-2d72cdd998a7")  # header GUID and the SP's FF-A UUID
SMM_VARIABLE_GUID_LE = SMM_VARIABLE_GUID.bytes_le  # as the header carries it (EFI_GUID byte order)

MM_HEADER = struct.Struct("<16sQ")  # HeaderGuid, MessageLength
MM_HEADER_SIZE = MM_HEADER.size  # 24
VAR_HEADER = struct.Struct("<QQ")  # Function, ReturnStatus
VAR_HEADER_SIZE = VAR_HEADER.size  # 16

ACCESS = struct.Struct("<16sQQI")  # Guid, DataSize, NameSize, Attributes
ACCESS_NAME_OFFSET = ACCESS.size  # 36 (Trusted Services)
ACCESS_HEADER_SIZE = 40  # U-Boot MM_VARIABLE_ACCESS_HEADER_SIZE: sizeof, with padding
GET_NEXT = struct.Struct("<16sQ")  # Guid, NameSize
GET_NEXT_NAME_OFFSET = GET_NEXT.size  # 24
QUERY = struct.Struct("<QQQI4x")  # MaximumVariableStorageSize, Remaining, MaximumVariableSize, Attributes
PAYLOAD_SIZE = struct.Struct("<Q")
VAR_CHECK = struct.Struct("<HHIQQ")  # Revision, Property, Attributes, MinSize, MaxSize
PROPERTY = struct.Struct("<16sQ24s")  # Guid, NameSize, VAR_CHECK_VARIABLE_PROPERTY
PROPERTY_NAME_OFFSET = PROPERTY.size  # 48
VAR_CHECK_REVISION = 1
VAR_CHECK_READ_ONLY = 1 << 0


class MmFunction(enum.IntEnum):
    """SMM_VARIABLE_FUNCTION_* (U-Boot include/mm_communication.h)."""

    GET_VARIABLE = 1
    GET_NEXT_VARIABLE_NAME = 2
    SET_VARIABLE = 3
    QUERY_VARIABLE_INFO = 4
    READY_TO_BOOT = 5
    EXIT_BOOT_SERVICE = 6
    GET_STATISTICS = 7
    LOCK_VARIABLE = 8
    VAR_CHECK_VARIABLE_PROPERTY_SET = 9
    VAR_CHECK_VARIABLE_PROPERTY_GET = 10
    GET_PAYLOAD_SIZE = 11
    INIT_RUNTIME_VARIABLE_CACHE_CONTEXT = 12
    SYNC_RUNTIME_CACHE = 13
    GET_RUNTIME_CACHE_INFO = 14


class MmReturn(enum.IntEnum):
    """MM return codes, carried in x3 of the direct response (Trusted Services protocols/common/mm/mm_smc.h)."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETER = -2
    DENIED = -3
    NO_MEMORY = -5

    @classmethod
    def name_of(cls, x3: int) -> str:
        value = signed32(x3)
        try:
            return cls(value).name
        except ValueError:
            return f"{value}"


def signed32(reg: int) -> int:
    """The low 32 bits of a register as a signed int (U-Boot reads x3 into an int)."""
    value = reg & 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def header(function: int, payload: bytes) -> bytes:
    """A whole request as U-Boot's setup_mm_hdr() builds it: MessageLength = 16 + payload."""
    return (MM_HEADER.pack(SMM_VARIABLE_GUID_LE, VAR_HEADER_SIZE + len(payload))
            + VAR_HEADER.pack(function, 0) + payload)


def _name(raw: bytes, name_size: int) -> str:
    return from_ucs2(raw[:max(0, min(name_size, len(raw)))])


def describe(buf: bytes, *, reply: bool = False) -> str:
    """One line for the trace: what a request (or its reply) in ``buf`` says.

    ``buf`` starts at the MM header; whatever is malformed is described, never raised.
    """
    if len(buf) < MM_HEADER_SIZE:
        return "MM (short buffer)"
    guid_raw, length = MM_HEADER.unpack_from(buf)
    guid = guid_from_bytes(guid_raw)
    if guid != SMM_VARIABLE_GUID:
        return f"MM guid {guid} length {length}"
    if len(buf) < MM_HEADER_SIZE + VAR_HEADER_SIZE:
        return f"MM length {length} (no SMM variable header)"
    function, status = VAR_HEADER.unpack_from(buf, MM_HEADER_SIZE)
    data = buf[MM_HEADER_SIZE + VAR_HEADER_SIZE:]
    try:
        fname = MmFunction(function & 0xFFFF_FFFF).name
    except ValueError:
        fname = f"function {function:#x}"
    text = f"MM {fname} length {length}"
    fn = function & 0xFFFF_FFFF
    if fn in (MmFunction.GET_VARIABLE, MmFunction.SET_VARIABLE) and len(data) >= ACCESS.size:
        g, dsize, nsize, attrs = ACCESS.unpack_from(data)
        text += (f" {_name(data[ACCESS_NAME_OFFSET:], nsize)}-{guid_from_bytes(g)}"
                 f" attributes {attrs:#x} data_size {dsize} name_size {nsize}")
    elif fn == MmFunction.GET_NEXT_VARIABLE_NAME and len(data) >= GET_NEXT.size:
        g, nsize = GET_NEXT.unpack_from(data)
        text += f" after {_name(data[GET_NEXT_NAME_OFFSET:], nsize)!r}-{guid_from_bytes(g)} name_size {nsize}"
    elif fn == MmFunction.QUERY_VARIABLE_INFO and len(data) >= QUERY.size - 4:
        mx, rem, mvs, attrs = QUERY.unpack_from(data.ljust(QUERY.size, b"\0"))
        text += f" attributes {attrs:#x}" + (f" max {mx} remaining {rem} max_variable {mvs}" if reply else "")
    elif fn in (MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET, MmFunction.VAR_CHECK_VARIABLE_PROPERTY_SET) \
            and len(data) >= PROPERTY.size:
        g, nsize, prop = PROPERTY.unpack_from(data)
        rev, flags, attrs, mn, mx = VAR_CHECK.unpack(prop)
        text += f" {_name(data[PROPERTY_NAME_OFFSET:], nsize)}-{guid_from_bytes(g)} property {flags:#x}"
    elif fn == MmFunction.GET_PAYLOAD_SIZE and reply and len(data) >= PAYLOAD_SIZE.size:
        text += f" payload {PAYLOAD_SIZE.unpack_from(data)[0]}"
    if reply:
        text += f" -> {EfiStatus.name_of(status)}"
    return text
