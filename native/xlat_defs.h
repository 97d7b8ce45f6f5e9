/* SPDX-License-Identifier: MIT */
/*
 * VMSAv8-64 stage-1 constants for the 4 KB granule, and the memory-attribute
 * word (MT_*) of TF-RMM's xlat library.
 *
 * Values are bit-identical to TF-RMM (lib/xlat/include/xlat_tables.h,
 * lib/xlat/src/xlat_defs_private.h); see docs/rmm-lfa.md for the table of
 * descriptors they produce.
 */
#ifndef LFAFS_XLAT_DEFS_H
#define LFAFS_XLAT_DEFS_H

#include <stdint.h>

/* Geometry: 4 KB granule only, 512 entries a table, level -1 with LPA2. */
#define XLAT_GRANULE_SHIFT	12
#define XLAT_GRANULE_SIZE	(1ULL << XLAT_GRANULE_SHIFT)
#define XLAT_GRANULE_MASK	(XLAT_GRANULE_SIZE - 1ULL)
#define XLAT_TABLE_ENTRIES	512U
#define XLAT_TABLE_BYTES	(XLAT_TABLE_ENTRIES * 8U)
#define XLAT_LPA2_L_1_ENTRIES	16U
#define XLAT_LEVEL_MIN		(-1)
#define XLAT_LEVEL_MAX		3
#define XLAT_ADDR_SHIFT(l)	(XLAT_GRANULE_SHIFT + (9 * (XLAT_LEVEL_MAX - (l))))
#define XLAT_BLOCK_SIZE(l)	(1ULL << XLAT_ADDR_SHIFT(l))
#define XLAT_BLOCK_MASK(l)	(XLAT_BLOCK_SIZE(l) - 1ULL)
/* Per-level arrays cover levels -1..3, indexed by level + 1. */
#define XLAT_LEVEL_SLOTS	(XLAT_LEVEL_MAX - XLAT_LEVEL_MIN + 1)

/* An L3 table maps 2 MB; the VA allocator's bitmap is built in such chunks. */
#define XLAT_L3_SPAN		XLAT_BLOCK_SIZE(2)
#define XLAT_PAGES_PER_L3	XLAT_TABLE_ENTRIES

/* Address space limits (TF-RMM xlat_defs.h). */
#define XLAT_MIN_VA_SIZE	(1ULL << 16)
#define XLAT_MAX_VA_SIZE	(1ULL << 48)
#define XLAT_MAX_VA_SIZE_LPA2	(1ULL << 52)
#define XLAT_MAX_PA		(1ULL << 48)
#define XLAT_MAX_PA_LPA2	(1ULL << 52)
#define XLAT_HIGH_REGION_MASK	(0xFFFULL << 52)

/* Descriptor type, bits [1:0]. */
#define DESC_MASK		3ULL
#define INVALID_DESC		0ULL
#define BLOCK_DESC		1ULL
#define TABLE_DESC		3ULL
#define PAGE_DESC		3ULL
#define DESC_VALID		1ULL

/* Lower attributes. */
#define DESC_ATTR_INDX_SHIFT	2
#define ATTR_IWBWA_OWBWA_NTR_INDEX 0ULL
#define ATTR_DEVICE_INDEX	1ULL
#define DESC_NS			(1ULL << 5)
#define DESC_AP_UNPRIV		(1ULL << 6)	/* AP[1] */
#define DESC_AP_RO		(1ULL << 7)	/* AP[2] */
#define DESC_SH_SHIFT		8
#define DESC_SH_ISH		(3ULL << DESC_SH_SHIFT)
#define DESC_AF			(1ULL << 10)
#define DESC_NG			(1ULL << 11)

/* Upper attributes. */
#define DESC_GP			(1ULL << 50)
#define DESC_PXN		(1ULL << 53)
#define DESC_UXN		(1ULL << 54)
#define DESC_AMEC		(1ULL << 63)

/*
 * Software bits (TF-RMM xlat_tables.h): bit 55 marks a VA that belongs to a
 * dynamic (TRANSIENT) range, bit 56 marks it allocated.  TRANSIENT_DESC is
 * both a mask and, as an absolute value, the FREE dynamic entry.
 */
#define TRANSIENT_DESC		(1ULL << 55)
#define VA_ALLOCATED_FLAG	(1ULL << 56)
#define RESERVED_DESC		(TRANSIENT_DESC | VA_ALLOCATED_FLAG)

/* Output address field. */
#define DESC_OA_MASK		0x0000FFFFFFFFF000ULL	/* [47:12] */
#define DESC_OA_MASK_LPA2	0x0003FFFFFFFFF000ULL	/* [49:12] */
#define DESC_OA_HI_SHIFT_LPA2	50			/* OA[51:50] in bits [9:8] */

/* MT_* attribute word (TF-RMM xlat_tables.h). */
#define MT_TYPE_MASK		0xFULL
#define MT_DEVICE		0ULL
#define MT_MEMORY		2ULL
#define MT_TRANSIENT		3ULL
#define MT_RW			(1ULL << 4)
#define MT_EXECUTE_NEVER	(1ULL << 5)
#define MT_CONT			(1ULL << 6)
#define MT_NG			(1ULL << 7)
#define MT_NS			(1ULL << 8)
#define MT_AP_UNPRIV		(1ULL << 9)
#define MT_EXEC_UNPRIV		(1ULL << 10)
#define MT_AP_AMEC		(1ULL << 11)
#define MT_KNOWN_BITS		0xFFFULL

#define MT_RO			0ULL
#define MT_REALM		0ULL
#define MT_EXECUTE		0ULL
#define MT_CODE			(MT_MEMORY | MT_RO | MT_EXECUTE)
#define MT_RO_DATA		(MT_MEMORY | MT_RO | MT_EXECUTE_NEVER)
#define MT_RW_DATA		(MT_MEMORY | MT_RW | MT_EXECUTE_NEVER)
#define MT_RW_DEV		(MT_DEVICE | MT_RW | MT_EXECUTE_NEVER)

/* Alignment of a power-of-two boundary (TF-RMM lib/common/include/utils_def.h). */
static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1U) & ~(a - 1U);
}

static inline uint64_t round_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1U);
}

#endif /* LFAFS_XLAT_DEFS_H */
