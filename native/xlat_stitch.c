/* SPDX-License-Identifier: MIT */
/*
 * L1 stitching: a child context's L1 entries copied into a parent's L1
 * table, so that the static low-VA context reaches the dynamic pool's
 * tables (TF-RMM lib/xlat_low_va/src/xlat_low_va.c, xlat_low_va_dyn_fixup()).
 * Declared with the rest of the MMU-off API in xlat_core.h.
 */
#include <errno.h>

#include "xlat_core.h"
#include "xlat_walk.h"

/*
 * xlat_stitch_tables_l1() - copy the child's L1 entries for
 * [va_start, va_start + va_size) into the parent's L1 table (TF-RMM
 * lib/xlat/src/xlat_tables_utils.c, xlat_stitch_tables_l1(); a36c81a3,
 * 72b12ba4).  TF-RMM asserts its preconditions; here they are
 * errors: MMU on -> -EACCES; range not 1 GB multiples, crossing an L0 entry
 * or outside the child -> -EINVAL; a parent entry that is not exactly
 * TRANSIENT_DESC -> -EPERM.  TF-RMM's quirk is kept: when the parent's walk
 * ends at a level other than 1 the call returns 0 and stitches nothing
 * (*stitched = 0).
 */
int xlat_stitch_tables_l1(struct xlat_env *env, struct xlat_ctx *parent,
			  const struct xlat_ctx *child, uint64_t va_start, uint64_t va_size,
			  uint32_t *stitched)
{
	const uint64_t gb = XLAT_BLOCK_SIZE(1);
	const uint64_t l0 = XLAT_BLOCK_SIZE(0);
	struct walk pw;
	struct walk cw;
	uint64_t *pl1;
	uint64_t *cl1;
	uint32_t first;
	uint32_t count;
	int ret;

	if ((env == NULL) || !ctx_ready(parent) || !ctx_ready(child) || (stitched == NULL)) {
		return -EINVAL;
	}
	if (env->mmu_on != 0U) {
		return -EACCES;
	}
	if ((va_size == 0U) || ((va_start & (gb - 1U)) != 0U) || ((va_size & (gb - 1U)) != 0U) ||
	    ((va_start + va_size) < va_start) ||
	    ((va_start / l0) != ((va_start + va_size - 1U) / l0)) ||
	    (child->base_level != 1) || !xlat_va_in_ctx(child, va_start, va_size)) {
		return -EINVAL;
	}
	*stitched = 0U;
	ret = xlat_walk_to_write(env, parent, va_start, &pw);
	if (ret != 0) {
		return ret;
	}
	if (pw.level != 1) {
		return 0;
	}
	ret = xlat_walk_to(env, child, va_start, &cw);
	if (ret != 0) {
		return ret;
	}
	pl1 = pw.table[1 + 1];
	cl1 = cw.table[1 + 1];
	first = pw.idx[1 + 1];
	count = (uint32_t)(va_size / gb);
	if ((first + count) > pw.entries || (cw.idx[1 + 1] + count) > cw.entries) {
		return -EINVAL;
	}
	for (uint32_t i = 0U; i < count; i++) {
		if (pl1[first + i] != TRANSIENT_DESC) {
			return -EPERM;
		}
	}
	for (uint32_t i = 0U; i < count; i++) {
		pl1[first + i] = cl1[cw.idx[1 + 1] + i];
	}
	*stitched = count;
	return 0;
}
