/* SPDX-License-Identifier: MIT */
/*
 * Context configuration, the table estimator and context init; see
 * xlat_core.h.  The table build is in xlat_build.c, stitching in xlat_stitch.c.
 */
#include <errno.h>
#include <string.h>

#include "va_bitmap.h"
#include "xlat_alloc.h"
#include "xlat_build.h"
#include "xlat_core.h"
#include "xlat_desc.h"

/*
 * A region needs tables below a block of @blk bytes (TF-RMM
 * lib/xlat/src/xlat_tables_utils.c, need_tables_at_lvl()).
 */
static bool need_tables_at_lvl(const struct xlat_region *r, uint64_t blk)
{
	return (r->granularity < blk) || ((r->base_va & (blk - 1U)) != 0U) ||
	       (((r->base_va + r->size) & (blk - 1U)) != 0U) ||
	       (((r->attr & MT_TYPE_MASK) != MT_TRANSIENT) && ((r->base_pa & (blk - 1U)) != 0U));
}

/*
 * xlat_estimate_num_l3_l2_tables() - L3 plus L2 tables needed for sorted,
 * page-aligned, non-overlapping regions (TF-RMM lib/xlat/src/xlat_tables_utils.c,
 * xlat_estimate_num_l3_l2_tables(), 89cbd183).  L0 and L1
 * tables are not counted; a neighbour that shares a table counts it once.
 */
unsigned long xlat_estimate_num_l3_l2_tables(const struct xlat_region *regions, unsigned int n)
{
	const uint64_t sz[2] = { XLAT_BLOCK_SIZE(2), XLAT_BLOCK_SIZE(1) };
	uint64_t last_end[2] = { 0U, 0U };
	unsigned long total = 0U;

	if (regions == NULL) {
		return 0U;
	}
	for (unsigned int i = 0U; i < n; i++) {
		for (unsigned int k = 0U; k < 2U; k++) {
			uint64_t start = regions[i].base_va;
			uint64_t end = regions[i].base_va + regions[i].size;

			if (start < last_end[k]) {
				start = last_end[k];
			}
			if (need_tables_at_lvl(&regions[i], sz[k]) && (start < end)) {
				total += (unsigned long)((round_up(end, sz[k]) - round_down(start, sz[k])) /
							 sz[k]);
				last_end[k] = round_up(end, sz[k]);
			}
		}
	}
	return total;
}

static bool granularity_valid(uint64_t g)
{
	return (g == XLAT_BLOCK_SIZE(0)) || (g == XLAT_BLOCK_SIZE(1)) ||
	       (g == XLAT_BLOCK_SIZE(2)) || (g == XLAT_BLOCK_SIZE(3));
}

/*
 * Region checks in TF-RMM's order (lib/xlat/src/xlat_contexts.c,
 * validate_mmap_regions()),
 * plus an attribute check of our own.  Rebases VAs in @mm relative to
 * @base_va, as TF-RMM does in place.
 */
static int validate_regions(struct xlat_region *mm, unsigned int n, uint64_t base_va,
			    uint64_t va_size, uint64_t max_pa)
{
	for (unsigned int i = 0U; i < n; i++) {
		struct xlat_region *r = &mm[i];
		uint64_t end_va;

		if (r->size == 0U) {
			return -EINVAL;
		}
		if (((r->base_va & XLAT_HIGH_REGION_MASK) != 0U) ||
		    (((r->base_va + r->size) & XLAT_HIGH_REGION_MASK) != 0U)) {
			return -EINVAL;
		}
		if (r->base_va < base_va) {
			return -EINVAL;
		}
		r->base_va -= base_va;
		if (((r->base_pa | r->base_va | r->size) & XLAT_GRANULE_MASK) != 0U) {
			return -EFAULT;
		}
		if (!granularity_valid(r->granularity) || !xlat_attr_valid(r->attr)) {
			return -EINVAL;
		}
		if (((r->base_pa + r->size - 1U) < r->base_pa) || ((r->base_va + r->size) < r->base_va)) {
			return -ERANGE;
		}
		end_va = r->base_va + r->size;
		if (end_va > va_size) {
			return -ERANGE;
		}
		if ((r->base_pa + r->size - 1U) > (max_pa - 1U)) {
			return -ERANGE;
		}
		if (i == 0U) {
			continue;
		}
		if (r->base_va < mm[i - 1U].base_va) {
			return -EPERM;
		}
		if (r->base_va <= (mm[i - 1U].base_va + mm[i - 1U].size - 1U)) {
			return -EPERM;
		}
		/* TRANSIENT regions have no PA yet. */
		if ((r->attr & MT_TYPE_MASK) == MT_TRANSIENT) {
			continue;
		}
		for (unsigned int j = 0U; j < i; j++) {
			uint64_t lo = mm[j].base_pa;
			uint64_t hi = mm[j].base_pa + mm[j].size - 1U;
			uint64_t end_pa = r->base_pa + r->size - 1U;

			if ((mm[j].attr & MT_TYPE_MASK) == MT_TRANSIENT) {
				continue;
			}
			if (((end_pa >= lo) && (end_pa <= hi)) || ((r->base_pa >= lo) && (r->base_pa <= hi))) {
				return -EPERM;
			}
		}
	}
	return 0;
}

int xlat_ctx_cfg_init(struct xlat_ctx *ctx, const struct xlat_region *regions, unsigned int n,
		      uint64_t partial_va_base, uint64_t va_size, uint32_t flags)
{
	struct xlat_ctx c;
	bool lpa2 = (flags & XLAT_F_LPA2) != 0U;
	uint64_t max_va = lpa2 ? XLAT_MAX_VA_SIZE_LPA2 : XLAT_MAX_VA_SIZE;
	uint64_t cov_lo = UINT64_MAX;
	uint64_t cov_hi = 0U;
	int ret;

	if ((ctx == NULL) || (regions == NULL)) {
		return -EINVAL;
	}
	if ((ctx->magic == XLAT_CTX_MAGIC) && ((ctx->flags & XLAT_F_CFG) != 0U)) {
		return -EALREADY;
	}
	if ((flags & ~XLAT_F_LPA2) != 0U) {
		return -EINVAL;
	}
	if (((va_size & XLAT_GRANULE_MASK) != 0U) || ((va_size & (va_size - 1U)) != 0U) ||
	    (va_size > max_va) || (va_size < XLAT_MIN_VA_SIZE)) {
		return -EINVAL;
	}
	memset(&c, 0, sizeof(c));
	c.base_level = xlat_base_level(va_size, lpa2);
	if ((partial_va_base != 0U) && ((partial_va_base & XLAT_BLOCK_MASK(c.base_level)) != 0U)) {
		return -EINVAL;
	}
	if (n == 0U) {
		return -EINVAL;
	}
	if (n > XLAT_MAX_REGIONS) {
		return -ERANGE;
	}
	memcpy(c.regions, regions, (size_t)n * sizeof(*regions));
	ret = validate_regions(c.regions, n, partial_va_base, va_size,
			       lpa2 ? XLAT_MAX_PA_LPA2 : XLAT_MAX_PA);
	if (ret != 0) {
		return ret;
	}
	for (unsigned int i = 0U; i < n; i++) {
		const struct xlat_region *r = &c.regions[i];

		if ((r->attr & MT_TYPE_MASK) != MT_TRANSIENT) {
			/* max_mapped_pa ignores TRANSIENT regions (TF-RMM add_mmap_to_ctx_cfg(), 5f240387). */
			if ((r->base_pa + r->size - 1U) > c.max_mapped_pa) {
				c.max_mapped_pa = r->base_pa + r->size - 1U;
			}
		} else if (need_tables_at_lvl(r, XLAT_L3_SPAN)) {
			/* The bitmap covers every TRANSIENT region built down to L3. */
			if (round_down(r->base_va, XLAT_L3_SPAN) < cov_lo) {
				cov_lo = round_down(r->base_va, XLAT_L3_SPAN);
			}
			if (round_up(r->base_va + r->size, XLAT_L3_SPAN) > cov_hi) {
				cov_hi = round_up(r->base_va + r->size, XLAT_L3_SPAN);
			}
		}
	}
	if (cov_hi > cov_lo) {
		c.alloc_pages = (cov_hi - cov_lo) >> XLAT_GRANULE_SHIFT;
		if (c.alloc_pages > VA_BITMAP_MAX_PAGES) {
			return -E2BIG;
		}
		c.alloc_va = partial_va_base + cov_lo;
		c.alloc_bytes = va_bitmap_bytes(c.alloc_pages);
	}
	c.magic = XLAT_CTX_MAGIC;
	c.flags = (flags & XLAT_F_LPA2) | XLAT_F_CFG;
	c.base_va = partial_va_base;
	c.va_size = va_size;
	c.nregions = n;
	*ctx = c;
	return 0;
}

int xlat_ctx_requirements(const struct xlat_ctx *ctx, uint64_t *tables, uint64_t *alloc_bytes)
{
	if ((ctx == NULL) || (ctx->magic != XLAT_CTX_MAGIC) || ((ctx->flags & XLAT_F_CFG) == 0U) ||
	    (tables == NULL) || (alloc_bytes == NULL)) {
		return -EINVAL;
	}
	*tables = xlat_build_tables(NULL, ctx);
	*alloc_bytes = ctx->alloc_bytes;
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return (a < (b + blen)) && (b < (a + alen));
}

static int ctx_init_common(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
			   uint64_t ntables, uint64_t tbls_va, bool remapped, uint64_t alloc_pa)
{
	struct xlat_ctx c;
	uint64_t needed;

	if ((env == NULL) || (ctx == NULL) || (ctx->magic != XLAT_CTX_MAGIC) ||
	    ((ctx->flags & XLAT_F_CFG) == 0U)) {
		return -EINVAL;
	}
	if ((ctx->flags & XLAT_F_TBLS) != 0U) {
		return -EALREADY;
	}
	if ((ntables == 0U) || ((tables_pa & XLAT_GRANULE_MASK) != 0U) ||
	    (ntables > (env->mem.size / XLAT_TABLE_BYTES))) {
		return -EINVAL;
	}
	if (!pmem_contains(&env->mem, tables_pa, ntables * XLAT_TABLE_BYTES)) {
		return -EFAULT;
	}
	if (remapped && (((tbls_va & XLAT_GRANULE_MASK) != 0U) ||
			 !xlat_va_in_ctx(ctx, tbls_va, ntables * XLAT_TABLE_BYTES))) {
		return -EINVAL;
	}
	if (ctx->alloc_pages != 0U) {
		if ((alloc_pa & XLAT_GRANULE_MASK) != 0U) {
			return -EINVAL;
		}
		if (!pmem_contains(&env->mem, alloc_pa, ctx->alloc_bytes)) {
			return -EFAULT;
		}
		if (ranges_overlap(alloc_pa, ctx->alloc_bytes, tables_pa, ntables * XLAT_TABLE_BYTES)) {
			return -EINVAL;
		}
	}
	c = *ctx;
	c.tables_pa = tables_pa;
	c.tables_num = ntables;
	c.alloc_pa = (c.alloc_pages != 0U) ? alloc_pa : 0U;
	if (remapped) {
		c.flags |= XLAT_F_REMAPPED;
		c.tbls_va = tbls_va;
		/* As TF-RMM lib/xlat/src/xlat_contexts.c, xlat_ctx_init_remapped_tbls(). */
		c.tbls_va_to_pa_diff = (int64_t)(tbls_va - tables_pa);
	}

	/* Count first, so that running out of tables changes nothing. */
	needed = xlat_build_tables(NULL, &c);
	if (needed > ntables) {
		return -ENOMEM;
	}

	/*
	 * Back what the build writes before writing a byte, so that a host
	 * refusal changes nothing: the bitmap first (it alone must be
	 * contiguous, and backing it may move windows), then every window of
	 * the table array (which moves none).  Then zero the array, handing its
	 * pages back to the host.
	 */
	if (((c.alloc_pages != 0U) && (pmem_wr(&env->mem, alloc_pa, c.alloc_bytes) == NULL)) ||
	    (pmem_map(&env->mem, tables_pa, ntables * XLAT_TABLE_BYTES) != 0)) {
		return -ENOMEM;
	}
	(void)pmem_clear(&env->mem, tables_pa, ntables * XLAT_TABLE_BYTES);	/* in range: checked above */
	c.next_table = xlat_build_tables(env, &c);
	c.flags |= XLAT_F_TBLS;
	xlat_alloc_init(env, &c);
	/* Pool L3 tables are pages of TRANSIENT_DESC: share them until written (pmem.h); may refuse. */
	(void)pmem_share(&env->mem, tables_pa, ntables * XLAT_TABLE_BYTES);
	*ctx = c;
	return 0;
}

int xlat_ctx_init(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
		  uint64_t ntables, uint64_t alloc_pa)
{
	return ctx_init_common(env, ctx, tables_pa, ntables, 0U, false, alloc_pa);
}

int xlat_ctx_init_remapped(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
			   uint64_t ntables, uint64_t tbls_va, uint64_t alloc_pa)
{
	return ctx_init_common(env, ctx, tables_pa, ntables, tbls_va, true, alloc_pa);
}
