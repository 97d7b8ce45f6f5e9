/* SPDX-License-Identifier: MIT */
/*
 * Stage-1 translation tables over emulated physical memory: context build
 * with partial tables, the table estimator, L1 stitching, the runtime L3 API
 * with its bitmap VA allocator, and the walkers.
 *
 * Modelled on TF-RMM lib/xlat (see docs/rmm-lfa.md).  Every function returns
 * 0 or a negative errno value and changes nothing when it fails.  Where
 * TF-RMM asserts on caller misuse, these functions return an error instead.
 *
 * A context is plain data with no host pointers: tables, bitmap and context
 * are all named by physical address, so a byte copy of a context into
 * emulated memory (xlat_ctx_save) is enough to carry it across a live
 * activation, as TF-RMM does with glob_data.
 */
#ifndef LFAFS_XLAT_H
#define LFAFS_XLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pmem.h"
#include "xlat_defs.h"

#define XLAT_MAX_REGIONS	16U
#define XLAT_TLBI_RING		64U
#define XLAT_CTX_MAGIC		0x4c46414658435458ULL	/* "XTCXFAFL" */

/* Context flags. */
#define XLAT_F_LPA2		(1U << 0)	/* FEAT_LPA2: 52-bit VA/PA, level -1 */
#define XLAT_F_CFG		(1U << 8)	/* configuration validated */
#define XLAT_F_TBLS		(1U << 9)	/* tables built */
#define XLAT_F_REMAPPED		(1U << 10)	/* tables mapped at tbls_va */

/* Allocation policies for xlat_map_l3_batch. */
#define XLAT_POLICY_BITMAP	0U	/* summary tree, O(log pool) */
#define XLAT_POLICY_SCAN	1U	/* TF-RMM's descriptor scan, for comparison */

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
 * then one DSB ISH; ISB per operation (TF-RMM xlat_unmap_l3_region).
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

/* Result of a walk: the last-level table reached for a VA. */
struct xlat_llt {
	uint64_t table_pa;
	uint64_t base_va;	/* VA mapped by entry 0 of that table */
	int32_t level;
	uint32_t entries;
};

struct xlat_check_report {
	uint64_t va;		/* first VA found wrong */
	int32_t level;
	uint32_t what;		/* XLAT_CHECK_* */
};

#define XLAT_CHECK_OK			0U
#define XLAT_CHECK_BAD_TABLE		1U	/* table address outside memory */
#define XLAT_CHECK_BAD_ENTRY		2U	/* dynamic entry in no valid state */
#define XLAT_CHECK_BITMAP_MISMATCH	3U	/* bitmap bit != descriptor bit 56 */
#define XLAT_CHECK_SUMMARY		4U	/* summary tree inconsistent */
#define XLAT_CHECK_PARENT_FLAG		5U	/* table bit 56 != child fullness */
#define XLAT_CHECK_BAD_CONTEXT		6U	/* context fields out of range */

/* Environment. */
int xlat_env_init(struct xlat_env *env, void *base, uint64_t pa_base, uint64_t size);
void xlat_tlbi_clear(struct xlat_env *env);

/* Geometry. */
int xlat_base_level(uint64_t va_size, bool lpa2);
unsigned long xlat_estimate_num_l3_l2_tables(const struct xlat_region *regions, unsigned int n);

/* Context build (TF-RMM xlat_ctx_cfg_init, xlat_ctx_init, xlat_ctx_init_remapped_tbls). */
int xlat_ctx_cfg_init(struct xlat_ctx *ctx, const struct xlat_region *regions, unsigned int n,
		      uint64_t partial_va_base, uint64_t va_size, uint32_t flags);
int xlat_ctx_requirements(const struct xlat_ctx *ctx, uint64_t *tables, uint64_t *alloc_bytes);
int xlat_ctx_init(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
		  uint64_t ntables, uint64_t alloc_pa);
int xlat_ctx_init_remapped(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
			   uint64_t ntables, uint64_t tbls_va, uint64_t alloc_pa);

/* A context as plain bytes in emulated memory (glob_data). */
uint64_t xlat_ctx_bytes(void);
int xlat_ctx_save(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t pa);
int xlat_ctx_load(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa);

/* Stitching (TF-RMM xlat_stitch_tables_l1). *stitched receives the L1 entries copied. */
int xlat_stitch_tables_l1(struct xlat_env *env, struct xlat_ctx *parent,
			  const struct xlat_ctx *child, uint64_t va_start, uint64_t va_size,
			  uint32_t *stitched);

/* Runtime L3 API on TRANSIENT ranges. */
int xlat_map_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
		       uint64_t attr, uint64_t *mapped_va);
int xlat_unmap_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size);
int xlat_reserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t size,
			      uint64_t *va);
int xlat_populate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t pa, uint64_t size, uint64_t attr);
int xlat_commit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			     uint64_t size);
int xlat_decommit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
			       uint64_t size);
int xlat_depopulate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				 uint64_t size);
int xlat_unreserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
				uint64_t size);

/*
 * Batches: n independent calls in one crossing.  They stop at the first
 * failing element, which changes nothing; *done receives how many succeeded.
 */
int xlat_map_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *pas,
		      uint64_t n, uint64_t size, uint64_t attr, uint32_t policy,
		      uint64_t *vas, uint64_t *done);
int xlat_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			uint64_t n, uint64_t size, uint64_t *done);

/* The VA the allocator would hand out for @size bytes, without allocating. */
int xlat_find_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
		 uint32_t policy, uint64_t *va);
/* Benchmark support: run xlat_find_va @reps times (lfafs bench). */
int xlat_find_va_repeat(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
			uint32_t policy, uint64_t reps, uint64_t *va);
int xlat_alloc_stats(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t *free_pages,
		     uint64_t *longest_run);

/* Walkers. */
int xlat_get_llt_from_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			 struct xlat_llt *llt);
int xlat_get_tte_pa(const struct xlat_llt *llt, uint64_t va, uint64_t *tte_pa);
int xlat_read_desc(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, int level,
		   uint64_t *desc, int32_t *leaf_level);
int xlat_read_l3_range(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
		       uint64_t pages, uint64_t *out);
int xlat_walk(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, uint64_t *pa,
	      uint64_t *desc, int32_t *level);
int xlat_get_contig_pa_level3(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
			      uint64_t top_va, uint64_t *pa_out, uint64_t *bytes);
uint64_t xlat_desc(uint64_t attr, uint64_t pa, int level, bool lpa2);
uint64_t xlat_desc_attr(uint64_t desc);
uint64_t xlat_desc_oa(uint64_t desc, bool lpa2);

/* Whole-context consistency check. */
int xlat_check(struct xlat_env *env, const struct xlat_ctx *ctx, struct xlat_check_report *rep);

#endif /* LFAFS_XLAT_H */
