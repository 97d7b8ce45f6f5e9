/* SPDX-License-Identifier: MIT */
/*
 * The descriptor codec; see xlat_desc.h.
 */
#include "xlat_desc.h"

uint64_t xlat_oa_encode(uint64_t pa, bool lpa2)
{
	if (lpa2) {
		/* FEAT_LPA2: OA[49:12] in place, OA[51:50] in bits [9:8]. */
		return (pa & DESC_OA_MASK_LPA2) |
		       (((pa >> DESC_OA_HI_SHIFT_LPA2) & 3U) << DESC_SH_SHIFT);
	}
	return pa & DESC_OA_MASK;
}

uint64_t xlat_desc_oa(uint64_t desc, bool lpa2)
{
	if (lpa2) {
		return (desc & DESC_OA_MASK_LPA2) |
		       (((desc >> DESC_SH_SHIFT) & 3U) << DESC_OA_HI_SHIFT_LPA2);
	}
	return desc & DESC_OA_MASK;
}

/*
 * xlat_desc() - block or page descriptor for an MT_* attribute word
 * (TF-RMM lib/xlat/src/xlat_tables_core.c, xlat_desc()).  A TRANSIENT
 * attribute gives the bare TRANSIENT_DESC.
 */
uint64_t xlat_desc(uint64_t attr, uint64_t pa, int level, bool lpa2)
{
	uint64_t desc;

	if ((attr & MT_TYPE_MASK) == MT_TRANSIENT) {
		return TRANSIENT_DESC;
	}
	desc = xlat_oa_encode(pa, lpa2);
	desc |= (level == XLAT_LEVEL_MAX) ? PAGE_DESC : BLOCK_DESC;
	desc |= DESC_AF;
	if ((attr & MT_NS) != 0U) {
		desc |= DESC_NS;
	}
	if ((attr & MT_RW) == 0U) {
		desc |= DESC_AP_RO;
	}
	if ((attr & MT_NG) != 0U) {
		desc |= DESC_NG;
	}
	if ((attr & MT_EXEC_UNPRIV) == 0U) {
		desc |= DESC_UXN;
	}
	if ((attr & MT_AP_UNPRIV) != 0U) {
		desc |= DESC_AP_UNPRIV;
	}
	if ((attr & MT_AP_AMEC) != 0U) {
		desc |= DESC_AMEC;
	}
	if ((attr & MT_TYPE_MASK) == MT_DEVICE) {
		desc |= ATTR_DEVICE_INDEX << DESC_ATTR_INDX_SHIFT;
		desc |= DESC_PXN;
	} else {
		if (((attr & MT_RW) != 0U) || ((attr & MT_EXECUTE_NEVER) != 0U)) {
			desc |= DESC_PXN;
		} else {
			desc |= DESC_GP;	/* BTI guarded code page */
		}
		desc |= ATTR_IWBWA_OWBWA_NTR_INDEX << DESC_ATTR_INDX_SHIFT;
		if (!lpa2) {
			desc |= DESC_SH_ISH;
		}
	}
	return desc;
}

uint64_t xlat_desc_attr(uint64_t desc)
{
	uint64_t attr;

	if ((desc & ~VA_ALLOCATED_FLAG) == TRANSIENT_DESC) {
		return MT_TRANSIENT;
	}
	attr = (((desc >> DESC_ATTR_INDX_SHIFT) & 7U) == ATTR_DEVICE_INDEX) ? MT_DEVICE : MT_MEMORY;
	if ((desc & DESC_AP_RO) == 0U) {
		attr |= MT_RW;
	}
	if ((desc & DESC_PXN) != 0U) {
		attr |= MT_EXECUTE_NEVER;
	}
	if ((desc & DESC_NG) != 0U) {
		attr |= MT_NG;
	}
	if ((desc & DESC_NS) != 0U) {
		attr |= MT_NS;
	}
	if ((desc & DESC_AP_UNPRIV) != 0U) {
		attr |= MT_AP_UNPRIV;
	}
	if ((desc & DESC_UXN) == 0U) {
		attr |= MT_EXEC_UNPRIV;
	}
	if ((desc & DESC_AMEC) != 0U) {
		attr |= MT_AP_AMEC;
	}
	return attr;
}

/*
 * A table made for a TRANSIENT region carries bit 55, so that the VA search
 * can tell dynamic subtrees from static ones (TF-RMM
 * lib/xlat/src/xlat_tables_core.c, xlat_tables_map_region(); 56648a8e).
 */
uint64_t xlat_table_desc(uint64_t table_pa, bool transient, bool lpa2)
{
	return TABLE_DESC | xlat_oa_encode(table_pa, lpa2) | (transient ? TRANSIENT_DESC : 0U);
}

/*
 * Dynamic entries keep bits 55 and 56 beside the mapping; a populated entry
 * has the valid bit clear and type bit 1 set, OA = PA (TF-RMM
 * xlat_apply_va_l3_entry(), XLAT_VA_L3_MAP and XLAT_VA_L3_POPULATE).
 */
uint64_t xlat_dyn_desc(uint64_t tmpl, uint64_t pa, bool lpa2, bool valid)
{
	uint64_t desc = tmpl | xlat_oa_encode(pa, lpa2) | TRANSIENT_DESC | VA_ALLOCATED_FLAG;

	return valid ? desc : (desc & ~DESC_VALID);
}
