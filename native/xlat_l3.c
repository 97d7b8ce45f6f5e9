/* SPDX-License-Identifier: MIT */
/*
 * Runtime L3 API on TRANSIENT ranges (TF-RMM xlat_tables_utils.c, post
 * 56039af8): map, unmap, reserve, populate, commit, decommit, depopulate,
 * unreserve; the bitmap VA allocator that picks VAs; the bit-56 flags of
 * parent table descriptors; and the whole-context check.
 *
 * Every operation runs in two passes: the first checks every page of the
 * range (table present, entry in a state the transition accepts) and
 * writes nothing; the second applies.  So a failing call changes nothing,
 * where TF-RMM asserts or leaves earlier entries changed.
 */
#include <string.h>

#include "xlat_private.h"

enum l3_op {
	OP_MAP,
	OP_UNMAP,
	OP_RESERVE,
	OP_POPULATE,
	OP_COMMIT,
	OP_DECOMMIT,
	OP_DEPOPULATE,
	OP_UNRESERVE,
};

#define S(x) (1U << (x))

/* The L3 entry state machine of spec rmm-lfa 1.9. */
static const struct {
	uint32_t from;	/* states the transition accepts */
	int alloc;	/* +1 allocates the VA, -1 frees it */
	bool tlbi;	/* removes a valid translation */
} op_rules[] = {
	[OP_MAP]	= { S(ST_FREE), 1, false },
	[OP_UNMAP]	= { S(ST_COMMITTED), -1, true },
	[OP_RESERVE]	= { S(ST_FREE), 1, false },
	[OP_POPULATE]	= { S(ST_RESERVED), 0, false },
	[OP_COMMIT]	= { S(ST_POPULATED), 0, false },
	[OP_DECOMMIT]	= { S(ST_COMMITTED), 0, true },
	[OP_DEPOPULATE]	= { S(ST_POPULATED), 0, false },
	[OP_UNRESERVE]	= { S(ST_RESERVED) | S(ST_POPULATED), -1, false },
};

static uint64_t next_desc(enum l3_op op, uint64_t old, uint64_t tmpl, uint64_t pa, bool lpa2)
{
	switch (op) {
	case OP_MAP:
		return tmpl | xlat_oa_encode(pa, lpa2) | TRANSIENT_DESC | VA_ALLOCATED_FLAG;
	case OP_POPULATE:
		/* Valid bit clear, type bit 1 set, OA = PA (TF-RMM 312ea890). */
		return (tmpl | xlat_oa_encode(pa, lpa2) | TRANSIENT_DESC | VA_ALLOCATED_FLAG) &
		       ~DESC_VALID;
	case OP_COMMIT:
		return old | DESC_VALID;
	case OP_DECOMMIT:
		return old & ~DESC_VALID;
	case OP_RESERVE:
	case OP_DEPOPULATE:
		return RESERVED_DESC;
	case OP_UNMAP:
	case OP_UNRESERVE:
	default:
		return TRANSIENT_DESC;
	}
}

int xlat_alloc_view(const struct xlat_env *env, const struct xlat_ctx *ctx, struct va_bitmap *bm)
{
	void *mem;

	if (ctx->alloc_pages == 0U) {
		return -ENOMEM;
	}
	mem = pmem_ptr(&env->mem, ctx->alloc_pa, ctx->alloc_bytes);
	if ((mem == NULL) || (ctx->alloc_bytes != va_bitmap_bytes(ctx->alloc_pages))) {
		return -EFAULT;
	}
	va_bitmap_view(bm, mem, ctx->alloc_pages);
	return 0;
}

static uint64_t page_of(const struct xlat_ctx *ctx, uint64_t va)
{
	return (va - ctx->alloc_va) >> XLAT_GRANULE_SHIFT;
}

static bool in_alloc(const struct xlat_ctx *ctx, uint64_t va)
{
	return (va >= ctx->alloc_va) && (page_of(ctx, va) < ctx->alloc_pages);
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

/* Every TRANSIENT entry of a table has bit 56 (TF-RMM is_table_fully_allocated). */
static bool table_full(const uint64_t *table, uint32_t entries)
{
	for (uint32_t i = 0U; i < entries; i++) {
		if (((table[i] & TRANSIENT_DESC) != 0U) && ((table[i] & VA_ALLOCATED_FLAG) == 0U)) {
			return false;
		}
	}
	return true;
}

static uint32_t level_entries(const struct xlat_ctx *ctx, int level)
{
	return table_entries(ctx, level);
}

/*
 * update_parent_flags() - after the L3 table reached by @w changed, set bit
 * 56 on each table descriptor above it whose child is now full, or clear it
 * when pages were freed (TF-RMM update_parent_flags).  Fullness of the L3
 * table comes from the bitmap (8 words); above that the child table is
 * scanned, which happens only when the level below has just become full.
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
			full = table_full(w->table[l + 1], level_entries(ctx, l));
		}
	}
}

static void tlbi_log(struct xlat_env *env, uint64_t va, uint64_t pages)
{
	struct xlat_tlbi_log *log = &env->tlbi;

	log->pages += pages;
	log->syncs += 1U;
	log->ring[log->head].va = va;
	log->ring[log->head].pages = pages;
	log->head = (log->head + 1U) % XLAT_TLBI_RING;
	if (log->count < XLAT_TLBI_RING) {
		log->count++;
	}
}

static uint64_t chunk_end(uint64_t va)
{
	return round_down(va, XLAT_L3_SPAN) + XLAT_L3_SPAN;
}

/*
 * apply() - run one transition over [va, va + size), all or nothing.
 * Pass 1 returns -EFAULT where no L3 table maps a page and -EPERM where an
 * entry is in a state the transition does not accept.
 */
static int apply(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
		 uint64_t size, uint64_t pa, uint64_t tmpl, const struct va_bitmap *view)
{
	const uint64_t end = va + size;
	const int alloc = op_rules[op].alloc;
	const bool lpa2 = ctx_lpa2(ctx);
	struct va_bitmap bm;
	struct walk w;
	struct walk first;	/* pass 1's walk of the first chunk, reused by pass 2 */
	uint64_t cur;

	if (view != NULL) {
		bm = *view;
	} else if (alloc != 0) {
		int ret = xlat_alloc_view(env, ctx, &bm);

		if (ret != 0) {
			return (ret == -ENOMEM) ? -EPERM : ret;
		}
	}
	for (cur = va; cur < end; cur = chunk_end(cur)) {
		uint64_t stop = (chunk_end(cur) < end) ? chunk_end(cur) : end;
		uint32_t idx;

		if ((xlat_walk_to(env, ctx, cur, &w) != 0) || (w.level != XLAT_LEVEL_MAX)) {
			return -EFAULT;
		}
		if (cur == va) {
			first = w;
		}
		idx = w.idx[XLAT_LEVEL_MAX + 1];
		for (uint64_t p = cur; p < stop; p += XLAT_GRANULE_SIZE, idx++) {
			uint64_t e = w.table[XLAT_LEVEL_MAX + 1][idx];

			if ((S(l3_state(e)) & op_rules[op].from) == 0U) {
				return -EPERM;
			}
			/* Allocation state must be tracked by the bitmap. */
			if ((alloc != 0) && (!w.path_transient || !in_alloc(ctx, p))) {
				return -EPERM;
			}
		}
	}
	for (cur = va; cur < end; cur = chunk_end(cur)) {
		uint64_t stop = (chunk_end(cur) < end) ? chunk_end(cur) : end;
		uint32_t idx;

		if (cur == va) {
			w = first;
		} else {
			(void)xlat_walk_to(env, ctx, cur, &w);	/* succeeded in pass 1 */
		}
		idx = w.idx[XLAT_LEVEL_MAX + 1];
		for (uint64_t p = cur; p < stop; p += XLAT_GRANULE_SIZE, idx++) {
			uint64_t *e = &w.table[XLAT_LEVEL_MAX + 1][idx];

			*e = next_desc(op, *e, tmpl, pa + (p - va), lpa2);
		}
		if (alloc != 0) {
			uint64_t page = page_of(ctx, cur);

			va_bitmap_assign(&bm, page, (stop - cur) >> XLAT_GRANULE_SHIFT, alloc > 0);
			/* A table can only have become full if the last word touched is full. */
			if ((alloc < 0) ||
			    va_bitmap_all_used(&bm, round_down(page_of(ctx, stop - XLAT_GRANULE_SIZE), 64U), 64U)) {
				update_parent_flags(ctx, &w, &bm, round_down(cur, XLAT_L3_SPAN), alloc > 0);
			}
		}
	}
	if (op_rules[op].tlbi) {
		/* TLBI VAE2IS per page, then DSB ISH; ISB; only on success. */
		tlbi_log(env, va, size >> XLAT_GRANULE_SHIFT);
	}
	return 0;
}

static int runtime_ready(const struct xlat_env *env, const struct xlat_ctx *ctx)
{
	if ((env == NULL) || !ctx_ready(ctx)) {
		return -EINVAL;
	}
	/* TF-RMM asserts is_mmu_enabled() in every runtime call. */
	if (env->mmu_on == 0U) {
		return -EACCES;
	}
	return 0;
}

/*
 * find_scan() - TF-RMM's find_available_va (spec rmm-lfa 2.2): lowest-address
 * first fit by scanning descriptors, skipping subtrees whose table
 * descriptor has bit 56 or lacks bit 55.  Kept as the reference the bitmap
 * is measured and cross-checked against.  One fix (spec 2.6): an L3 entry
 * without bit 55 breaks a run instead of counting as free.
 */
static int find_scan(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t n,
		     uint64_t *va_out)
{
	const bool lpa2 = ctx_lpa2(ctx);
	uint64_t off = 0U;
	uint64_t run = 0U;
	uint64_t cand = ctx->base_va;

	while (off < ctx->va_size) {
		uint64_t table_pa = ctx->tables_pa;
		uint64_t tbase = ctx->base_va;
		int level = ctx->base_level;

		for (;;) {
			const uint64_t *table = xlat_table_host(env, ctx, table_pa);
			uint32_t entries = table_entries(ctx, level);
			uint32_t idx = (uint32_t)((ctx->base_va + off - tbase) >> XLAT_ADDR_SHIFT(level));
			uint64_t e;

			if ((table == NULL) || (idx >= entries)) {
				return -EFAULT;
			}
			e = table[idx];
			if (level == XLAT_LEVEL_MAX) {
				for (; idx < entries; idx++) {
					uint64_t page_va = tbase + ((uint64_t)idx << XLAT_GRANULE_SHIFT);

					e = table[idx];
					if (((e & TRANSIENT_DESC) != 0U) && ((e & VA_ALLOCATED_FLAG) == 0U)) {
						if (++run == n) {
							*va_out = cand;
							return 0;
						}
					} else {
						run = 0U;
						cand = page_va + XLAT_GRANULE_SIZE;
					}
				}
				off = tbase + ((uint64_t)entries << XLAT_GRANULE_SHIFT) - ctx->base_va;
				break;
			}
			if (((e & VA_ALLOCATED_FLAG) != 0U) || ((e & TRANSIENT_DESC) == 0U) ||
			    ((e & DESC_MASK) != TABLE_DESC)) {
				off = round_up(off + 1U, XLAT_BLOCK_SIZE(level));
				run = 0U;
				cand = ctx->base_va + off;
				break;
			}
			table_pa = xlat_desc_oa(e, lpa2);
			tbase += (uint64_t)idx << XLAT_ADDR_SHIFT(level);
			level++;
		}
	}
	return -ENOMEM;
}

static int find_va(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
		   uint32_t policy, uint64_t *va)
{
	uint64_t n = size >> XLAT_GRANULE_SHIFT;
	struct va_bitmap bm;
	int64_t first;
	int ret;

	if (policy == XLAT_POLICY_SCAN) {
		return find_scan(env, ctx, n, va);
	}
	ret = xlat_alloc_view(env, ctx, &bm);
	if (ret != 0) {
		return ret;
	}
	first = va_bitmap_find(&bm, n);
	if (first < 0) {
		return -ENOMEM;
	}
	*va = ctx->alloc_va + ((uint64_t)first << XLAT_GRANULE_SHIFT);
	return 0;
}

static bool pa_range_ok(const struct xlat_ctx *ctx, uint64_t pa, uint64_t size)
{
	uint64_t max_pa = ctx_lpa2(ctx) ? XLAT_MAX_PA_LPA2 : XLAT_MAX_PA;

	return ((pa + size) >= pa) && ((pa + size) <= max_pa);
}

/* Argument checks of xlat_map_l3_region, in TF-RMM's order (spec rmm-lfa 1.6). */
static int map_args(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t pa,
		    uint64_t size, uint64_t attr, uint32_t policy, const uint64_t *mapped_va)
{
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	if (((size | pa) & XLAT_GRANULE_MASK) != 0U) {
		return -EFAULT;
	}
	if (size == 0U) {
		return -EINVAL;
	}
	if ((attr & MT_TYPE_MASK) == MT_TRANSIENT) {
		return -EFAULT;
	}
	if (!attr_valid(attr) || (mapped_va == NULL) || (policy > XLAT_POLICY_SCAN)) {
		return -EINVAL;
	}
	return pa_range_ok(ctx, pa, size) ? 0 : -ERANGE;
}

/*
 * map_in_one_table() - apply() for OP_MAP when the bitmap chose the range and
 * it lies in one L3 table: one walk, and only the checks that can fail on
 * corrupted memory.  This is the path that fills the pool.
 */
static int map_in_one_table(struct xlat_env *env, struct xlat_ctx *ctx, struct va_bitmap *bm,
			    uint64_t tmpl, uint64_t pa, uint64_t va, uint64_t size)
{
	const uint64_t n = size >> XLAT_GRANULE_SHIFT;
	const bool lpa2 = ctx_lpa2(ctx);
	struct va_bitmap view = *bm;
	struct walk w;
	uint64_t *e;
	uint64_t page;

	if ((xlat_walk_to(env, ctx, va, &w) != 0) || (w.level != XLAT_LEVEL_MAX) || !w.path_transient) {
		return -EIO;
	}
	e = &w.table[XLAT_LEVEL_MAX + 1][w.idx[XLAT_LEVEL_MAX + 1]];
	for (uint64_t k = 0U; k < n; k++) {
		if (e[k] != TRANSIENT_DESC) {
			return -EIO;
		}
	}
	for (uint64_t k = 0U; k < n; k++) {
		e[k] = tmpl | xlat_oa_encode(pa + (k << XLAT_GRANULE_SHIFT), lpa2) | TRANSIENT_DESC |
		       VA_ALLOCATED_FLAG;
	}
	page = page_of(ctx, va);
	va_bitmap_assign(&view, page, n, true);
	if (view.words[(page + n - 1U) / 64U] == ~0ULL) {
		update_parent_flags(ctx, &w, &view, round_down(va, XLAT_L3_SPAN), true);
	}
	return 0;
}

/* Find a VA and map it; arguments are checked, @bm and @tmpl prepared by the caller. */
static int map_one(struct xlat_env *env, struct xlat_ctx *ctx, struct va_bitmap *bm,
		   uint64_t tmpl, uint64_t pa, uint64_t size, uint32_t policy, uint64_t *mapped_va)
{
	uint64_t va;
	int ret;

	if (policy == XLAT_POLICY_SCAN) {
		ret = find_scan(env, ctx, size >> XLAT_GRANULE_SHIFT, &va);
	} else {
		int64_t first = va_bitmap_find(bm, size >> XLAT_GRANULE_SHIFT);

		ret = (first < 0) ? -ENOMEM : 0;
		va = ctx->alloc_va + ((uint64_t)first << XLAT_GRANULE_SHIFT);
	}
	if (ret != 0) {
		return ret;
	}
	if ((policy == XLAT_POLICY_BITMAP) && (chunk_end(va) >= (va + size))) {
		ret = map_in_one_table(env, ctx, bm, tmpl, pa, va, size);
	} else {
		ret = apply(env, ctx, OP_MAP, va, size, pa, tmpl, bm);
	}
	if (ret != 0) {
		/* The allocator chose pages its tables do not back: corrupted memory. */
		return -EIO;
	}
	*mapped_va = va;
	return 0;
}

static int map_common(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
		      uint64_t attr, uint32_t policy, uint64_t *mapped_va)
{
	struct va_bitmap bm;
	int ret = map_args(env, ctx, pa, size, attr, policy, mapped_va);

	if (ret != 0) {
		return ret;
	}
	ret = xlat_alloc_view(env, ctx, &bm);
	if (ret != 0) {
		return ret;
	}
	return map_one(env, ctx, &bm, xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx)), pa, size,
		       policy, mapped_va);
}

int xlat_map_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
		       uint64_t attr, uint64_t *mapped_va)
{
	return map_common(env, ctx, pa, size, attr, XLAT_POLICY_BITMAP, mapped_va);
}

/* Checks shared by the calls that name a VA range (spec rmm-lfa 1.6). */
static int range_args(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
		      uint64_t size)
{
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	if ((((va | size) & XLAT_GRANULE_MASK) != 0U) || (size == 0U)) {
		return -EINVAL;
	}
	return xlat_va_in_ctx(ctx, va, size) ? 0 : -EFAULT;
}

int xlat_unmap_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size)
{
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	/* TF-RMM asserts size != 0, then -EFAULT for misalignment. */
	if (size == 0U) {
		return -EINVAL;
	}
	if (((va | size) & XLAT_GRANULE_MASK) != 0U) {
		return -EFAULT;
	}
	if (!xlat_va_in_ctx(ctx, va, size)) {
		return -EFAULT;
	}
	return apply(env, ctx, OP_UNMAP, va, size, 0U, 0U, NULL);
}

int xlat_reserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t size,
			      uint64_t *va)
{
	uint64_t found;
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	if (((size & XLAT_GRANULE_MASK) != 0U) || (size == 0U) || (va == NULL)) {
		return -EINVAL;
	}
	ret = find_va(env, ctx, size, XLAT_POLICY_BITMAP, &found);
	if (ret != 0) {
		return ret;
	}
	if (apply(env, ctx, OP_RESERVE, found, size, 0U, 0U, NULL) != 0) {
		return -EIO;
	}
	*va = found;
	return 0;
}

int xlat_populate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t pa, uint64_t size, uint64_t attr)
{
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	if ((((va | pa | size) & XLAT_GRANULE_MASK) != 0U) || (size == 0U) ||
	    ((attr & MT_TYPE_MASK) == MT_TRANSIENT) || !attr_valid(attr)) {
		return -EINVAL;
	}
	if (!pa_range_ok(ctx, pa, size)) {
		return -ERANGE;
	}
	if (!xlat_va_in_ctx(ctx, va, size)) {
		return -EFAULT;
	}
	return apply(env, ctx, OP_POPULATE, va, size, pa,
		     xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx)), NULL);
}

static int range_op(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
		    uint64_t size)
{
	int ret = range_args(env, ctx, va, size);

	return (ret != 0) ? ret : apply(env, ctx, op, va, size, 0U, 0U, NULL);
}

int xlat_commit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size)
{
	return range_op(env, ctx, OP_COMMIT, va, size);
}

int xlat_decommit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t size)
{
	return range_op(env, ctx, OP_DECOMMIT, va, size);
}

int xlat_depopulate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				 uint64_t size)
{
	return range_op(env, ctx, OP_DEPOPULATE, va, size);
}

int xlat_unreserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				uint64_t size)
{
	return range_op(env, ctx, OP_UNRESERVE, va, size);
}

int xlat_map_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *pas,
		      uint64_t n, uint64_t size, uint64_t attr, uint32_t policy,
		      uint64_t *vas, uint64_t *done)
{
	struct va_bitmap bm;
	uint64_t tmpl;
	int ret;

	if ((pas == NULL) || (vas == NULL) || (done == NULL)) {
		return -EINVAL;
	}
	*done = 0U;
	if (n == 0U) {
		return 0;
	}
	/* What every element shares is checked and prepared once. */
	ret = map_args(env, ctx, pas[0], size, attr, policy, vas);
	if (ret != 0) {
		return ret;
	}
	if (xlat_alloc_view(env, ctx, &bm) != 0) {
		return -ENOMEM;
	}
	tmpl = xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx));
	for (uint64_t i = 0U; i < n; i++) {
		if (((pas[i] & XLAT_GRANULE_MASK) != 0U) || !pa_range_ok(ctx, pas[i], size)) {
			return map_args(env, ctx, pas[i], size, attr, policy, &vas[i]);
		}
		ret = map_one(env, ctx, &bm, tmpl, pas[i], size, policy, &vas[i]);
		if (ret != 0) {
			return ret;
		}
		*done = i + 1U;
	}
	return 0;
}

int xlat_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			uint64_t n, uint64_t size, uint64_t *done)
{
	if ((vas == NULL) || (done == NULL)) {
		return -EINVAL;
	}
	*done = 0U;
	for (uint64_t i = 0U; i < n; i++) {
		int ret = xlat_unmap_l3_region(env, ctx, vas[i], size);

		if (ret != 0) {
			return ret;
		}
		*done = i + 1U;
	}
	return 0;
}

int xlat_find_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
		 uint32_t policy, uint64_t *va)
{
	if ((env == NULL) || !ctx_ready(ctx) || (va == NULL) || (policy > XLAT_POLICY_SCAN) ||
	    ((size & XLAT_GRANULE_MASK) != 0U) || (size == 0U)) {
		return -EINVAL;
	}
	return find_va(env, ctx, size, policy, va);
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

			if (l3 && (l3_state(e) == ST_CORRUPT)) {
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

			if (flagged != table_full(w.table[l + 2], level_entries(ctx, l + 1))) {
				return report(rep, XLAT_CHECK_PARENT_FLAG, va, l);
			}
		}
	}
	if (va_bitmap_verify(&bm, &bad) != 0) {
		return report(rep, XLAT_CHECK_SUMMARY, ctx->alloc_va, (int)bad);
	}
	return 0;
}
