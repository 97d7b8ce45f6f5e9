/* SPDX-License-Identifier: MIT */
/*
 * Software table walkers (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * find_xlat_last_table(), xlat_get_llt_from_va(), xlat_get_tte_ptr(),
 * xlat_get_contig_pa_level3()).  Every table address read from a
 * descriptor is checked against the emulated memory before it is followed.
 */
#ifndef LFAFS_XLAT_WALK_H
#define LFAFS_XLAT_WALK_H

#include <errno.h>
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

/*
 * Host pointer of a table as the software walker reaches it, or NULL: for
 * reading (a never-written table is the shared page of zeros, pmem.h), or
 * for writing (its window is mapped first).
 */
const uint64_t *xlat_table_host(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa);
uint64_t *xlat_table_host_wr(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa);

/*
 * The context's table array as one host range, for code that walks from
 * the root again and again (TF-RMM's scans): TF-RMM turns a table address
 * into a pointer with one addition (lib/xlat/src/aarch64/xlat_cmn_arch.h,
 * remap_table_address()), and so does xlat_span_table() for a table the
 * span holds, when the array sits in one mapped window (always, with 1 GiB
 * windows); any other table goes through xlat_table_host(), which refuses
 * what the MMU could not reach.  Every table the array holds is one the
 * walker may reach, MMU on or off.
 */
struct xlat_tables_span {
	uint64_t pa;
	uint64_t bytes;		/* 0 when the array is not in one mapped window */
	uintptr_t delta;	/* host address - PA inside the array */
};

struct xlat_tables_span xlat_tables_span(const struct xlat_env *env, const struct xlat_ctx *ctx);

/* @table_pa is inside the array (and aligned: it comes from a descriptor's OA field). */
static inline bool xlat_span_holds(const struct xlat_tables_span *span, uint64_t table_pa)
{
	return (table_pa - span->pa) < span->bytes;
}

/* Host pointer of a table xlat_span_holds(); writable, the array's window is mapped. */
static inline uint64_t *xlat_span_table(const struct xlat_tables_span *span, uint64_t table_pa)
{
	return (uint64_t *)((uintptr_t)table_pa + span->delta);
}

/*
 * Descend from the base table towards @va; 0 or -EFAULT.  xlat_walk_to()
 * is for reading: it maps nothing, and a table never written is the shared
 * page of zeros, read-only (pmem.h), so nothing may be written through
 * w->table.  xlat_walk_to_write() backs every table it reaches, for callers
 * that write entries.
 */
int xlat_walk_to(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w);
int xlat_walk_to_write(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w);

/*
 * The L3 table a runtime call reached last, kept for the rest of that one
 * native call (TF-RMM caches its last-level table the same way,
 * lib/xlat/src/xlat_tables_utils.c, xlat_llt_covers_va()).  Runtime L3
 * calls write L3 entries and bit 56 of table descriptors, nothing else, so
 * the tables a walk went through and its bit-55 path stay what they were;
 * and every pointer in it stays valid because the VA allocator's view, the
 * only range that can move windows (pmem.h), is taken before the first
 * walk.  A batch thus walks once per L3 table instead of once per element.
 */
struct l3_cursor {
	struct walk w;
	uint64_t chunk;		/* VA of entry 0 of w's L3 table; 1 (never aligned) when empty */
};

static inline void l3_cursor_init(struct l3_cursor *c)
{
	c->chunk = 1U;
}

/*
 * The writing walk to the L3 table that maps @va, from @c when it holds
 * that table; -EFAULT when there is none (the walk stops above level 3 or
 * leaves memory).
 */
static inline int l3_cursor_walk(const struct xlat_env *env, const struct xlat_ctx *ctx,
				 struct l3_cursor *c, uint64_t va, struct walk **w)
{
	const uint64_t chunk = round_down(va, XLAT_L3_SPAN);
	uint64_t idx;

	if (chunk != c->chunk) {
		c->chunk = 1U;
		if ((xlat_walk_to_write(env, ctx, va, &c->w) != 0) || (c->w.level != XLAT_LEVEL_MAX)) {
			return -EFAULT;
		}
		c->chunk = chunk;
	}
	idx = (va - c->w.base_va) >> XLAT_GRANULE_SHIFT;
	if (idx >= c->w.entries) {	/* a base-level-3 table shorter than 2 MB */
		return -EFAULT;
	}
	c->w.idx[XLAT_LEVEL_MAX + 1] = (uint32_t)idx;
	*w = &c->w;
	return 0;
}

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
