/* SPDX-License-Identifier: MIT */
/*
 * The runtime L3 API on TRANSIENT ranges (TF-RMM
 * lib/xlat/src/xlat_tables_utils.c, xlat_map_l3_region() to
 * xlat_unreserve_va_l3_region()): the transitions of a dynamic L3 entry
 * between FREE, RESERVED, POPULATED and COMMITTED, with the MMU on.
 *
 * Every call returns 0 or a negative errno value and changes nothing when it
 * fails; docs/rmm-lfa.md, "The runtime L3 API", lists the codes in order.
 */
#ifndef LFAFS_XLAT_L3_H
#define LFAFS_XLAT_L3_H

#include <stdint.h>

#include "xlat_contexts.h"

int xlat_map_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
		       uint64_t attr, uint64_t *mapped_va);
int xlat_unmap_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size);
int xlat_reserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t size,
			      uint64_t *va);
int xlat_populate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t pa, uint64_t size, uint64_t attr);
int xlat_commit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			     uint64_t size);
int xlat_decommit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t size);
int xlat_depopulate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				 uint64_t size);
int xlat_unreserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				uint64_t size);

/*
 * Batches: n independent calls in one crossing.  They stop at the first
 * failing element, which changes nothing; *done receives how many succeeded.
 * @policy is XLAT_POLICY_BITMAP or XLAT_POLICY_SCAN (xlat_alloc.h).
 */
int xlat_map_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *pas,
		      uint64_t n, uint64_t size, uint64_t attr, uint32_t policy,
		      uint64_t *vas, uint64_t *done);
int xlat_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			uint64_t n, uint64_t size, uint64_t *done);

#endif /* LFAFS_XLAT_L3_H */
