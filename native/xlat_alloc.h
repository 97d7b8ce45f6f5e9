/* SPDX-License-Identifier: MIT */
/*
 * The VA allocator of a context's TRANSIENT ranges: a bitmap with a summary
 * tree (va_bitmap.h) kept equal to descriptor bit 56, the bit-56 flags of
 * parent table descriptors, the two search policies, statistics, and the
 * whole-context check.
 *
 * TF-RMM keeps allocation state only in descriptor bits and searches them
 * (lib/xlat/src/xlat_tables_utils.c, find_available_va(),
 * update_parent_flags()); lfafs keeps those bits bit-identical and adds the
 * bitmap, as docs/rmm-lfa.md, "The VA allocator", explains.
 */
#ifndef LFAFS_XLAT_ALLOC_H
#define LFAFS_XLAT_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "va_bitmap.h"
#include "xlat_contexts.h"
#include "xlat_walk.h"

/* Search policies. */
#define XLAT_POLICY_BITMAP	0U	/* summary tree, O(log pool) */
#define XLAT_POLICY_SCAN	1U	/* TF-RMM's descriptor scan, for comparison */

struct xlat_check_report {
	uint64_t va;		/* first VA found wrong */
	int32_t level;
	uint32_t what;		/* XLAT_CHECK_* */
};

#define XLAT_CHECK_OK			0U
#define XLAT_CHECK_BAD_TABLE		1U	/* table address outside memory */
#define XLAT_CHECK_BAD_ENTRY		2U	/* dynamic entry in no valid state */
#define XLAT_CHECK_BITMAP_MISMATCH	3U	/* bitmap bit != descriptor bit 56 */
#define XLAT_CHECK_SUMMARY		4U	/* summary tree inconsistent */
#define XLAT_CHECK_PARENT_FLAG		5U	/* table bit 56 != child fullness */
#define XLAT_CHECK_BAD_CONTEXT		6U	/* context fields out of range */

/* For the table build and the runtime L3 API. */

/* A view of the context's bitmap: -ENOMEM without a dynamic range, -EFAULT if out of memory. */
int xlat_alloc_view(const struct xlat_env *env, const struct xlat_ctx *ctx, struct va_bitmap *bm);

/* Build the bitmap from freshly built tables (context build). */
void xlat_alloc_init(struct xlat_env *env, const struct xlat_ctx *ctx);

/* The bitmap has a bit for the page at @va. */
bool xlat_alloc_tracks(const struct xlat_ctx *ctx, uint64_t va);

/*
 * Lowest VA of @pages free pages by @policy.  @bm is the bitmap view the
 * caller already holds, or NULL.  Writes nothing; -ENOMEM when no run fits.
 */
int xlat_alloc_find(const struct xlat_env *env, const struct xlat_ctx *ctx,
		    const struct va_bitmap *bm, uint64_t pages, uint32_t policy, uint64_t *va);

/*
 * @pages pages from @va, all in the L3 table @w reached, were just allocated
 * (or freed): update the bitmap, then bit 56 of the table descriptors above.
 */
void xlat_alloc_record(const struct xlat_ctx *ctx, struct va_bitmap *bm, struct walk *w,
		       uint64_t va, uint64_t pages, bool allocating);

/* The API. */

/* The VA the allocator would hand out for @size bytes, without allocating. */
int xlat_find_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
		 uint32_t policy, uint64_t *va);
/* Benchmark support: run xlat_find_va @reps times (lfafs bench). */
int xlat_find_va_repeat(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
			uint32_t policy, uint64_t reps, uint64_t *va);
int xlat_alloc_stats(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t *free_pages,
		     uint64_t *longest_run);

/* Whole-context consistency check. */
int xlat_check(struct xlat_env *env, const struct xlat_ctx *ctx, struct xlat_check_report *rep);

#endif /* LFAFS_XLAT_ALLOC_H */
