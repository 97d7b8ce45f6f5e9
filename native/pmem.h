/* SPDX-License-Identifier: MIT */
/*
 * Emulated physical memory.
 *
 * The native core never dereferences a host pointer it was not given: every
 * table, descriptor, bitmap word and context it touches is named by a
 * physical address (PA) and translated here, against the one buffer that
 * stands for DRAM.  A PA range that is not wholly inside that buffer yields
 * NULL, and every caller turns NULL into an error code.
 */
#ifndef LFAFS_PMEM_H
#define LFAFS_PMEM_H

#include <stddef.h>
#include <stdint.h>

struct pmem {
	uint8_t *base;		/* host address of PA pa_base */
	uint64_t pa_base;	/* first PA of the buffer, 4 KB aligned */
	uint64_t size;		/* bytes, a multiple of 4 KB */
};

/*
 * pmem_ptr() - host pointer for the PA range [pa, pa + len).
 *
 * Returns NULL when any byte of the range lies outside the buffer, including
 * when pa + len wraps.  The caller guarantees the natural alignment it needs
 * through the PA (the buffer base is at least 8-byte aligned, see
 * xlat_env_init()).
 */
static inline void *pmem_ptr(const struct pmem *m, uint64_t pa, uint64_t len)
{
	uint64_t off;

	if ((m == NULL) || (m->base == NULL) || (pa < m->pa_base)) {
		return NULL;
	}
	off = pa - m->pa_base;
	if ((off > m->size) || (len > (m->size - off))) {
		return NULL;
	}
	return m->base + off;
}

#endif /* LFAFS_PMEM_H */
