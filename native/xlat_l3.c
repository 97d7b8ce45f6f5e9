/* SPDX-License-Identifier: MIT */
/*
 * The runtime L3 transitions; see xlat_l3.h.  The allocator (xlat_alloc.h)
 * picks VAs and records what each transition allocates or frees.
 *
 * Every operation runs in two passes: the first checks every page of the
 * range (table present, entry in a state the transition accepts) and
 * writes nothing; the second applies.  So a failing call changes nothing,
 * where TF-RMM asserts or leaves earlier entries changed (docs/rmm-lfa.md,
 * "What differs from TF-RMM, and why").  Both passes work a whole L3 table
 * at a time (a branch-free check, then a plain write), and a one-page
 * operation takes apply_page(), the same checks without the loops: that
 * is what makes unmap as fast as TF-RMM's single pass or faster
 * (docs/performance.md), with the guarantee kept.
 *
 * Kept together as one file although it is long: all eight transitions and
 * the two batches go through apply() or apply_page() and the one op_rules
 * table.
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

/*
 * An entry is accepted when (e & mask) == value for one of a rule's two
 * pairs: the states of xlat_l3_state() (xlat_desc.h) as masks, so that a
 * whole L3 table is checked in one branch-free pass.  POPULATED and
 * COMMITTED need no "not RESERVED_DESC" test: their type bits are not 0.
 */
struct l3_accept {
	uint64_t mask;
	uint64_t value;
};

#define L3_STATE_BITS	(TRANSIENT_DESC | VA_ALLOCATED_FLAG | DESC_MASK)
#define ACCEPT_FREE		{ ~0ULL, TRANSIENT_DESC }
#define ACCEPT_RESERVED		{ ~0ULL, RESERVED_DESC }
#define ACCEPT_POPULATED	{ L3_STATE_BITS, RESERVED_DESC | (PAGE_DESC & ~DESC_VALID) }
#define ACCEPT_COMMITTED	{ L3_STATE_BITS, RESERVED_DESC | PAGE_DESC }

/*
 * The L3 entry state machine (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * xlat_apply_va_l3_entry()), where TF-RMM's assertions become -EPERM.
 */
static const struct {
	struct l3_accept from[2];	/* states the transition accepts */
	int alloc;	/* +1 allocates the VA, -1 frees it */
	bool tlbi;	/* removes a valid translation */
} op_rules[] = {
	[OP_MAP]	= { { ACCEPT_FREE, ACCEPT_FREE }, 1, false },
	[OP_UNMAP]	= { { ACCEPT_COMMITTED, ACCEPT_COMMITTED }, -1, true },
	[OP_RESERVE]	= { { ACCEPT_FREE, ACCEPT_FREE }, 1, false },
	[OP_POPULATE]	= { { ACCEPT_RESERVED, ACCEPT_RESERVED }, 0, false },
	[OP_COMMIT]	= { { ACCEPT_POPULATED, ACCEPT_POPULATED }, 0, false },
	[OP_DECOMMIT]	= { { ACCEPT_COMMITTED, ACCEPT_COMMITTED }, 0, true },
	[OP_DEPOPULATE]	= { { ACCEPT_POPULATED, ACCEPT_POPULATED }, 0, false },
	[OP_UNRESERVE]	= { { ACCEPT_RESERVED, ACCEPT_POPULATED }, -1, false },
};

/* Every one of the @n entries is in a state @op accepts. */
static bool entries_accepted(enum l3_op op, const uint64_t *e, uint64_t n)
{
	const struct l3_accept a = op_rules[op].from[0];
	const struct l3_accept b = op_rules[op].from[1];
	uint64_t refused = 0U;

	/* No early exit: one pass the compiler vectorises; failures are rare. */
	for (uint64_t k = 0U; k < n; k++) {
		refused |= (uint64_t)(((e[k] & a.mask) != a.value) & ((e[k] & b.mask) != b.value));
	}
	return refused == 0U;
}

/* Write the @n entries from @e on, which map @pa onwards (map and populate). */
static void entries_write(enum l3_op op, uint64_t *e, uint64_t n, uint64_t tmpl, uint64_t pa,
			  bool lpa2)
{
	uint64_t k;

	switch (op) {
	case OP_MAP:
	case OP_POPULATE:
		for (k = 0U; k < n; k++) {
			e[k] = xlat_dyn_desc(tmpl, pa + (k << XLAT_GRANULE_SHIFT), lpa2, op == OP_MAP);
		}
		break;
	case OP_COMMIT:
		for (k = 0U; k < n; k++) {
			e[k] |= DESC_VALID;
		}
		break;
	case OP_DECOMMIT:
		for (k = 0U; k < n; k++) {
			e[k] &= ~DESC_VALID;
		}
		break;
	case OP_RESERVE:
	case OP_DEPOPULATE:
		for (k = 0U; k < n; k++) {
			e[k] = RESERVED_DESC;
		}
		break;
	case OP_UNMAP:
	case OP_UNRESERVE:
	default:
		for (k = 0U; k < n; k++) {
			e[k] = TRANSIENT_DESC;
		}
		break;
	}
}

static uint64_t chunk_end(uint64_t va)
{
	return round_down(va, XLAT_L3_SPAN) + XLAT_L3_SPAN;
}

/*
 * [va, end) lies in pages the bitmap tracks: its first and last page do, the
 * tracked pages being one contiguous range per context (@end is page aligned
 * and above @va).
 */
static bool tracked(const struct xlat_ctx *ctx, uint64_t va, uint64_t end)
{
	return xlat_alloc_tracks(ctx, va) && xlat_alloc_tracks(ctx, end - XLAT_GRANULE_SIZE);
}

/*
 * The bitmap view a transition needs: none when it allocates nothing.  A
 * context without a dynamic range cannot hold a page the transition
 * accepts, hence -EPERM as pass 1 would give.
 */
static int op_view(const struct xlat_env *env, const struct xlat_ctx *ctx, enum l3_op op,
		   struct va_bitmap *bm)
{
	int ret;

	if (op_rules[op].alloc == 0) {
		return 0;
	}
	ret = xlat_alloc_view(env, ctx, bm);
	return (ret == -ENOMEM) ? -EPERM : ret;
}

/*
 * apply_page() - apply() for one page, the element of most batches: the same
 * checks in the same order and the same writes, without the range loops.
 */
static inline int apply_page(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
			     uint64_t pa, uint64_t tmpl, struct va_bitmap *bm, struct l3_cursor *cur)
{
	const int alloc = op_rules[op].alloc;
	struct walk *w;
	uint64_t *e;

	if (l3_cursor_walk(env, ctx, cur, va, &w) != 0) {
		return -EFAULT;
	}
	e = walk_entry(w, XLAT_LEVEL_MAX);
	if (!entries_accepted(op, e, 1U) ||
	    ((alloc != 0) && (!w->path_transient || !tracked(ctx, va, va + XLAT_GRANULE_SIZE)))) {
		return -EPERM;
	}
	entries_write(op, e, 1U, tmpl, pa, ctx_lpa2(ctx));
	if (alloc != 0) {
		xlat_alloc_record(ctx, bm, w, va, 1U, alloc > 0);
	}
	if (op_rules[op].tlbi) {
		xlat_tlbi_log(env, va, 1U);
	}
	return 0;
}

/*
 * apply() - run one transition over [va, va + size), all or nothing (TF-RMM
 * xlat_apply_va_l3_range() in two passes).  Pass 1 returns -EFAULT where no
 * L3 table maps a page and -EPERM where an entry is in a state the
 * transition does not accept, whichever comes first in VA order; it writes
 * nothing.  Pass 2 writes the entries, then the bitmap and parent flags
 * table by table.  @bm is op_view()'s, taken before any walk; @cur is the
 * call's cursor (xlat_walk.h).
 */
static int apply(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
		 uint64_t size, uint64_t pa, uint64_t tmpl, struct va_bitmap *bm,
		 struct l3_cursor *cur)
{
	const uint64_t end = va + size;
	const int alloc = op_rules[op].alloc;
	const bool lpa2 = ctx_lpa2(ctx);
	const bool one_table = chunk_end(va) >= end;
	struct walk first;	/* pass 1's walk of the first table, when there are more */
	struct walk *w;

	if (size == XLAT_GRANULE_SIZE) {
		return apply_page(env, ctx, op, va, pa, tmpl, bm, cur);
	}
	for (uint64_t c = va; c < end; c = chunk_end(c)) {
		uint64_t stop = (chunk_end(c) < end) ? chunk_end(c) : end;

		if (l3_cursor_walk(env, ctx, cur, c, &w) != 0) {
			return -EFAULT;
		}
		if (!entries_accepted(op, walk_entry(w, XLAT_LEVEL_MAX), (stop - c) >> XLAT_GRANULE_SHIFT)) {
			return -EPERM;
		}
		/* Allocation state must be tracked by the bitmap. */
		if ((alloc != 0) && (!w->path_transient || !tracked(ctx, c, stop))) {
			return -EPERM;
		}
		if ((c == va) && !one_table) {
			first = *w;
		}
	}
	for (uint64_t c = va; c < end; c = chunk_end(c)) {
		uint64_t stop = (chunk_end(c) < end) ? chunk_end(c) : end;

		if (one_table) {
			w = &cur->w;	/* pass 1's only walk */
		} else if (c == va) {
			w = &first;
		} else {
			(void)l3_cursor_walk(env, ctx, cur, c, &w);	/* succeeded in pass 1 */
		}
		entries_write(op, walk_entry(w, XLAT_LEVEL_MAX), (stop - c) >> XLAT_GRANULE_SHIFT, tmpl,
			      pa + (c - va), lpa2);
		if (alloc != 0) {
			xlat_alloc_record(ctx, bm, w, c, (stop - c) >> XLAT_GRANULE_SHIFT, alloc > 0);
		}
	}
	if (op_rules[op].tlbi) {
		/* TLBI VAE2IS per page, then DSB ISH; ISB; only on success. */
		xlat_tlbi_log(env, va, size >> XLAT_GRANULE_SHIFT);
	}
	return 0;
}

/* apply() as one call: its own view and cursor. */
static int apply_once(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
		      uint64_t size, uint64_t pa, uint64_t tmpl)
{
	struct va_bitmap bm;
	struct l3_cursor cur;
	int ret = op_view(env, ctx, op, &bm);

	if (ret != 0) {
		return ret;
	}
	l3_cursor_init(&cur);
	return apply(env, ctx, op, va, size, pa, tmpl, &bm, &cur);
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
 * it lies in one L3 table: only the checks that can fail on corrupted
 * memory.  This is the path that fills the pool.
 */
static int map_in_one_table(struct xlat_env *env, struct xlat_ctx *ctx, struct va_bitmap *bm,
			    struct l3_cursor *cur, uint64_t tmpl, uint64_t pa, uint64_t va,
			    uint64_t size)
{
	const uint64_t n = size >> XLAT_GRANULE_SHIFT;
	struct walk *w;
	uint64_t *e;

	if ((l3_cursor_walk(env, ctx, cur, va, &w) != 0) || !w->path_transient) {
		return -EIO;
	}
	e = walk_entry(w, XLAT_LEVEL_MAX);
	if (!entries_accepted(OP_MAP, e, n)) {
		return -EIO;
	}
	entries_write(OP_MAP, e, n, tmpl, pa, ctx_lpa2(ctx));
	xlat_alloc_record(ctx, bm, w, va, n, true);
	return 0;
}

/* Find a VA and map it; arguments are checked, @bm, @cur and @tmpl prepared by the caller. */
static int map_one(struct xlat_env *env, struct xlat_ctx *ctx, struct va_bitmap *bm,
		   struct l3_cursor *cur, uint64_t tmpl, uint64_t pa, uint64_t size, uint32_t policy,
		   uint64_t *mapped_va)
{
	uint64_t va;
	int ret = xlat_alloc_find(env, ctx, bm, size >> XLAT_GRANULE_SHIFT, policy, &va);

	if (ret != 0) {
		return ret;
	}
	if ((policy == XLAT_POLICY_BITMAP) && (chunk_end(va) >= (va + size))) {
		ret = map_in_one_table(env, ctx, bm, cur, tmpl, pa, va, size);
	} else {
		ret = apply(env, ctx, OP_MAP, va, size, pa, tmpl, bm, cur);
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
	struct l3_cursor cur;
	int ret = map_args(env, ctx, pa, size, attr, XLAT_POLICY_BITMAP, mapped_va);

	if (ret != 0) {
		return ret;
	}
	ret = xlat_alloc_view(env, ctx, &bm);
	if (ret != 0) {
		return ret;
	}
	l3_cursor_init(&cur);
	return map_one(env, ctx, &bm, &cur, xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx)), pa,
		       size, XLAT_POLICY_BITMAP, mapped_va);
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

/* The checks of TF-RMM xlat_unmap_l3_region() that do not depend on the VA. */
static int unmap_size_args(const struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size)
{
	int ret = runtime_ready(env, ctx);

	if (ret != 0) {
		return ret;
	}
	/* TF-RMM asserts size != 0, then -EFAULT for misalignment. */
	if (size == 0U) {
		return -EINVAL;
	}
	return ((size & XLAT_GRANULE_MASK) != 0U) ? -EFAULT : 0;
}

/* ... and those that do, after them. */
static int unmap_va_args(const struct xlat_ctx *ctx, uint64_t va, uint64_t size)
{
	if (((va & XLAT_GRANULE_MASK) != 0U) || !xlat_va_in_ctx(ctx, va, size)) {
		return -EFAULT;
	}
	return 0;
}

int xlat_unmap_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size)
{
	int ret = unmap_size_args(env, ctx, size);

	if (ret == 0) {
		ret = unmap_va_args(ctx, va, size);
	}
	return (ret != 0) ? ret : apply_once(env, ctx, OP_UNMAP, va, size, 0U, 0U);
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
	if (apply_once(env, ctx, OP_RESERVE, found, size, 0U, 0U) != 0) {
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
	return apply_once(env, ctx, OP_POPULATE, va, size, pa,
			  xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx)));
}

static int range_op(struct xlat_env *env, struct xlat_ctx *ctx, enum l3_op op, uint64_t va,
		    uint64_t size)
{
	int ret = range_args(env, ctx, va, size);

	return (ret != 0) ? ret : apply_once(env, ctx, op, va, size, 0U, 0U);
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
	struct l3_cursor cur;
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
	l3_cursor_init(&cur);
	tmpl = xlat_desc(attr, 0U, XLAT_LEVEL_MAX, ctx_lpa2(ctx));
	for (uint64_t i = 0U; i < n; i++) {
		if (((pas[i] & XLAT_GRANULE_MASK) != 0U) || !pa_range_ok(ctx, pas[i], size)) {
			return map_args(env, ctx, pas[i], size, attr, policy, &vas[i]);
		}
		ret = map_one(env, ctx, &bm, &cur, tmpl, pas[i], size, policy, &vas[i]);
		if (ret != 0) {
			return ret;
		}
		*done = i + 1U;
	}
	return 0;
}

/*
 * Each element is one xlat_unmap_l3_region() (its own checks, all or
 * nothing, its own TLBI and DSB), with the checks that do not depend on
 * the VA, the bitmap view and the walk to each L3 table done once.
 */
int xlat_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			uint64_t n, uint64_t size, uint64_t *done)
{
	struct va_bitmap bm;
	struct l3_cursor cur;
	int view;
	int ret;

	if ((vas == NULL) || (done == NULL)) {
		return -EINVAL;
	}
	*done = 0U;
	if (n == 0U) {
		return 0;
	}
	ret = unmap_size_args(env, ctx, size);
	if (ret != 0) {
		return ret;
	}
	view = op_view(env, ctx, OP_UNMAP, &bm);
	l3_cursor_init(&cur);
	for (uint64_t i = 0U; i < n; i++) {
		ret = unmap_va_args(ctx, vas[i], size);
		if ((ret == 0) && (view != 0)) {
			ret = view;
		}
		if (ret == 0) {
			/* One page, the common batch: apply_page() inlined here. */
			ret = (size == XLAT_GRANULE_SIZE) ?
			      apply_page(env, ctx, OP_UNMAP, vas[i], 0U, 0U, &bm, &cur) :
			      apply(env, ctx, OP_UNMAP, vas[i], size, 0U, 0U, &bm, &cur);
		}
		if (ret != 0) {
			return ret;
		}
		*done = i + 1U;
	}
	return 0;
}
