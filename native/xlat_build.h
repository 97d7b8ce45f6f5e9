/* SPDX-License-Identifier: MIT */
/*
 * The table build of a configured context (TF-RMM lib/xlat/src/xlat_tables_core.c,
 * xlat_init_tables_ctx(), xlat_tables_map_region() and xlat_tables_map_region_action()).
 * Internal to the context init: the caller has validated the context and, for a
 * real build, bounds-checked, backed and zeroed the whole table array.
 */
#ifndef LFAFS_XLAT_BUILD_H
#define LFAFS_XLAT_BUILD_H

#include <stdint.h>

#include "xlat_contexts.h"

/*
 * Map every region of @ctx into its tables, from ctx->tables_pa, and return how
 * many tables that takes (the base table included).  With @env NULL it is a dry
 * run: nothing is read or written, only the tables are counted.
 */
uint64_t xlat_build_tables(const struct xlat_env *env, const struct xlat_ctx *ctx);

#endif /* LFAFS_XLAT_BUILD_H */
