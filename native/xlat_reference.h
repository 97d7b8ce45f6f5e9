/* SPDX-License-Identifier: MIT */
/*
 * TF-RMM's runtime L3 algorithms where lfafs does otherwise, run as TF-RMM
 * runs them, so that `lfafs bench native` can measure lfafs against them in
 * one process (docs/performance.md).  TF-RMM's search is not here: map
 * uses it as the scan policy (xlat_alloc.h).
 *
 * Nothing else calls these functions.  They keep memory safety and leave
 * the context consistent, but not lfafs's other promises: they are not all
 * or nothing, as TF-RMM is not.
 */
#ifndef LFAFS_XLAT_REFERENCE_H
#define LFAFS_XLAT_REFERENCE_H

#include <stdint.h>

#include "xlat_contexts.h"

/*
 * xlat_tfrmm_unmap_l3_batch() - TF-RMM's xlat_unmap_l3_region()
 * (lib/xlat/src/xlat_tables_utils.c) on each of @n ranges of @size bytes at
 * @vas, in one pass each as TF-RMM runs it: entry by entry, its L3 table
 * looked up again whenever the range leaves it, update_parent_flags()
 * walking from the root and scanning the child table for every level of
 * every table touched, then TLBI over the whole range, even after a failure.
 *
 * Where TF-RMM asserts (an entry not COMMITTED, a size of 0) this returns
 * -EPERM or -EINVAL at that point, entries before it unmapped, as TF-RMM's
 * debug build stops there.  The batch stops at the first failing range;
 * *done counts those that succeeded.  Afterwards the bitmap is rebuilt from
 * the descriptors, which TF-RMM does not have; *ns receives the time the
 * unmaps took, without the rebuild.
 */
int xlat_tfrmm_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
			      uint64_t n, uint64_t size, uint64_t *done, uint64_t *ns);

#endif /* LFAFS_XLAT_REFERENCE_H */
