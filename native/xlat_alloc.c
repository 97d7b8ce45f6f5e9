/* SPDX-License-Identifier: MIT */
/*
 * The VA allocator: bitmap view and initialisation, parent flags, search
 * policies, statistics and the whole-context check; see xlat_alloc.h.
 *
 * Searches and checks only read: the summary tree's pending leaf is folded
 * in on the fly (va_bitmap.h), so a call that fails after a search has
 * written nothing.
 */
#include <errno.h>
#include <string.h>

#include "xlat_alloc.h"
#include "xlat_desc.h"

int xlat_alloc_view(const struct xlat_env *env, const struct xlat_ctx *ctx, struct va_bitmap *bm)
{
	void *mem;

	if (ctx->alloc_pages == 0U) {
		return -ENOMEM;
	}
	if ((ctx->alloc_pages > VA_BITMAP_MAX_PAGES) ||
	    (ctx->alloc_bytes != va_bitmap_bytes(ctx->alloc_pages))) {
		return -EFAULT;
	}
	/*
	 * The one range the core needs contiguous beyond a page: backing it may
	 * move windows (pmem.h), so every caller takes the view before any
	 * table pointer.  -EFAULT also when the host refuses to back it.
	 */
	mem = pmem_wr(&env->mem, ctx->alloc_pa, ctx->alloc_bytes);
	if (mem == NULL) {
		return -EFAULT;
	}
	va_bitmap_view(bm, mem, ctx->alloc_pages);
	return 0;
}

static uint64_t page_of(const struct xlat_ctx *ctx, uint64_t va)
{
	return (va - ctx->alloc_va) >> XLAT_GRANULE_SHIFT;
}

bool xlat_alloc_tracks(const struct xlat_ctx *ctx, uint64_t va)
{
	return (va >= ctx->alloc_va) && (page_of(ctx, va) < ctx->alloc_pages);
}

/* An L3 entry the allocator may hand out: free, under tables that all carry bit 55. */
static bool l3_free(bool path_transient, uint64_t e)
{
	return path_transient && xlat_desc_va_free(e);
}

/*
 * xlat_alloc_init() - build the bitmap from freshly built tables: a page is
 * free when its L3 entry is TRANSIENT and unallocated under table
 * descriptors that all carry bit 55 (the subtrees TF-RMM's search enters).
 */
void xlat_alloc_init(struct xlat_env *env, const struct xlat_ctx *ctx)
{
	struct va_bitmap bm;

	if (xlat_alloc_view(env, ctx, &bm) != 0) {
		return;
	}
	va_bitmap_fill(&bm);
	for (uint64_t chunk = 0U; chunk < (ctx->alloc_pages / XLAT_PAGES_PER_L3); chunk++) {
		uint64_t va = ctx->alloc_va + (chunk * XLAT_L3_SPAN);
		struct walk w;

		if ((xlat_walk_to(env, ctx, va, &w) != 0) || (w.level != XLAT_LEVEL_MAX)) {
			continue;
		}
		for (uint32_t i = 0U; i < XLAT_PAGES_PER_L3; i++) {
			uint64_t page = (chunk * XLAT_PAGES_PER_L3) + i;

			if (l3_free(w.path_transient, w.table[XLAT_LEVEL_MAX + 1][i])) {
				bm.words[page / 64U] &= ~(1ULL << (page % 64U));
			}
		}
	}
	va_bitmap_rebuild(&bm);
}

/*
 * Every TRANSIENT entry of a table has bit 56 (TF-RMM
 * lib/xlat/src/xlat_tables_utils.c, is_table_fully_allocated()).
 */
static bool table_full(const uint64_t *table, uint32_t entries)
{
	for (uint32_t i = 0U; i < entries; i++) {
		if (xlat_desc_va_free(table[i])) {
			return false;
		}
	}
	return true;
}

/*
 * update_parent_flags() - after the L3 table reached by @w changed, set bit
 * 56 on each table descriptor above it whose child is now full, or clear it
 * when pages were freed (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * update_parent_flags()).  Fullness of the L3 table comes from the bitmap
 * (8 words); above that the child table is scanned, which happens only when
 * the level below has just become full.
 */
static void update_parent_flags(const struct xlat_ctx *ctx, struct walk *w,
				const struct va_bitmap *bm, uint64_t chunk_va, bool allocating)
{
	bool full;

	if (!allocating) {
		for (int l = XLAT_LEVEL_MAX - 1; l >= ctx->base_level; l--) {
			*walk_entry(w, l) &= ~VA_ALLOCATED_FLAG;
		}
		return;
	}
	/* The last word is the one most likely still free: test it first. */
	full = va_bitmap_all_used(bm, page_of(ctx, chunk_va), XLAT_PAGES_PER_L3);
	for (int l = XLAT_LEVEL_MAX - 1; (l >= ctx->base_level) && full; l--) {
		*walk_entry(w, l) |= VA_ALLOCATED_FLAG;
		if (l > ctx->base_level) {
			full = table_full(w->table[l + 1], table_entries(ctx, l));
		}
	}
}

void xlat_alloc_record(const struct xlat_ctx *ctx, struct va_bitmap *bm, struct walk *w,
		       uint64_t va, uint64_t pages, bool allocating)
{
	const uint64_t first = page_of(ctx, va);
	const uint64_t last = first + pages - 1U;

	va_bitmap_assign(bm, first, pages, allocating);
	/* A table can only have become full if the word of the last page touched is full. */
	if (!allocating || (bm->words[last / 64U] == ~0ULL)) {
		update_parent_flags(ctx, w, bm, round_down(va, XLAT_L3_SPAN), allocating);
	}
}

/*
 * scan() - TF-RMM's search (lib/xlat/src/xlat_tables_utils.c,
 * find_available_va()), step for step: for each 2 MB from the context's
 * base, descend from the root; skip a subtree whose descriptor has bit 56
 * or lacks bit 55 (a table at levels 0-2, a page at level 3), restarting
 * the run after it; from the first free L3 entry scan the table to its
 * end, the run carrying over into the next table; lowest-address first
 * fit.  Kept as the reference the bitmap is measured and cross-checked
 * against.  One fix (docs/rmm-lfa.md, "What differs from TF-RMM, and
 * why"): an L3 entry without bit 55 breaks a run instead of counting as
 * free.  Where TF-RMM asserts, a table outside memory gives -EFAULT, and a
 * free TRANSIENT block or invalid entry above level 3 (a region not built
 * down to L3) is skipped like a full one.
 */
static inline __attribute__((always_inline)) int
scan(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t n, uint64_t *va_out, bool lpa2)
{
	/* A free transient table descriptor: bit 55, not bit 56, type TABLE. */
	const uint64_t table_mask = TRANSIENT_DESC | VA_ALLOCATED_FLAG | DESC_MASK;
	const uint64_t free_table = TRANSIENT_DESC | TABLE_DESC;
	const uint64_t va_base = ctx->base_va;
	const int start_level = ctx->base_level;
	const uint64_t l3_entries = table_entries(ctx, XLAT_LEVEL_MAX);
	const struct xlat_tables_span span = xlat_tables_span(env, ctx);
	const uint64_t *root;
	uint64_t va_offset = 0U;
	uint64_t consecutive_free = 0U;
	uint64_t candidate_va = va_base;

	root = xlat_table_host(env, ctx, ctx->tables_pa);
	if (root == NULL) {
		return -EFAULT;
	}
	while (va_offset < ctx->va_size) {
		const uint64_t *table = root;
		uint64_t table_base_va_offset = 0U;
		uint64_t skip_size = 0U;
		uint64_t idx;

		/*
		 * The index needs no bound: va_offset < va_size bounds the base
		 * table's, and every other table has 512 entries.
		 */
		for (int level = start_level; level < XLAT_LEVEL_MAX; level++) {
			uint64_t desc;
			uint64_t next;

			idx = ((va_offset - table_base_va_offset) >> XLAT_ADDR_SHIFT(level)) &
			      (XLAT_TABLE_ENTRIES - 1U);
			desc = table[idx];
			if ((desc & table_mask) != free_table) {
				skip_size = XLAT_BLOCK_SIZE(level);
				break;
			}
			table_base_va_offset += idx << XLAT_ADDR_SHIFT(level);
			next = xlat_desc_oa(desc, lpa2);
			if (xlat_span_holds(&span, next)) {
				table = xlat_span_table(&span, next);
			} else {
				table = xlat_table_host(env, ctx, next);
				if (table == NULL) {
					return -EFAULT;
				}
			}
		}
		if (skip_size == 0U) {
			const uint64_t l3_base_va = va_base + round_down(va_offset, XLAT_L3_SPAN);

			idx = (va_offset >> XLAT_GRANULE_SHIFT) & (XLAT_TABLE_ENTRIES - 1U);
			if (!xlat_desc_va_free(table[idx])) {
				skip_size = XLAT_GRANULE_SIZE;
			} else {
				for (uint64_t i = idx; i < l3_entries; i++) {
					uint64_t page_va = l3_base_va + (i << XLAT_GRANULE_SHIFT);

					if (xlat_desc_va_free(table[i])) {
						if (++consecutive_free >= n) {
							*va_out = candidate_va;
							return 0;
						}
					} else {
						consecutive_free = 0U;
						candidate_va = page_va + XLAT_GRANULE_SIZE;
					}
				}
				va_offset = round_up(va_offset + 1U, XLAT_L3_SPAN);
				continue;
			}
		}
		consecutive_free = 0U;
		va_offset = round_up(va_offset + 1U, skip_size);
		candidate_va = va_base + va_offset;
	}
	return -ENOMEM;
}

/*
 * scan() with @lpa2 a constant, one copy each: the OA decoding then costs
 * no test per level, which is worth a fifth of the scan's time.
 */
static int find_scan(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t n,
		     uint64_t *va_out)
{
	return ctx_lpa2(ctx) ? scan(env, ctx, n, va_out, true) : scan(env, ctx, n, va_out, false);
}

int xlat_alloc_find(const struct xlat_env *env, const struct xlat_ctx *ctx,
		    const struct va_bitmap *bm, uint64_t pages, uint32_t policy, uint64_t *va)
{
	struct va_bitmap own;
	int64_t first;

	if (policy == XLAT_POLICY_SCAN) {
		return find_scan(env, ctx, pages, va);
	}
	if (bm == NULL) {
		int ret = xlat_alloc_view(env, ctx, &own);

		if (ret != 0) {
			return ret;
		}
		bm = &own;
	}
	first = va_bitmap_find(bm, pages);
	if (first < 0) {
		return -ENOMEM;
	}
	*va = ctx->alloc_va + ((uint64_t)first << XLAT_GRANULE_SHIFT);
	return 0;
}

/*
 * xlat_find_va() - the query.  A successful bitmap search also writes the
 * summary tree up to date (no bit changes), so that repeated queries do not
 * fold the pending leaf in again each time; a failing one writes nothing.
 */
int xlat_find_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
		 uint32_t policy, uint64_t *va)
{
	struct va_bitmap bm;
	int ret;

	if ((env == NULL) || !ctx_ready(ctx) || (va == NULL) || (policy > XLAT_POLICY_SCAN) ||
	    ((size & XLAT_GRANULE_MASK) != 0U) || (size == 0U)) {
		return -EINVAL;
	}
	if (policy == XLAT_POLICY_SCAN) {
		return xlat_alloc_find(env, ctx, NULL, size >> XLAT_GRANULE_SHIFT, policy, va);
	}
	ret = xlat_alloc_view(env, ctx, &bm);
	if (ret == 0) {
		ret = xlat_alloc_find(env, ctx, &bm, size >> XLAT_GRANULE_SHIFT, policy, va);
	}
	if (ret == 0) {
		va_bitmap_flush(&bm);
	}
	return ret;
}

int xlat_find_va_repeat(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
			uint32_t policy, uint64_t reps, uint64_t *va)
{
	int ret = -EINVAL;

	for (uint64_t i = 0U; i < reps; i++) {
		ret = xlat_find_va(env, ctx, size, policy, va);
	}
	return ret;
}

int xlat_alloc_stats(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t *free_pages,
		     uint64_t *longest_run)
{
	struct va_bitmap bm;

	if ((env == NULL) || !ctx_ready(ctx) || (free_pages == NULL) || (longest_run == NULL)) {
		return -EINVAL;
	}
	if (xlat_alloc_view(env, ctx, &bm) != 0) {
		*free_pages = 0U;
		*longest_run = 0U;
		return 0;
	}
	*free_pages = va_bitmap_free(&bm);
	*longest_run = va_bitmap_longest(&bm);
	return 0;
}

static int report(struct xlat_check_report *rep, uint32_t what, uint64_t va, int level)
{
	rep->what = what;
	rep->va = va;
	rep->level = level;
	return -EIO;
}

/*
 * xlat_check() - verify the whole pool: every dynamic entry is in a valid
 * state, the bitmap agrees with descriptor bit 56 page for page, the
 * summary tree agrees with the bitmap, and every transient table
 * descriptor on the way has bit 56 exactly when its child table is full.
 */
int xlat_check(struct xlat_env *env, const struct xlat_ctx *ctx, struct xlat_check_report *rep)
{
	struct va_bitmap bm;
	uint64_t bad;

	if ((env == NULL) || (ctx == NULL) || (rep == NULL)) {
		return -EINVAL;
	}
	memset(rep, 0, sizeof(*rep));
	if (xlat_ctx_validate(env, ctx) != 0) {
		return report(rep, XLAT_CHECK_BAD_CONTEXT, 0U, 0);
	}
	if (xlat_alloc_view(env, ctx, &bm) != 0) {
		return 0;	/* no dynamic range */
	}
	for (uint64_t chunk = 0U; chunk < (ctx->alloc_pages / XLAT_PAGES_PER_L3); chunk++) {
		uint64_t va = ctx->alloc_va + (chunk * XLAT_L3_SPAN);
		bool l3;
		struct walk w;

		if (xlat_walk_to(env, ctx, va, &w) != 0) {
			return report(rep, XLAT_CHECK_BAD_TABLE, va, 0);
		}
		l3 = (w.level == XLAT_LEVEL_MAX);
		for (uint32_t i = 0U; i < XLAT_PAGES_PER_L3; i++) {
			uint64_t page = (chunk * XLAT_PAGES_PER_L3) + i;
			uint64_t e = l3 ? w.table[XLAT_LEVEL_MAX + 1][i] : 0U;
			bool free_page = l3 && l3_free(w.path_transient, e);
			uint64_t page_va = va + ((uint64_t)i << XLAT_GRANULE_SHIFT);

			if (l3 && (xlat_l3_state(e) == ST_CORRUPT)) {
				return report(rep, XLAT_CHECK_BAD_ENTRY, page_va, XLAT_LEVEL_MAX);
			}
			if (va_bitmap_used(&bm, page) == free_page) {
				return report(rep, XLAT_CHECK_BITMAP_MISMATCH, page_va, XLAT_LEVEL_MAX);
			}
		}
		if (!l3 || !w.path_transient) {
			continue;
		}
		for (int l = XLAT_LEVEL_MAX - 1; l >= ctx->base_level; l--) {
			bool flagged = (*walk_entry(&w, l) & VA_ALLOCATED_FLAG) != 0U;

			if (flagged != table_full(w.table[l + 2], table_entries(ctx, l + 1))) {
				return report(rep, XLAT_CHECK_PARENT_FLAG, va, l);
			}
		}
	}
	if (va_bitmap_verify(&bm, &bad) != 0) {
		return report(rep, XLAT_CHECK_SUMMARY, ctx->alloc_va, (int)bad);
	}
	return 0;
}
