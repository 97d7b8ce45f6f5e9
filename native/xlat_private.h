/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the xlat sources; not part of the API.
 */
#ifndef LFAFS_XLAT_PRIVATE_H
#define LFAFS_XLAT_PRIVATE_H

#include <errno.h>

#include "va_bitmap.h"
#include "xlat.h"

/* Slots for levels -1..3, indexed by level + 1. */
#define XLAT_LEVEL_SLOTS	5

static inline bool ctx_lpa2(const struct xlat_ctx *ctx)
{
	return (ctx->flags & XLAT_F_LPA2) != 0U;
}

static inline bool ctx_ready(const struct xlat_ctx *ctx)
{
	return (ctx != NULL) && (ctx->magic == XLAT_CTX_MAGIC) &&
	       ((ctx->flags & (XLAT_F_CFG | XLAT_F_TBLS)) == (XLAT_F_CFG | XLAT_F_TBLS));
}

/* Entries of a table at @level: the base table is limited by the VA size (T0SZ). */
static inline uint32_t table_entries(const struct xlat_ctx *ctx, int level)
{
	if (level == ctx->base_level) {
		return (uint32_t)(ctx->va_size >> XLAT_ADDR_SHIFT(level));
	}
	return XLAT_TABLE_ENTRIES;
}

static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1U) & ~(a - 1U);
}

static inline uint64_t round_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1U);
}

static inline bool attr_valid(uint64_t attr)
{
	uint64_t type = attr & MT_TYPE_MASK;

	return ((attr & ~MT_KNOWN_BITS) == 0U) &&
	       ((type == MT_DEVICE) || (type == MT_MEMORY) || (type == MT_TRANSIENT));
}

/* State of an L3 entry in a dynamic range (TF-RMM lib/xlat, spec rmm-lfa 1.9). */
enum l3_state {
	ST_NON_TRANSIENT = 0,
	ST_FREE,
	ST_RESERVED,
	ST_POPULATED,
	ST_COMMITTED,
	ST_CORRUPT,
};

static inline enum l3_state l3_state(uint64_t e)
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
	if ((e & DESC_MASK) == 2U) {
		return ST_POPULATED;
	}
	if ((e & DESC_MASK) == PAGE_DESC) {
		return ST_COMMITTED;
	}
	return ST_CORRUPT;
}

/* An L3 entry the allocator may hand out: transient, under transient tables. */
static inline bool l3_free(bool path_transient, uint64_t e)
{
	return path_transient && ((e & TRANSIENT_DESC) != 0U) && ((e & VA_ALLOCATED_FLAG) == 0U);
}

/* A walk from the root of a context towards one VA. */
struct walk {
	uint64_t *table[XLAT_LEVEL_SLOTS];	/* host pointer of the table at each level */
	uint32_t idx[XLAT_LEVEL_SLOTS];		/* entry index of the VA at each level */
	uint64_t table_pa;			/* last table reached */
	uint64_t base_va;			/* VA of its entry 0 */
	int level;				/* its level */
	uint32_t entries;
	bool path_transient;			/* every table descriptor on the way has bit 55 */
};

static inline uint64_t *walk_entry(struct walk *w, int level)
{
	return &w->table[level + 1][w->idx[level + 1]];
}

uint64_t *xlat_table_host(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa);
int xlat_walk_to(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w);
bool xlat_va_in_ctx(const struct xlat_ctx *ctx, uint64_t va, uint64_t size);
uint64_t xlat_oa_encode(uint64_t pa, bool lpa2);
int xlat_ctx_validate(const struct xlat_env *env, const struct xlat_ctx *ctx);
int xlat_alloc_view(const struct xlat_env *env, const struct xlat_ctx *ctx, struct va_bitmap *bm);
void xlat_alloc_init(struct xlat_env *env, const struct xlat_ctx *ctx);

#endif /* LFAFS_XLAT_PRIVATE_H */
