"""Descriptor values and the MT_* attribute word, straight from the C headers."""

from __future__ import annotations

import enum

from ._native import lib, u64

PAGE = lib.XLAT_GRANULE_SIZE
TRANSIENT_DESC = lib.TRANSIENT_DESC
VA_ALLOCATED = lib.VA_ALLOCATED_FLAG
RESERVED_DESC = lib.RESERVED_DESC
_LEVEL_BITS = lib.XLAT_TABLE_ENTRIES.bit_length() - 1  # 9: 512 entries a table


def block_size(level: int) -> int:
    """Bytes mapped by one entry of a table at ``level`` (4 KB granule)."""
    return 1 << (lib.XLAT_GRANULE_SHIFT + _LEVEL_BITS * (lib.XLAT_LEVEL_MAX - level))


class Attr(enum.IntFlag, boundary=enum.KEEP):
    """TF-RMM's MT_* attribute word (lib/xlat/include/xlat_tables.h), bit for bit.

    TYPE is bits [3:0] (DEVICE 0, MEMORY 2, TRANSIENT 3); the zero-valued
    members (DEVICE, RO, REALM, EXECUTE) exist so that combinations read as
    they do in TF-RMM: ``Attr.RW_DATA | Attr.REALM``.
    """

    DEVICE = lib.MT_DEVICE
    RO = lib.MT_RO
    REALM = lib.MT_REALM
    EXECUTE = lib.MT_EXECUTE
    MEMORY = lib.MT_MEMORY
    TRANSIENT = lib.MT_TRANSIENT
    RW = lib.MT_RW
    EXECUTE_NEVER = lib.MT_EXECUTE_NEVER
    CONT = lib.MT_CONT
    NG = lib.MT_NG
    NS = lib.MT_NS
    AP_UNPRIV = lib.MT_AP_UNPRIV
    EXEC_UNPRIV = lib.MT_EXEC_UNPRIV
    AP_AMEC = lib.MT_AP_AMEC
    CODE = lib.MT_CODE
    RO_DATA = lib.MT_RO_DATA
    RW_DATA = lib.MT_RW_DATA
    RW_DEV = lib.MT_RW_DEV


def desc(attr: int, pa: int, level: int = 3, *, lpa2: bool = False) -> int:
    """The block or page descriptor TF-RMM's xlat_desc() writes."""
    return int(lib.xlat_desc(u64("attr", int(attr)), u64("pa", pa), level, lpa2))


def desc_attr(descriptor: int) -> Attr:
    """The MT_* attribute word a descriptor encodes."""
    return Attr(int(lib.xlat_desc_attr(u64("descriptor", descriptor))))
