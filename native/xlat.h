/* SPDX-License-Identifier: MIT */
/*
 * Stage-1 translation tables over emulated physical memory, modelled on
 * TF-RMM lib/xlat (see docs/rmm-lfa.md): everything lfafs/_native_build.py
 * declares to cffi, one header per concern.
 *
 *   xlat_defs.h      architectural constants, descriptor bits, MT_* words
 *   pmem.h           emulated DRAM: a sparse store; PA -> host pointer, bounds-checked
 *   xlat_desc.h      descriptor codec
 *   xlat_contexts.h  context and environment structures, plain-bytes form
 *   xlat_walk.h      software walkers
 *   va_bitmap.h      bitmap and summary tree (knows nothing of tables)
 *   xlat_alloc.h     the VA allocator over TRANSIENT ranges, and the check
 *   xlat_core.h      context build, estimator, stitching (xlat_core.c, xlat_stitch.c)
 *   xlat_l3.h        runtime L3 transitions
 *   xlat_reference.h TF-RMM's unmap as TF-RMM runs it, to measure against
 *
 * Every function that can fail returns 0 or a negative errno value and
 * changes nothing when it fails.  Where TF-RMM asserts on caller misuse,
 * these functions return an error instead.
 */
#ifndef LFAFS_XLAT_H
#define LFAFS_XLAT_H

#include "xlat_alloc.h"
#include "xlat_contexts.h"
#include "xlat_core.h"
#include "xlat_defs.h"
#include "xlat_desc.h"
#include "xlat_l3.h"
#include "xlat_reference.h"
#include "xlat_walk.h"

#endif /* LFAFS_XLAT_H */
