/* SPDX-License-Identifier: MIT */
/*
 * The emulated CPU's environment, context geometry and validity, and the
 * plain-bytes form of a context; see xlat_contexts.h.  Nothing here walks
 * translation tables.
 */
#include <errno.h>
#include <string.h>

#include "va_bitmap.h"
#include "xlat_contexts.h"

int xlat_env_init(struct xlat_env *env, uint64_t pa_base, uint64_t size, uint32_t window_shift)
{
	struct pmem mem;
	int ret;

	if (env == NULL) {
		return -EINVAL;
	}
	ret = pmem_init(&mem, pa_base, size, window_shift);
	if (ret != 0) {
		return ret;
	}
	memset(env, 0, sizeof(*env));
	env->mem = mem;
	return 0;
}

void xlat_env_fini(struct xlat_env *env)
{
	if (env != NULL) {
		pmem_fini(&env->mem);
	}
}

void xlat_tlbi_clear(struct xlat_env *env)
{
	if (env != NULL) {
		memset(&env->tlbi, 0, sizeof(env->tlbi));
	}
}

int xlat_base_level(uint64_t va_size, bool lpa2)
{
	if (lpa2 && (va_size > (1ULL << 48))) {
		return -1;
	}
	if (va_size > (1ULL << 39)) {
		return 0;
	}
	if (va_size > (1ULL << 30)) {
		return 1;
	}
	if (va_size > (1ULL << 21)) {
		return 2;
	}
	return 3;
}

bool xlat_va_in_ctx(const struct xlat_ctx *ctx, uint64_t va, uint64_t size)
{
	uint64_t off;

	if (va < ctx->base_va) {
		return false;
	}
	off = va - ctx->base_va;
	return (off < ctx->va_size) && (size <= (ctx->va_size - off));
}

/*
 * xlat_ctx_validate() - every field of a built context is in range, so that
 * a context read back from emulated memory can be trusted as far as its
 * geometry goes.  Table contents are still checked at every step.
 */
int xlat_ctx_validate(const struct xlat_env *env, const struct xlat_ctx *c)
{
	bool lpa2;

	if (!ctx_ready(c) || ((c->flags & ~(XLAT_F_LPA2 | XLAT_F_CFG | XLAT_F_TBLS | XLAT_F_REMAPPED)) != 0U)) {
		return -EINVAL;
	}
	lpa2 = ctx_lpa2(c);
	if (((c->va_size & (c->va_size - 1U)) != 0U) || (c->va_size < XLAT_MIN_VA_SIZE) ||
	    (c->va_size > (lpa2 ? XLAT_MAX_VA_SIZE_LPA2 : XLAT_MAX_VA_SIZE)) ||
	    (c->base_level != xlat_base_level(c->va_size, lpa2)) ||
	    ((c->base_va & XLAT_BLOCK_MASK(c->base_level)) != 0U) ||
	    (c->nregions == 0U) || (c->nregions > XLAT_MAX_REGIONS)) {
		return -EINVAL;
	}
	if ((c->tables_num == 0U) || (c->tables_num > (env->mem.size / XLAT_TABLE_BYTES)) ||
	    ((c->tables_pa & XLAT_GRANULE_MASK) != 0U) || (c->next_table > c->tables_num) ||
	    !pmem_contains(&env->mem, c->tables_pa, c->tables_num * XLAT_TABLE_BYTES)) {
		return -EINVAL;
	}
	if (((c->flags & XLAT_F_REMAPPED) != 0U) &&
	    ((c->tbls_va_to_pa_diff != (int64_t)(c->tbls_va - c->tables_pa)) ||
	     !xlat_va_in_ctx(c, c->tbls_va, c->tables_num * XLAT_TABLE_BYTES))) {
		return -EINVAL;
	}
	if (c->alloc_pages != 0U) {
		if ((c->alloc_pages > VA_BITMAP_MAX_PAGES) || ((c->alloc_pages % XLAT_PAGES_PER_L3) != 0U) ||
		    (c->alloc_bytes != va_bitmap_bytes(c->alloc_pages)) ||
		    ((c->alloc_va & (XLAT_L3_SPAN - 1U)) != 0U) ||
		    !xlat_va_in_ctx(c, c->alloc_va, c->alloc_pages << XLAT_GRANULE_SHIFT) ||
		    ((c->alloc_pa & XLAT_GRANULE_MASK) != 0U) ||
		    !pmem_contains(&env->mem, c->alloc_pa, c->alloc_bytes)) {
			return -EINVAL;
		}
	}
	return 0;
}

uint64_t xlat_ctx_bytes(void)
{
	return sizeof(struct xlat_ctx);
}

int xlat_ctx_save(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t pa)
{
	if ((env == NULL) || (ctx == NULL) || ((pa & 7U) != 0U)) {
		return -EINVAL;
	}
	if (xlat_ctx_validate(env, ctx) != 0) {
		return -EINVAL;
	}
	/* Copied window by window: a context may straddle a window boundary. */
	return pmem_write(&env->mem, pa, ctx, sizeof(*ctx));
}

int xlat_ctx_load(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa)
{
	struct xlat_ctx c;

	if ((env == NULL) || (ctx == NULL) || ((pa & 7U) != 0U)) {
		return -EINVAL;
	}
	if (pmem_read(&env->mem, pa, &c, sizeof(c)) != 0) {
		return -EFAULT;
	}
	if (xlat_ctx_validate(env, &c) != 0) {
		return -EINVAL;
	}
	*ctx = c;
	return 0;
}
