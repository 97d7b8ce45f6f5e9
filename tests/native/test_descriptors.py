"""Descriptor encoding and geometry (TF-RMM lib/xlat/src/xlat_tables_core.c, xlat_desc();
lib/xlat/include/xlat_defs.h, GET_XLAT_TABLE_LEVEL_BASE(); docs/rmm-lfa.md, "Descriptors")."""

from __future__ import annotations

import pytest

from lfafs._xlat_native import lib
from lfafs.xlat import PAGE, RESERVED_DESC, TRANSIENT_DESC, Attr, Region, desc, desc_attr

from .conftest import transient_ctx


@pytest.mark.parametrize(
    ("va_size", "lpa2", "level"),
    [
        (1 << 52, True, -1),
        (1 << 49, True, -1),
        (1 << 48, True, 0),
        (1 << 48, False, 0),
        (1 << 40, False, 0),
        (1 << 39, False, 1),
        (1 << 31, False, 1),
        (1 << 30, False, 2),
        (1 << 22, False, 2),
        (1 << 21, False, 3),
        (1 << 16, False, 3),
    ],
)
def test_base_level_follows_va_size(va_size, lpa2, level):
    assert lib.xlat_base_level(va_size, lpa2) == level


def test_level_minus_one_table_has_16_entries(layout):
    ctx = layout.context([Region.transient(0, 2 << 20)], va_size=1 << 52, lpa2=True)
    assert ctx.base_level == -1
    assert ctx.llt(0).level == 3
    # the base table of a 2**52 space has 16 entries: the last VA is inside
    assert ctx.walk((1 << 52) - PAGE).level == -1


def test_free_and_reserved_entries_are_exact_values():
    assert TRANSIENT_DESC == 0x0080_0000_0000_0000
    assert RESERVED_DESC == 0x0180_0000_0000_0000


@pytest.mark.parametrize(
    ("attr", "pa", "expected"),
    [
        (Attr.RW_DATA | Attr.REALM, 0x4000_0000, 0x01E0_0000_4000_0703),
        (Attr.RW_DEV | Attr.NS, 0x4000_1000, 0x01E0_0000_4000_1427),
        (Attr.RO_DATA | Attr.REALM, 0x4000_2000, 0x01E0_0000_4000_2783),
    ],
)
def test_mapped_descriptor_is_bit_identical_to_tf_rmm(layout, mmu_on, attr, pa, expected):
    ctx = transient_ctx(layout, 8)
    va = ctx.map(pa, PAGE, attr)
    assert ctx.descriptor(va) == expected


def test_code_page_is_executable_guarded_and_read_only():
    d = desc(Attr.CODE, 0x8020_0000)
    assert d & 3 == 3
    assert d & (1 << 7)  # AP[2] read-only
    assert d & (1 << 50)  # GP for BTI
    assert not d & (1 << 53)  # PXN clear: executable at EL2
    assert d & (1 << 54)  # UXN
    assert d == 0x0044_0000_8020_0783


def test_static_rw_page_has_no_software_bits():
    assert desc(Attr.RW_DATA, 0x8020_1000) == 0x0060_0000_8020_1703


def test_block_descriptor_at_level_1_and_2_has_block_type():
    assert desc(Attr.RW_DATA, 0x4000_0000, level=1) & 3 == 1
    assert desc(Attr.RW_DATA, 0x20_0000, level=2) & 3 == 1


def test_lpa2_moves_oa_51_50_into_sh_bits():
    pa = (0b10 << 50) | 0x1000
    d = desc(Attr.RW_DATA, pa, lpa2=True)
    assert (d >> 8) & 3 == 0b10  # OA[51:50], no shareability field
    assert d & 0x0003_FFFF_FFFF_F000 == 0x1000


@pytest.mark.parametrize(
    "attr",
    [
        Attr.RW_DATA | Attr.REALM,
        Attr.RW_DEV | Attr.NS,
        Attr.RO_DATA | Attr.REALM,
        Attr.CODE,
        Attr.RW_DATA | Attr.NG | Attr.AP_UNPRIV | Attr.AP_AMEC,
        Attr.CODE | Attr.EXEC_UNPRIV,
    ],
)
def test_descriptor_attributes_decode_back(attr):
    assert desc_attr(desc(attr, 0x1000)) == attr


def test_attr_values_match_tf_rmm_mt_word():
    assert int(Attr.RW_DATA) == 0x32
    assert int(Attr.RW_DEV | Attr.NS) == 0x130
    assert int(Attr.RO_DATA) == 0x22
    assert int(Attr.CODE) == 0x2
    assert int(Attr.TRANSIENT) == 0x3
