/* SPDX-License-Identifier: MIT */
/*
 * Software table walkers (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * find_xlat_last_table(), xlat_get_llt_from_va(), xlat_get_tte_ptr(),
 * xlat_get_contig_pa_level3()).  Every table address read from a
 * descriptor is checked against the emulated memory before it is followed.
 */
#ifndef LFAFS_XLAT_WALK_H
#define LFAFS_XLAT_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "xlat_contexts.h"

/* Result of a walk: the last-level table reached for a VA (TF-RMM struct xlat_llt_info). */
struct xlat_llt {
	uint64_t table_pa;
	uint64_t base_va;	/* VA mapped by entry 0 of that table */
	int32_t level;
	uint32_t entries;
};

/* A walk from the root of a context towards one VA, for the other sources. */
struct walk {
	uint64_t *table[XLAT_LEVEL_SLOTS];	/* host pointer of the table at each level (see xlat_walk_to) */
	uint32_t idx[XLAT_LEVEL_SLOTS];		/* entry index of the VA at each level */
	uint64_t table_pa;			/* last table reached */
	uint64_t base_va;			/* VA of its entry 0 */
	int level;				/* its level */
	uint32_t entries;
	bool path_transient;			/* every table descriptor on the way has bit 55 */
};

/* The entry for the walk's VA in its table at @level. */
static inline uint64_t *walk_entry(struct walk *w, int level)
{
	return &w->table[level + 1][w->idx[level + 1]];
}

/* Host pointer of a table as the software walker reaches it, for reading, or NULL. */
const uint64_t *xlat_table_host(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa);

/*
 * Descend from the base table towards @va; 0 or -EFAULT.  xlat_walk_to()
 * is for reading: it maps nothing, and a table never written is the shared
 * page of zeros, read-only (pmem.h), so nothing may be written through
 * w->table.  xlat_walk_to_write() backs every table it reaches, for callers
 * that write entries.
 */
int xlat_walk_to(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w);
int xlat_walk_to_write(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w);

/* Walkers. */
int xlat_get_llt_from_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			 struct xlat_llt *llt);
int xlat_get_tte_pa(const struct xlat_llt *llt, uint64_t va, uint64_t *tte_pa);
int xlat_read_desc(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, int level,
		   uint64_t *desc, int32_t *leaf_level);
int xlat_read_l3_range(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
		       uint64_t pages, uint64_t *out);
int xlat_walk(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, uint64_t *pa,
	      uint64_t *desc, int32_t *level);
int xlat_get_contig_pa_level3(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			      uint64_t top_va, uint64_t *pa_out, uint64_t *bytes);

#endif /* LFAFS_XLAT_WALK_H */
