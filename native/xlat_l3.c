/* SPDX-License-Identifier: MIT */
/*
 * The runtime L3 transitions; see xlat_l3.h.  The allocator (xlat_alloc.h)
 * picks VAs and records what each transition allocates or frees.
 *
 * Every operation runs in two passes: the first checks every page of the
 * range (table present, entry in a state the transition accepts) and
 * writes nothing; the second applies.  So a failing call changes nothing,
 * where TF-RMM asserts or leaves earlier entries changed (docs/rmm-lfa.md,
 * "What differs from TF-RMM, and why").
 *
 * Kept together as one file although it is long: all eight transitions and
 * the two batches go through apply() and the one op_rules table.
 */
#include <errno.h>

#include "xlat_alloc.h"
#include "xlat_desc.h"
#include "xlat_l3.h"
#include "xlat_walk.h"

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

/*
 * The L3 entry state machine (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * xlat_apply_va_l3_entry()), where TF-RMM's assertions become -EPERM.
 */
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
		return xlat_dyn_desc(tmpl, pa, lpa2, true);
	case OP_POPULATE:
		return xlat_dyn_desc(tmpl, pa, lpa2, false);
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
 * apply() - run one transition over [va, va + size), all or nothing (TF-RMM
 * xlat_apply_va_l3_range() in two passes).  Pass 1 returns -EFAULT where no
 * L3 table maps a page and -EPERM where an entry is in a state the
 * transition does not accept.
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

		if ((xlat_walk_to_write(env, ctx, cur, &w) != 0) || (w.level != XLAT_LEVEL_MAX)) {
			return -EFAULT;
		}
		if (cur == va) {
			first = w;
		}
		idx = w.idx[XLAT_LEVEL_MAX + 1];
		for (uint64_t p = cur; p < stop; p += XLAT_GRANULE_SIZE, idx++) {
			uint64_t e = w.table[XLAT_LEVEL_MAX + 1][idx];

			if ((S(xlat_l3_state(e)) & op_rules[op].from) == 0U) {
				return -EPERM;
			}
			/* Allocation state must be tracked by the bitmap. */
			if ((alloc != 0) && (!w.path_transient || !xlat_alloc_tracks(ctx, p))) {
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
			(void)xlat_walk_to_write(env, ctx, cur, &w);	/* succeeded in pass 1 */
		}
		idx = w.idx[XLAT_LEVEL_MAX + 1];
		for (uint64_t p = cur; p < stop; p += XLAT_GRANULE_SIZE, idx++) {
			uint64_t *e = &w.table[XLAT_LEVEL_MAX + 1][idx];

			*e = next_desc(op, *e, tmpl, pa + (p - va), lpa2);
		}
		if (alloc != 0) {
			xlat_alloc_record(ctx, &bm, &w, cur, (stop - cur) >> XLAT_GRANULE_SHIFT, alloc > 0);
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

static bool pa_range_ok(const struct xlat_ctx *ctx, uint64_t pa, uint64_t size)
{
	uint64_t max_pa = ctx_lpa2(ctx) ? XLAT_MAX_PA_LPA2 : XLAT_MAX_PA;

	return ((pa + size) >= pa) && ((pa + size) <= max_pa);
}

/* Argument checks in the order of TF-RMM xlat_map_l3_region(). */
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
	if (!xlat_attr_valid(attr) || (mapped_va == NULL) || (policy > XLAT_POLICY_SCAN)) {
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
	struct walk w;
	uint64_t *e;

	if ((xlat_walk_to_write(env, ctx, va, &w) != 0) || (w.level != XLAT_LEVEL_MAX) || !w.path_transient) {
		return -EIO;
	}
	e = &w.table[XLAT_LEVEL_MAX + 1][w.idx[XLAT_LEVEL_MAX + 1]];
	for (uint64_t k = 0U; k < n; k++) {
		if (e[k] != TRANSIENT_DESC) {
			return -EIO;
		}
	}
	for (uint64_t k = 0U; k < n; k++) {
		e[k] = xlat_dyn_desc(tmpl, pa + (k << XLAT_GRANULE_SHIFT), lpa2, true);
	}
	xlat_alloc_record(ctx, bm, &w, va, n, true);
	return 0;
}

/* Find a VA and map it; arguments are checked, @bm and @tmpl prepared by the caller. */
static int map_one(struct xlat_env *env, struct xlat_ctx *ctx, struct va_bitmap *bm,
		   uint64_t tmpl, uint64_t pa, uint64_t size, uint32_t policy, uint64_t *mapped_va)
{
	uint64_t va;
	int ret = xlat_alloc_find(env, ctx, bm, size >> XLAT_GRANULE_SHIFT, policy, &va);

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

int xlat_map_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
		       uint64_t attr, uint64_t *mapped_va)
{
	struct va_bitmap bm;
	int ret = map_args(env, ctx, pa, size, attr, XLAT_POLICY_BITMAP, mapped_va);

	if (ret != 0) {
		return ret;
	}
	ret = xlat_alloc_view(env, ctx, &bm);
	if (ret != 0) {
		return ret;
	}
	return map_one(env, ctx, &bm, xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx)), pa, size,
		       XLAT_POLICY_BITMAP, mapped_va);
}

/* Checks shared by the calls that name a VA range (TF-RMM xlat_commit_va_l3_region()). */
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
	ret = xlat_alloc_find(env, ctx, NULL, size >> XLAT_GRANULE_SHIFT, XLAT_POLICY_BITMAP, &found);
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
	    ((attr & MT_TYPE_MASK) == MT_TRANSIENT) || !xlat_attr_valid(attr)) {
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
