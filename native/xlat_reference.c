/* SPDX-License-Identifier: MIT */
/*
 * TF-RMM's unmap as TF-RMM runs it, for measuring lfafs's against; see
 * xlat_reference.h.  The structure follows lib/xlat/src/xlat_tables_utils.c
 * (xlat_unmap_l3_region(), xlat_apply_va_l3_range(), update_parent_flags(),
 * is_table_fully_allocated()) step for step, so that the cost is TF-RMM's:
 * tables are reached with one addition (xlat_walk.h, the table span) as
 * TF-RMM's remap_table_address() does.
 */
#define _POSIX_C_SOURCE 199309L	/* clock_gettime() */

#include <errno.h>
#include <time.h>

#include "xlat_alloc.h"
#include "xlat_desc.h"
#include "xlat_reference.h"
#include "xlat_walk.h"

/* TF-RMM's enum xlat_va_l3_op. */
enum tfrmm_op {
	TFRMM_MAP,
	TFRMM_UNMAP,
	TFRMM_RESERVE,
	TFRMM_POPULATE,
	TFRMM_COMMIT,
	TFRMM_DECOMMIT,
	TFRMM_DEPOPULATE,
	TFRMM_UNRESERVE,
};

/* TF-RMM's walks, with the table span of the call. */
struct tfrmm {
	struct xlat_env *env;
	struct xlat_ctx *ctx;
	struct xlat_tables_span span;
	uint64_t *root;
	bool lpa2;
	/*
	 * TFRMM_UNMAP, the one transition run here.  Volatile, so that the
	 * compiler cannot fold it: TF-RMM's apply code is shared by all eight
	 * transitions and dispatches on it per entry, and scans child tables
	 * for the parent flags whether or not the transition allocates.
	 */
	volatile enum tfrmm_op unmap;
};

static uint64_t *table_of(const struct tfrmm *t, uint64_t desc)
{
	const uint64_t pa = xlat_desc_oa(desc, t->lpa2);

	if (xlat_span_holds(&t->span, pa)) {
		return xlat_span_table(&t->span, pa);
	}
	return xlat_table_host_wr(t->env, t->ctx, pa);
}

static uint64_t table_idx(uint64_t va_offset, int level)
{
	return (va_offset >> XLAT_ADDR_SHIFT(level)) & (XLAT_TABLE_ENTRIES - 1U);
}

/* The last-level table of a VA (TF-RMM struct xlat_llt_info). */
struct llt {
	uint64_t *table;
	uint64_t base_va;	/* VA of entry 0 */
	int level;
};

/*
 * xlat_get_llt_from_va() and find_xlat_last_table(): the last-level table
 * for @va, or -EFAULT outside the context or memory.  Out of line, as
 * TF-RMM's is a function of its API: @llt lives in memory, and the range
 * loop reads it from there for every entry.
 */
static __attribute__((noinline)) int get_llt(const struct tfrmm *t, uint64_t va, struct llt *llt)
{
	uint64_t va_offset;
	uint64_t *table = t->root;
	uint64_t table_base_va = t->ctx->base_va;

	if (va < t->ctx->base_va) {
		return -EFAULT;
	}
	va_offset = (va - t->ctx->base_va) & ~XLAT_GRANULE_MASK;
	if (va_offset >= t->ctx->va_size) {
		return -EFAULT;
	}
	for (int l = t->ctx->base_level; l <= XLAT_LEVEL_MAX; l++) {
		uint64_t idx = table_idx(va_offset, l);
		uint64_t desc = table[idx];

		if (((desc & DESC_MASK) != TABLE_DESC) || (l == XLAT_LEVEL_MAX)) {
			llt->table = table;
			llt->level = l;
			llt->base_va = table_base_va;
			return 0;
		}
		table_base_va += XLAT_BLOCK_SIZE(l) * idx;
		table = table_of(t, desc);
		if (table == NULL) {
			return -EFAULT;
		}
	}
	return -EFAULT;
}

/* is_table_fully_allocated(): every TRANSIENT entry has bit 56. */
static bool fully_allocated(const uint64_t *table, uint32_t entries)
{
	for (uint32_t i = 0U; i < entries; i++) {
		if (((table[i] & TRANSIENT_DESC) != 0U) && ((table[i] & VA_ALLOCATED_FLAG) == 0U)) {
			return false;
		}
	}
	return true;
}

/*
 * update_parent_flags() after a change in the L3 table at @l3_va: for each
 * level from 2 up to the base, walk from the root to that level's table,
 * scan the child table, and set bit 56 of the entry pointing at it if the
 * child is full and the change allocated, else clear it.  A walk that
 * fails, where TF-RMM asserts, stops it.
 */
static void update_parent_flags(const struct tfrmm *t, uint64_t l3_va, bool allocating)
{
	const uint64_t va_offset = l3_va - t->ctx->base_va;
	const int start_level = t->ctx->base_level;

	for (int level = XLAT_LEVEL_MAX - 1; level >= start_level; level--) {
		uint64_t *table = t->root;
		uint64_t *parent;
		const uint64_t *child;
		bool full;

		for (int l = start_level; (l < level) && (table != NULL); l++) {
			uint64_t desc = table[table_idx(va_offset, l)];

			table = ((desc & DESC_MASK) == TABLE_DESC) ? table_of(t, desc) : NULL;
		}
		if (table == NULL) {
			return;
		}
		parent = &table[table_idx(va_offset, level)];
		if ((*parent & DESC_MASK) != TABLE_DESC) {
			return;
		}
		child = table_of(t, *parent);
		if (child == NULL) {
			return;
		}
		full = fully_allocated(child, table_entries(t->ctx, level + 1));
		if (full && allocating) {
			*parent |= VA_ALLOCATED_FLAG;
		} else if ((*parent & VA_ALLOCATED_FLAG) != 0U) {
			*parent &= ~VA_ALLOCATED_FLAG;
		}
	}
}

#define ALLOCATED	(TRANSIENT_DESC | VA_ALLOCATED_FLAG)

/*
 * xlat_apply_va_l3_entry(): one entry's transition, whole, so that the
 * compiler dispatches on @op per entry as it does for TF-RMM.  Returns
 * false, writing nothing, where TF-RMM asserts.
 */
static bool apply_entry(enum tfrmm_op op, uint64_t *tte, uint64_t pa, uint64_t attr, bool lpa2)
{
	const uint64_t desc = *tte;

	switch (op) {
	case TFRMM_MAP:
		if (desc != TRANSIENT_DESC) {
			return false;
		}
		*tte = xlat_desc(attr, pa, XLAT_LEVEL_MAX, lpa2) | ALLOCATED;
		return true;
	case TFRMM_UNMAP:
		if ((desc & (ALLOCATED | DESC_VALID)) != (ALLOCATED | DESC_VALID)) {
			return false;
		}
		*tte = TRANSIENT_DESC;
		return true;
	case TFRMM_RESERVE:
		if (desc != TRANSIENT_DESC) {
			return false;
		}
		*tte = ALLOCATED;
		return true;
	case TFRMM_POPULATE:
		if ((desc & (ALLOCATED | DESC_VALID)) != ALLOCATED) {
			return false;
		}
		*tte = (xlat_desc(attr, pa, XLAT_LEVEL_MAX, lpa2) & ~DESC_VALID) | ALLOCATED;
		return true;
	case TFRMM_COMMIT:
		if (((desc & (ALLOCATED | DESC_VALID)) != ALLOCATED) ||
		    ((desc & DESC_MASK) != (PAGE_DESC & ~DESC_VALID))) {
			return false;
		}
		*tte = desc | DESC_VALID;
		return true;
	case TFRMM_DECOMMIT:
		if ((desc & (ALLOCATED | DESC_VALID)) != (ALLOCATED | DESC_VALID)) {
			return false;
		}
		*tte = desc & ~DESC_VALID;
		return true;
	case TFRMM_DEPOPULATE:
		if (((desc & (ALLOCATED | DESC_VALID)) != ALLOCATED) ||
		    ((desc & DESC_MASK) != (PAGE_DESC & ~DESC_VALID))) {
			return false;
		}
		*tte = ALLOCATED;
		return true;
	case TFRMM_UNRESERVE:
		if ((desc & (ALLOCATED | DESC_VALID)) != ALLOCATED) {
			return false;
		}
		*tte = TRANSIENT_DESC;
		return true;
	default:
		return false;
	}
}

/* xlat_llt_covers_va() */
static bool llt_covers(const struct llt *llt, uint64_t va)
{
	const uint64_t entries = (llt->level == XLAT_LEVEL_MIN) ? XLAT_LPA2_L_1_ENTRIES : XLAT_TABLE_ENTRIES;

	return (va >= llt->base_va) && ((va - llt->base_va) < (entries * XLAT_BLOCK_SIZE(llt->level)));
}

/*
 * xlat_apply_va_l3_range(): one pass, entry by entry, the L3 table looked
 * up again whenever the range leaves it, and parent flags updated for each
 * table left and the last.  An entry TF-RMM asserts on stops it with
 * -EPERM, after its table's parent flags.
 */
static int apply_range(const struct tfrmm *t, uint64_t va, uint64_t pa, uint64_t size, uint64_t attr,
		       enum tfrmm_op op)
{
	const uint64_t end_va = va + size;
	const bool update_flags = (op == TFRMM_MAP) || (op == TFRMM_UNMAP) || (op == TFRMM_RESERVE) ||
				  (op == TFRMM_UNRESERVE);
	const bool allocating = (op == TFRMM_MAP) || (op == TFRMM_RESERVE);
	struct llt llt = { NULL, 0U, 0 };
	uint64_t cur_pa = pa;

	for (uint64_t cur_va = va; cur_va < end_va; cur_va += XLAT_GRANULE_SIZE) {
		uint64_t idx;

		if ((llt.table == NULL) || !llt_covers(&llt, cur_va)) {
			if ((llt.table != NULL) && update_flags) {
				update_parent_flags(t, llt.base_va, allocating);
			}
			if ((get_llt(t, cur_va, &llt) != 0) || (llt.level != XLAT_LEVEL_MAX)) {
				return -EFAULT;
			}
		}
		idx = (cur_va - llt.base_va) >> XLAT_ADDR_SHIFT(XLAT_LEVEL_MAX);
		if (!apply_entry(op, &llt.table[idx], cur_pa, attr, t->lpa2)) {
			if (update_flags) {
				update_parent_flags(t, llt.base_va, allocating);
			}
			return -EPERM;
		}
		if ((op == TFRMM_MAP) || (op == TFRMM_POPULATE)) {
			cur_pa += XLAT_GRANULE_SIZE;
		}
	}
	if ((llt.table != NULL) && update_flags) {
		update_parent_flags(t, llt.base_va, allocating);
	}
	return 0;
}

/*
 * xlat_unmap_l3_region(): the arguments, the pass, then TLBI for the whole
 * range whatever happened.
 */
static int unmap_region(const struct tfrmm *t, uint64_t va, uint64_t size)
{
	int ret;

	if (size == 0U) {
		return -EINVAL;
	}
	if (((va | size) & XLAT_GRANULE_MASK) != 0U) {
		return -EFAULT;
	}
	ret = apply_range(t, va, 0U, size, 0U, t->unmap);
	xlat_tlbi_log(t->env, va, size >> XLAT_GRANULE_SHIFT);
	return ret;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL) + (uint64_t)ts.tv_nsec;
}

int xlat_tfrmm_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			      uint64_t n, uint64_t size, uint64_t *done, uint64_t *ns)
{
	struct tfrmm t;
	uint64_t t0;
	int ret = 0;

	if ((env == NULL) || !ctx_ready(ctx) || (vas == NULL) || (done == NULL) || (ns == NULL)) {
		return -EINVAL;
	}
	*done = 0U;
	*ns = 0U;
	/* TF-RMM asserts is_mmu_enabled(). */
	if (env->mmu_on == 0U) {
		return -EACCES;
	}
	t.env = env;
	t.ctx = ctx;
	t.lpa2 = ctx_lpa2(ctx);
	t.unmap = TFRMM_UNMAP;
	t.span = xlat_tables_span(env, ctx);
	t.root = xlat_table_host_wr(env, ctx, ctx->tables_pa);
	if (t.root == NULL) {
		return -EFAULT;
	}
	t0 = now_ns();
	for (uint64_t i = 0U; i < n; i++) {
		ret = unmap_region(&t, vas[i], size);
		if (ret != 0) {
			break;
		}
		*done = i + 1U;
	}
	*ns = now_ns() - t0;
	xlat_alloc_init(env, ctx);
	return ret;
}
