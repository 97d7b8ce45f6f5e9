/* SPDX-License-Identifier: MIT */
/*
 * Translation contexts and the emulated CPU they live on: the structures,
 * and what can be said about a context without walking its tables (its
 * geometry, its validity, its plain-bytes form).
 *
 * A context is plain data with no host pointers: tables, bitmap and context
 * are all named by physical address, so a byte copy of a context into
 * emulated memory (xlat_ctx_save) is enough to carry it across a live
 * activation, as TF-RMM does with glob_data (lib/xlat_low_va/src/xlat_low_va.c,
 * xlat_low_va_dyn_fixup()).
 */
#ifndef LFAFS_XLAT_CONTEXTS_H
#define LFAFS_XLAT_CONTEXTS_H

#include <stdbool.h>
#include <stdint.h>

#include "pmem.h"
#include "xlat_defs.h"

/*
 * Regions a context holds.  TF-RMM's xlat_ctx_cfg_init()
 * (lib/xlat/src/xlat_contexts.c) takes any number; its unit tests build
 * contexts of up to XLAT_TESTS_MAX_MMAPS = 20 regions
 * (lib/xlat/tests/xlat_test_helpers.h), and its static low-VA context holds
 * TOTAL_MMAP_REGIONS = 11 (lib/xlat_low_va/include/xlat_low_va.h).
 */
#define XLAT_MAX_REGIONS	20U
#define XLAT_TLBI_RING		64U
#define XLAT_CTX_MAGIC		0x4c46414658435458ULL	/* "XTCXFAFL" */

/* The walkers translate a table with pmem_page_rd()/pmem_page_wr(). */
_Static_assert(XLAT_TABLE_BYTES == PMEM_PAGE_BYTES, "a translation table is one pmem page");

/* Context flags. */
#define XLAT_F_LPA2		(1U << 0)	/* FEAT_LPA2: 52-bit VA/PA, level -1 */
#define XLAT_F_CFG		(1U << 8)	/* configuration validated */
#define XLAT_F_TBLS		(1U << 9)	/* tables built */
#define XLAT_F_REMAPPED		(1U << 10)	/* tables mapped at tbls_va */

struct xlat_region {
	uint64_t base_pa;
	uint64_t base_va;
	uint64_t size;
	uint64_t attr;		/* MT_* */
	uint64_t granularity;	/* a block size of L0..L3 */
};

struct xlat_tlbi_entry {
	uint64_t va;
	uint64_t pages;
};

/*
 * TLB maintenance the emulated CPU has issued: one TLBI VAE2IS per page,
 * then one DSB ISH; ISB per operation (TF-RMM
 * lib/xlat/src/xlat_tables_utils.c, xlat_unmap_l3_region()).
 */
struct xlat_tlbi_log {
	uint64_t pages;		/* TLBI instructions issued */
	uint64_t syncs;		/* DSB ISH; ISB sequences */
	uint32_t head;		/* next ring slot */
	uint32_t count;		/* valid ring slots */
	struct xlat_tlbi_entry ring[XLAT_TLBI_RING];
};

/* Emulated DRAM plus the MMU and TLB state of the CPU using it. */
struct xlat_env {
	struct pmem mem;
	uint32_t mmu_on;	/* SCTLR_EL2.M */
	uint32_t pad;
	struct xlat_tlbi_log tlbi;
};

struct xlat_ctx {
	uint64_t magic;
	uint32_t flags;
	int32_t base_level;
	uint64_t base_va;		/* 0, or the partial-table base */
	uint64_t va_size;
	uint64_t max_mapped_pa;		/* ignores TRANSIENT regions */
	uint64_t tables_pa;		/* table array; table 0 is the base table */
	uint64_t tables_num;
	uint64_t next_table;
	uint64_t tbls_va;		/* VA of the table array when remapped */
	int64_t tbls_va_to_pa_diff;
	/* VA allocator: bitmap over [alloc_va, alloc_va + alloc_pages * 4K) */
	uint64_t alloc_pa;
	uint64_t alloc_bytes;
	uint64_t alloc_va;
	uint64_t alloc_pages;
	uint32_t nregions;
	uint32_t pad;
	struct xlat_region regions[XLAT_MAX_REGIONS];	/* VAs relative to base_va */
};

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

/*
 * Environment: DRAM [pa_base, pa_base + size) in windows of 2^window_shift
 * bytes (pmem.h; PMEM_WINDOW_SHIFT unless measuring), nothing mapped yet.
 * xlat_env_fini() gives every window back; the caller calls it once.
 */
int xlat_env_init(struct xlat_env *env, uint64_t pa_base, uint64_t size, uint32_t window_shift);
void xlat_env_fini(struct xlat_env *env);
void xlat_tlbi_clear(struct xlat_env *env);

/* The CPU issued TLBI VAE2IS for @pages pages from @va, then DSB ISH; ISB. */
static inline void xlat_tlbi_log(struct xlat_env *env, uint64_t va, uint64_t pages)
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

/* Base level from the VA size (TF-RMM GET_XLAT_TABLE_LEVEL_BASE()). */
int xlat_base_level(uint64_t va_size, bool lpa2);

/* [va, va + size) lies inside the context's VA range. */
bool xlat_va_in_ctx(const struct xlat_ctx *ctx, uint64_t va, uint64_t size);

/* Every field of a built context is in range for @env's memory; 0 or -EINVAL. */
int xlat_ctx_validate(const struct xlat_env *env, const struct xlat_ctx *ctx);

/* A context as plain bytes in emulated memory (glob_data). */
uint64_t xlat_ctx_bytes(void);
int xlat_ctx_save(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t pa);
int xlat_ctx_load(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa);

#endif /* LFAFS_XLAT_CONTEXTS_H */
