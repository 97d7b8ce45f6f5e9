/* SPDX-License-Identifier: MIT */
/*
 * Software table walkers: last-level-table lookup, descriptor reads,
 * VA -> PA, and the contiguous-PA walk; see xlat_walk.h.
 */
#include <errno.h>

#include "xlat_desc.h"
#include "xlat_walk.h"

/*
 * table_reachable() - the software walker can reach the table at @table_pa.
 *
 * With the MMU off a table is read at its PA.  With the MMU on and the table
 * array remapped, TF-RMM adds tbls_va_to_pa_diff to every table PA
 * (lib/xlat/src/aarch64/xlat_cmn_arch.h, remap_table_address()) and the
 * CPU reaches it through the mapping of the array, which is one contiguous
 * block: a table outside that block would fault, so it is refused here.
 */
static bool table_reachable(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa)
{
	if ((table_pa & XLAT_GRANULE_MASK) != 0U) {
		return false;
	}
	if ((env->mmu_on != 0U) && ((ctx->flags & XLAT_F_REMAPPED) != 0U)) {
		uint64_t va = table_pa + (uint64_t)ctx->tbls_va_to_pa_diff;

		if ((va < ctx->tbls_va) ||
		    ((va - ctx->tbls_va) >= (ctx->tables_num * XLAT_TABLE_BYTES))) {
			return false;
		}
	}
	return true;
}

const uint64_t *xlat_table_host(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa)
{
	return table_reachable(env, ctx, table_pa) ? (const uint64_t *)pmem_page_rd(&env->mem, table_pa) : NULL;
}

uint64_t *xlat_table_host_wr(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t table_pa)
{
	return table_reachable(env, ctx, table_pa) ? (uint64_t *)pmem_page_wr(&env->mem, table_pa) : NULL;
}

/* By value, so that a caller's loop keeps the span in registers. */
struct xlat_tables_span xlat_tables_span(const struct xlat_env *env, const struct xlat_ctx *ctx)
{
	struct xlat_tables_span span;
	const void *host;

	span.pa = ctx->tables_pa;
	span.bytes = ctx->tables_num * XLAT_TABLE_BYTES;
	host = pmem_span(&env->mem, span.pa, span.bytes);
	span.delta = (uintptr_t)host - (uintptr_t)span.pa;
	if (host == NULL) {
		span.bytes = 0U;
	}
	return span;
}

/*
 * walk_to() - descend from the base table towards @va.
 *
 * Stops at the first entry that is not a table descriptor, or at level 3
 * (TF-RMM find_xlat_last_table()).  Returns -EFAULT for a VA outside the
 * context (including base_va + va_size) or a table address outside memory,
 * and, for a walk that will write, when the host refuses to back a table.
 * A reading walk maps nothing: a table never written is the shared page of
 * zeros (pmem.h), so its entries read as INVALID and must not be written.
 */
static inline int walk_to(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			  struct walk *w, bool write)
{
	const bool lpa2 = ctx_lpa2(ctx);
	const bool remap = (env->mmu_on != 0U) && ((ctx->flags & XLAT_F_REMAPPED) != 0U);
	const uint64_t window = ctx->tables_num * XLAT_TABLE_BYTES;
	const uint64_t diff = (uint64_t)ctx->tbls_va_to_pa_diff;
	uint64_t table_pa = ctx->tables_pa;
	uint64_t base_va = ctx->base_va;
	int level = ctx->base_level;

	if ((va < ctx->base_va) || (((va - ctx->base_va) & ~XLAT_GRANULE_MASK) >= ctx->va_size)) {
		return -EFAULT;
	}
	w->path_transient = true;
	for (;;) {
		uint64_t *table;
		uint32_t entries = table_entries(ctx, level);
		uint32_t idx = (uint32_t)((va - base_va) >> XLAT_ADDR_SHIFT(level));
		uint64_t desc;

		/* Inline xlat_table_host(): the same checks, hoisted where they can be. */
		if (remap && (((table_pa + diff) - ctx->tbls_va) >= window)) {
			return -EFAULT;
		}
		table = write ? (uint64_t *)pmem_page_wr(&env->mem, table_pa) :
			(uint64_t *)(uintptr_t)pmem_page_rd(&env->mem, table_pa);
		if ((table == NULL) || (idx >= entries)) {
			return -EFAULT;
		}
		w->table[level + 1] = table;
		w->idx[level + 1] = idx;
		desc = table[idx];
		if ((level == XLAT_LEVEL_MAX) || ((desc & DESC_MASK) != TABLE_DESC)) {
			w->table_pa = table_pa;
			w->base_va = base_va;
			w->level = level;
			w->entries = entries;
			return 0;
		}
		if ((desc & TRANSIENT_DESC) == 0U) {
			w->path_transient = false;
		}
		table_pa = xlat_desc_oa(desc, lpa2);
		base_va += (uint64_t)idx << XLAT_ADDR_SHIFT(level);
		level++;
	}
}

int xlat_walk_to(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w)
{
	return walk_to(env, ctx, va, w, false);
}

int xlat_walk_to_write(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, struct walk *w)
{
	return walk_to(env, ctx, va, w, true);
}

int xlat_get_llt_from_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			 struct xlat_llt *llt)
{
	struct walk w;
	int ret;

	if ((env == NULL) || !ctx_ready(ctx) || (llt == NULL)) {
		return -EINVAL;
	}
	ret = xlat_walk_to(env, ctx, va, &w);
	if (ret != 0) {
		return ret;
	}
	llt->table_pa = w.table_pa;
	llt->base_va = w.base_va;
	llt->level = w.level;
	llt->entries = w.entries;
	return 0;
}

int xlat_get_tte_pa(const struct xlat_llt *llt, uint64_t va, uint64_t *tte_pa)
{
	uint64_t idx;

	if ((llt == NULL) || (tte_pa == NULL) || (llt->level < XLAT_LEVEL_MIN) ||
	    (llt->level > XLAT_LEVEL_MAX)) {
		return -EINVAL;
	}
	/* TF-RMM xlat_get_tte_ptr() returns NULL in both cases. */
	if (va < llt->base_va) {
		return -EFAULT;
	}
	idx = (va - llt->base_va) >> XLAT_ADDR_SHIFT(llt->level);
	if (idx >= llt->entries) {
		return -EFAULT;
	}
	*tte_pa = llt->table_pa + (idx * sizeof(uint64_t));
	return 0;
}

int xlat_read_desc(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, int level,
		   uint64_t *desc, int32_t *leaf_level)
{
	struct walk w;
	int ret;

	if ((env == NULL) || !ctx_ready(ctx) || (desc == NULL) || (leaf_level == NULL) ||
	    (level < ctx->base_level) || (level > XLAT_LEVEL_MAX)) {
		return -EINVAL;
	}
	ret = xlat_walk_to(env, ctx, va, &w);
	if (ret != 0) {
		return ret;
	}
	*leaf_level = w.level;
	if (level > w.level) {
		return -ENOENT;
	}
	*desc = *walk_entry(&w, level);
	return 0;
}

int xlat_read_l3_range(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
		       uint64_t pages, uint64_t *out)
{
	struct walk w;
	uint64_t i = 0U;

	if ((env == NULL) || !ctx_ready(ctx) || (out == NULL) || ((va & XLAT_GRANULE_MASK) != 0U)) {
		return -EINVAL;
	}
	if ((pages > (ctx->va_size >> XLAT_GRANULE_SHIFT)) ||
	    !xlat_va_in_ctx(ctx, va, pages << XLAT_GRANULE_SHIFT)) {
		return -EFAULT;
	}
	while (i < pages) {
		uint64_t cur = va + (i << XLAT_GRANULE_SHIFT);
		int ret = xlat_walk_to(env, ctx, cur, &w);
		uint32_t idx;

		if (ret != 0) {
			return ret;
		}
		if (w.level != XLAT_LEVEL_MAX) {
			return -ENOENT;
		}
		for (idx = w.idx[XLAT_LEVEL_MAX + 1]; (idx < w.entries) && (i < pages); idx++, i++) {
			out[i] = w.table[XLAT_LEVEL_MAX + 1][idx];
		}
	}
	return 0;
}

static bool leaf_valid(uint64_t desc, int level)
{
	if (level == XLAT_LEVEL_MAX) {
		return (desc & DESC_MASK) == PAGE_DESC;
	}
	return (desc & DESC_MASK) == BLOCK_DESC;
}

int xlat_walk(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, uint64_t *pa,
	      uint64_t *desc, int32_t *level)
{
	struct walk w;
	uint64_t e;
	int ret;

	if ((env == NULL) || !ctx_ready(ctx) || (pa == NULL) || (desc == NULL) || (level == NULL)) {
		return -EINVAL;
	}
	ret = xlat_walk_to(env, ctx, va, &w);
	if (ret != 0) {
		return ret;
	}
	e = *walk_entry(&w, w.level);
	*desc = e;
	*level = w.level;
	*pa = leaf_valid(e, w.level) ?
	      (xlat_desc_oa(e, ctx_lpa2(ctx)) + (va & XLAT_BLOCK_MASK(w.level))) : UINT64_MAX;
	return 0;
}

/*
 * xlat_get_contig_pa_level3() - bytes of valid L3 pages from @va that map
 * consecutive PAs, stopping at @top_va (TF-RMM xlat_get_contig_pa_level3(),
 * 40ee1754).  The TRANSIENT bit is not required.  *pa_out is written only
 * when the result is non-zero.
 */
int xlat_get_contig_pa_level3(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			      uint64_t top_va, uint64_t *pa_out, uint64_t *bytes)
{
	struct walk w;
	uint64_t cur = va;
	uint64_t first_pa = 0U;
	uint64_t next_pa = 0U;
	uint64_t total = 0U;
	bool lpa2;

	if ((env == NULL) || !ctx_ready(ctx) || (pa_out == NULL) || (bytes == NULL) ||
	    ((va & XLAT_GRANULE_MASK) != 0U) || ((top_va & XLAT_GRANULE_MASK) != 0U) ||
	    (top_va <= va)) {
		return -EINVAL;
	}
	lpa2 = ctx_lpa2(ctx);
	while (cur < top_va) {
		uint32_t idx;

		if ((xlat_walk_to(env, ctx, cur, &w) != 0) || (w.level != XLAT_LEVEL_MAX)) {
			break;
		}
		/* One walk per L3 table (TF-RMM xlat_llt_covers_va() caches the LLT likewise, 1768f066). */
		for (idx = w.idx[XLAT_LEVEL_MAX + 1]; (idx < w.entries) && (cur < top_va); idx++) {
			uint64_t e = w.table[XLAT_LEVEL_MAX + 1][idx];
			uint64_t pa = xlat_desc_oa(e, lpa2);

			if (((e & DESC_MASK) != PAGE_DESC) || ((total != 0U) && (pa != next_pa))) {
				goto done;
			}
			if (total == 0U) {
				first_pa = pa;
			}
			next_pa = pa + XLAT_GRANULE_SIZE;
			total += XLAT_GRANULE_SIZE;
			cur += XLAT_GRANULE_SIZE;
		}
	}
done:
	if (total != 0U) {
		*pa_out = first_pa;
	}
	*bytes = total;
	return 0;
}
