/* SPDX-License-Identifier: MIT */
/*
 * The descriptor codec: every encoding and decoding of a VMSAv8-64 stage-1
 * descriptor the native core writes or reads, in one place.
 *
 * Leaf and table descriptors follow TF-RMM lib/xlat/src/xlat_tables_core.c
 * (xlat_desc(), xlat_tables_map_region()); the states of a dynamic L3 entry
 * follow lib/xlat/src/xlat_tables_utils.c (xlat_apply_va_l3_entry()).  The
 * bit values are in xlat_defs.h; docs/rmm-lfa.md, "Descriptors", tabulates
 * the results.  Nothing here touches memory.
 */
#ifndef LFAFS_XLAT_DESC_H
#define LFAFS_XLAT_DESC_H

#include <stdbool.h>
#include <stdint.h>

#include "xlat_defs.h"

/* Block or page descriptor for an MT_* word; TRANSIENT gives TRANSIENT_DESC. */
uint64_t xlat_desc(uint64_t attr, uint64_t pa, int level, bool lpa2);

/* The MT_* word a block or page descriptor encodes (inverse of xlat_desc). */
uint64_t xlat_desc_attr(uint64_t desc);

/* Output-address field of a descriptor for @pa, and back. */
uint64_t xlat_oa_encode(uint64_t pa, bool lpa2);
uint64_t xlat_desc_oa(uint64_t desc, bool lpa2);

/* Table descriptor for the table at @table_pa; bit 55 when made for a TRANSIENT region. */
uint64_t xlat_table_desc(uint64_t table_pa, bool transient, bool lpa2);

/*
 * A dynamic L3 entry that maps @pa: @tmpl is xlat_desc(attr, 0, 3, lpa2).
 * Committed entries are valid; populated ones are the same with bit 0 clear.
 */
uint64_t xlat_dyn_desc(uint64_t tmpl, uint64_t pa, bool lpa2, bool valid);

/* Known MT_* bits and a type the core can map (DEVICE, MEMORY, TRANSIENT). */
static inline bool xlat_attr_valid(uint64_t attr)
{
	uint64_t type = attr & MT_TYPE_MASK;

	return ((attr & ~MT_KNOWN_BITS) == 0U) &&
	       ((type == MT_DEVICE) || (type == MT_MEMORY) || (type == MT_TRANSIENT));
}

/* Bit 55 without bit 56: a VA of a dynamic range nobody holds (leaf or table). */
static inline bool xlat_desc_va_free(uint64_t desc)
{
	return ((desc & TRANSIENT_DESC) != 0U) && ((desc & VA_ALLOCATED_FLAG) == 0U);
}

/* State of an L3 entry in a dynamic range (TF-RMM xlat_apply_va_l3_entry()). */
enum xlat_l3_state {
	ST_NON_TRANSIENT = 0,
	ST_FREE,
	ST_RESERVED,
	ST_POPULATED,
	ST_COMMITTED,
	ST_CORRUPT,
};

static inline enum xlat_l3_state xlat_l3_state(uint64_t e)
{
	if ((e & TRANSIENT_DESC) == 0U) {
		return ST_NON_TRANSIENT;
	}
	if (e == TRANSIENT_DESC) {
		return ST_FREE;
	}
	if ((e & VA_ALLOCATED_FLAG) == 0U) {
		return ST_CORRUPT;
	}
	if (e == RESERVED_DESC) {
		return ST_RESERVED;
	}
	if ((e & DESC_MASK) == (PAGE_DESC & ~DESC_VALID)) {
		return ST_POPULATED;
	}
	if ((e & DESC_MASK) == PAGE_DESC) {
		return ST_COMMITTED;
	}
	return ST_CORRUPT;
}

#endif /* LFAFS_XLAT_DESC_H */
