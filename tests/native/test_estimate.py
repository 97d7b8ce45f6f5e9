"""Table-count estimator (TF-RMM lib/xlat/src/xlat_tables_utils.c, xlat_estimate_num_l3_l2_tables()).

The cases are those of TF-RMM's lib/xlat/tests/xlat_tests_estimate_tables.cpp;
the expected counts are that file's.
"""

from __future__ import annotations

import pytest

from lfafs.xlat import PAGE, Attr, Region, estimate_tables

MB = 1 << 20
GB = 1 << 30
L3 = 2 * MB
DEV = Attr.DEVICE


def r(va, pa, size, gran, attr=DEV):
    return Region(va=va, pa=pa, size=size, attr=attr, granularity=gran)


CASES = {
    "empty": ([], 0),
    "single_small_granularity": ([r(0x100_0000, 0x200_0000, 4 * MB, PAGE)], 3),
    "large_granularity_aligned": ([r(0x100_0000, 0x200_0000, 4 * MB, L3)], 1),
    "large_granularity_unaligned_pa": ([r(0x100_0000, 0x200_1000, 4 * MB, L3)], 3),
    "unaligned_va": ([r(0x100_1000, 0x200_0000, 2 * MB, L3)], 3),
    "unaligned_pa": ([r(0x100_0000, 0x200_1000, 2 * MB, L3)], 2),
    "transient_pa_ignored": ([r(0x100_0000, 0, 2 * MB, L3, Attr.TRANSIENT)], 1),
    "unaligned_end": ([r(0x100_0000, 0x200_0000, 3 * MB, L3)], 3),
    "unaligned_end_and_pa": ([r(0x100_0000, 0x200_1000, 3 * MB, L3)], 3),
    "adjacent_share_l3": ([r(0x100_0000, 0x200_0000, MB, PAGE), r(0x110_0000, 0x210_0000, MB, PAGE)], 2),
    "adjacent_share_l3_unaligned_pa": (
        [r(0x100_0000, 0x200_1000, MB, PAGE), r(0x110_0000, 0x210_1000, MB, PAGE)], 2),
    "adjacent_mixed_granularity": (
        [r(0x1000_0000, 0x2000_0000, 2 * MB, L3), r(0x1020_0000, 0x2020_0000, 2 * MB, PAGE)], 2),
    "adjacent_mixed_unaligned_pa": (
        [r(0x1000_0000, 0x2000_1000, 2 * MB, L3), r(0x1020_0000, 0x2020_0000, 2 * MB, PAGE)], 3),
    "nonadjacent": ([r(0x100_0000, 0x200_0000, 2 * MB, PAGE), r(0x1000_0000, 0x2000_0000, 2 * MB, PAGE)], 3),
    "needs_l2_tables": ([r(0x100_0000, 0x200_0000, 2 * GB, PAGE)], 1027),
    "needs_l2_tables_unaligned_pa": ([r(0x100_0000, 0x200_1000, 2 * GB, PAGE)], 1027),
    "needs_l2_tables_large_granularity": ([r(0x100_0000, 0x200_0000, 2 * GB, L3)], 3),
    "mixed_granularity": (
        [r(0x100_0000, 0x200_0000, 2 * MB, PAGE), r(0x1000_0000, 0x2000_0000, 2 * MB, L3),
         r(0x2000_0000, 0x3000_0000, 4 * MB, PAGE)], 4),
    "mixed_granularity_unaligned_pa": (
        [r(0x100_0000, 0x200_0000, 2 * MB, PAGE), r(0x1000_0000, 0x2000_1000, 2 * MB, L3),
         r(0x2000_0000, 0x3000_0000, 4 * MB, PAGE)], 5),
    "4gb_at_zero": ([r(0, 0, 4 * GB, PAGE, Attr.MEMORY)], 2052),
    "same_l3_block": ([r(0x100_0000, 0x200_0000, 512 * 1024, PAGE), r(0x110_0000, 0x210_0000, 512 * 1024, PAGE)], 2),
    "crossing_l3_boundary": ([r(0x1F0_0000, 0x2F0_0000, 2 * MB, PAGE)], 3),
    "minimum_size": ([r(0x100_0000, 0x200_0000, PAGE, PAGE)], 2),
    "four_sorted": (
        [r(0x100_0000, 0x200_0000, 2 * MB, PAGE), r(0x500_0000, 0x600_0000, 2 * MB, PAGE),
         r(0x1000_0000, 0x2000_0000, 2 * MB, PAGE), r(0x2000_0000, 0x3000_0000, 2 * MB, PAGE)], 5),
    "l2_only": ([r(0x8000_0000, 0x8000_0000, GB, L3)], 1),
    "no_l2_table": ([r(0x4000_0000, 0x4000_0000, GB, GB)], 0),
    "1gb_granularity_page_aligned_pa": ([r(0x4000_0000, 0x4000_1000, GB, GB)], 513),
    "1gb_granularity_2mb_aligned_pa": ([r(0x4000_0000, 0x4020_0000, GB, GB)], 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimate_matches_tf_rmm_unit_tests(name):
    regions, expected = CASES[name]
    assert estimate_tables(regions) == expected


def test_rmm_pool_estimate_is_513_for_one_gigabyte():
    # 512 L3 tables and one L2 table; the L1 table is the caller's (+1).
    assert estimate_tables([Region.transient(1 << 39, GB)]) == 513
