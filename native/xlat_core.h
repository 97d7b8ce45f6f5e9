/* SPDX-License-Identifier: MIT */
/*
 * Context configuration and table build, the table estimator, and L1
 * stitching: everything done once, with the MMU off, before the runtime L3
 * API runs (TF-RMM lib/xlat/src/xlat_contexts.c, xlat_ctx_cfg_init() and
 * xlat_ctx_init(); lib/xlat/src/xlat_tables_core.c, xlat_init_tables_ctx();
 * lib/xlat/src/xlat_tables_utils.c, xlat_estimate_num_l3_l2_tables() and
 * xlat_stitch_tables_l1()).  No table is ever allocated afterwards.
 */
#ifndef LFAFS_XLAT_CORE_H
#define LFAFS_XLAT_CORE_H

#include <stdint.h>

#include "xlat_contexts.h"

/* L3 plus L2 tables that sorted regions need; L0 and L1 tables are not counted. */
unsigned long xlat_estimate_num_l3_l2_tables(const struct xlat_region *regions, unsigned int n);

/* Validate @n regions into @ctx (configured, no tables yet). */
int xlat_ctx_cfg_init(struct xlat_ctx *ctx, const struct xlat_region *regions, unsigned int n,
		      uint64_t partial_va_base, uint64_t va_size, uint32_t flags);

/* Exact table count and allocator bytes a configured context needs. */
int xlat_ctx_requirements(const struct xlat_ctx *ctx, uint64_t *tables, uint64_t *alloc_bytes);

/* Build the tables at @tables_pa and the allocator at @alloc_pa. */
int xlat_ctx_init(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
		  uint64_t ntables, uint64_t alloc_pa);
/* The same, with the table array mapped at @tbls_va inside the context. */
int xlat_ctx_init_remapped(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
			   uint64_t ntables, uint64_t tbls_va, uint64_t alloc_pa);

/* Copy the child's L1 entries into the parent; *stitched receives how many. */
int xlat_stitch_tables_l1(struct xlat_env *env, struct xlat_ctx *parent,
			  const struct xlat_ctx *child, uint64_t va_start, uint64_t va_size,
			  uint32_t *stitched);

#endif /* LFAFS_XLAT_CORE_H */
