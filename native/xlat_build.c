/* SPDX-License-Identifier: MIT */
/*
 * The table build: every region of a configured context mapped into its
 * table array, creating tables in order (see xlat_build.h).
 */
#include <string.h>

#include "xlat_build.h"
#include "xlat_desc.h"

static int min_block_level(bool lpa2)
{
	/* TF-RMM XLAT_MIN_BLOCK_LVL(): blocks from L0 with LPA2, else from L1. */
	return lpa2 ? 0 : 1;
}

/* One pass of the table build; a dry run counts tables without writing. */
struct build {
	const struct xlat_env *env;		/* NULL for a dry run */
	const struct xlat_ctx *ctx;
	uint64_t next_table;
	uint64_t last_table_va[XLAT_LEVEL_SLOTS];	/* dry run: block VA given a table last */
};

static uint64_t *build_table(struct build *b, uint64_t table_pa)
{
	/* The array was bounds-checked and backed whole before the build started. */
	return (uint64_t *)pmem_page_wr(&b->env->mem, table_pa);
}

/*
 * The L3 entries of @mm from @idx on, each written where it is still invalid.
 * Regions are page aligned, so every entry reached is covered.  A TRANSIENT
 * region's descriptor does not depend on the address: it is made once (the
 * pool's 256K entries are most of a node's boot).
 */
static void map_l3_entries(uint64_t *table, uint32_t idx, uint32_t entries, const struct xlat_region *mm,
			   uint64_t va, bool lpa2)
{
	uint64_t mm_end = mm->base_va + mm->size - 1U;
	uint64_t last;
	uint32_t end;

	if ((va > mm_end) || (idx >= entries)) {
		return;
	}
	last = (mm_end - va) >> XLAT_GRANULE_SHIFT;	/* entries after the first that the region covers */
	end = ((uint64_t)(entries - idx) <= last) ? entries : (uint32_t)(idx + last + 1U);

	if ((mm->attr & MT_TYPE_MASK) == MT_TRANSIENT) {
		for (; idx < end; idx++) {
			if ((table[idx] & DESC_MASK) == INVALID_DESC) {
				table[idx] = TRANSIENT_DESC;
			}
		}
		return;
	}
	for (; idx < end; idx++, va += XLAT_GRANULE_SIZE) {
		if ((table[idx] & DESC_MASK) == INVALID_DESC) {
			table[idx] = xlat_desc(mm->attr, mm->base_pa + (va - mm->base_va), XLAT_LEVEL_MAX, lpa2);
		}
	}
}

/*
 * Map one region into a table at @level, recursing into (and creating)
 * finer tables where the region does not cover an entry with a block it is
 * allowed to use (TF-RMM lib/xlat/src/xlat_tables_core.c,
 * xlat_tables_map_region() and xlat_tables_map_region_action()).
 */
static void map_region(struct build *b, const struct xlat_region *mm, uint64_t table_base_va,
		       uint64_t table_pa, uint32_t entries, int level)
{
	const struct xlat_ctx *ctx = b->ctx;
	bool lpa2 = ctx_lpa2(ctx);
	bool transient = (mm->attr & MT_TYPE_MASK) == MT_TRANSIENT;
	uint64_t *table = (b->env != NULL) ? build_table(b, table_pa) : NULL;
	uint64_t bs = XLAT_BLOCK_SIZE(level);
	uint64_t mm_end = mm->base_va + mm->size - 1U;
	uint64_t va = (mm->base_va > table_base_va) ? round_down(mm->base_va, bs) : table_base_va;
	uint32_t idx = (uint32_t)((va - table_base_va) >> XLAT_ADDR_SHIFT(level));

	if (level == XLAT_LEVEL_MAX) {
		/* An L3 table creates no table: a dry run has nothing to count here. */
		if (table != NULL) {
			map_l3_entries(table, idx, entries, mm, va, lpa2);
		}
		return;
	}
	for (; idx < entries; idx++, va += bs) {
		uint64_t desc;
		uint64_t pa = mm->base_pa + (va - mm->base_va);
		bool covered = (mm->base_va <= va) && (mm_end >= (va + bs - 1U));
		bool recurse = false;
		bool create = false;

		if (table != NULL) {
			desc = table[idx];
		} else {
			desc = (b->last_table_va[level + 1] == va) ? TABLE_DESC : INVALID_DESC;
		}
		if ((desc & DESC_MASK) == TABLE_DESC) {
			recurse = true;
		} else if ((desc & DESC_MASK) == INVALID_DESC) {
			if (!covered || ((pa & (bs - 1U)) != 0U) || (level < min_block_level(lpa2)) ||
			    (mm->granularity < bs)) {
				create = true;
			} else if (table != NULL) {
				table[idx] = xlat_desc(mm->attr, pa, level, lpa2);
			}
		}
		if (create) {
			uint64_t sub_pa = ctx->tables_pa + (b->next_table * XLAT_TABLE_BYTES);

			b->next_table++;
			b->last_table_va[level + 1] = va;
			if (table != NULL) {
				table[idx] = xlat_table_desc(sub_pa, transient, lpa2);
			}
			map_region(b, mm, va, sub_pa, XLAT_TABLE_ENTRIES, level + 1);
		} else if (recurse) {
			uint64_t sub_pa = (table != NULL) ? xlat_desc_oa(desc, lpa2) : 0U;

			map_region(b, mm, va, sub_pa, XLAT_TABLE_ENTRIES, level + 1);
		}
		if ((va + bs - 1U) >= mm_end) {
			break;
		}
	}
}

static uint64_t build_tables(struct build *b)
{
	const struct xlat_ctx *ctx = b->ctx;

	b->next_table = 1U;	/* table 0 is the base table */
	for (unsigned int l = 0U; l < XLAT_LEVEL_SLOTS; l++) {
		b->last_table_va[l] = UINT64_MAX;
	}
	for (unsigned int i = 0U; i < ctx->nregions; i++) {
		map_region(b, &ctx->regions[i], 0U, ctx->tables_pa,
			   table_entries(ctx, ctx->base_level), ctx->base_level);
	}
	return b->next_table;
}

uint64_t xlat_build_tables(const struct xlat_env *env, const struct xlat_ctx *ctx)
{
	struct build b;

	memset(&b, 0, sizeof(b));
	b.env = env;
	b.ctx = ctx;
	return build_tables(&b);
}
