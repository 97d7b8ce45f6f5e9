/* SPDX-License-Identifier: MIT */
/*
 * Emulated physical memory: a sparse store (docs/decisions/0008-sparse-dram.md).
 *
 * DRAM is cut into windows of 2^shift bytes (1 GiB unless the caller says
 * otherwise).  A window has no host mapping until something in it is
 * written; then it gets one anonymous mapping of its own, made with
 * MAP_NORESERVE (not charged to the commit limit) and MADV_NOHUGEPAGE (the
 * kernel backs it 4 KB at a time).  So a node costs host address space per
 * window written and host memory per page written, whatever its DRAM size,
 * and never-written memory reads as zero without costing either.
 *
 * The native core never dereferences a host pointer it was not given: every
 * table, descriptor, bitmap word and context it touches is named by a
 * physical address (PA) and translated here.  A PA range that is not wholly
 * inside the DRAM yields NULL, and every caller turns NULL into an error
 * code.  Two translations, both for a whole page-aligned 4 KB table, the
 * walkers' hot path, plus one for longer ranges:
 *
 *   pmem_page_rd()  for reading.  Backs nothing: a table in a never-written
 *                   window is one shared page of zeros in read-only memory
 *                   (a write through it faults loudly instead of
 *                   corrupting anything).
 *   pmem_page_wr()  for writing.  Maps the window first; NULL if the host
 *                   refuses.
 *   pmem_wr()       any range, for writing; the VA allocator's bitmap.
 *
 * A range that crosses a window boundary is made contiguous in host memory
 * before a pointer to it is returned: the windows it covers are moved, page
 * tables and all, into one new mapping (mremap, no copy; a window holding
 * shared runs is copied, see below).  That moves their
 * host addresses, so within one native call a pointer must not be kept
 * across a pmem_wr() of a multi-window range that comes later.  Only the
 * VA allocator's bitmap (xlat_alloc_view) can span windows, and every
 * entry point takes it before any table pointer; a table never spans one
 * (windows are whole pages).  Contexts are copied through
 * pmem_read/pmem_write, and the table array is backed with pmem_map and
 * zeroed with pmem_clear, all of which work window by window and move
 * nothing.
 *
 * Shared pattern pages (docs/decisions/0012-shared-pattern-pages.md).
 * pmem_share() finds runs of whole pages that all hold one repeated 64-bit
 * value (a freshly built TRANSIENT L3 table is 512 copies of TRANSIENT_DESC)
 * and maps over each a private copy-on-write view of a per-process pattern
 * file holding that value.  Every node of the process then reads the same
 * host pages, and the first write to a page gets a private copy from the
 * kernel, so every accessor above stays correct unchanged.  What changes:
 *
 *   - A stretch of a window that got a mapping of its own (a shared run, or
 *     a part of one made anonymous again) is a segment, recorded in
 *     m->segs by DRAM offset, sorted and disjoint, never across a window.
 *     A window without segments is one host mapping (VMA), or part of one.
 *   - MADV_DONTNEED on a shared run would make its pages read the pattern
 *     again, not zeros.  So zeroing that reaches a shared run puts fresh
 *     anonymous memory over that part instead (the segment turns
 *     anonymous); if the host refuses, it writes zeros and the part stays
 *     shared.
 *   - A window with segments is several host mappings, and before Linux
 *     6.17 mremap moves only a range inside one and, refusing a move,
 *     unmaps its destination first.  So joining COPIES a window with
 *     segments into the new mapping (its pages that are not all zero),
 *     unmaps the old one and forgets its segments: its shared runs are
 *     given up, their pages private copies from then on.  Segments are
 *     kept after they turn anonymous, until their window is unmapped or
 *     copied, because their edges remain mapping edges.
 *   - A mapping is never put over live memory with mmap(MAP_FIXED), which
 *     before Linux 6.12 can unmap the memory and then fail: the new one is
 *     made where the kernel chooses, then moved over with mremap
 *     (swap_in() in pmem.c, which states the residual risk).
 *   - Sharing is an optimisation: a run the host refuses to share keeps
 *     its contents (and its anonymous pages, or fresh ones).
 */
#ifndef LFAFS_PMEM_H
#define LFAFS_PMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PMEM_WINDOW_SHIFT	30U		/* 1 GiB: the default window */
#define PMEM_WINDOW_SHIFT_MIN	12U		/* one 4 KB page */
#define PMEM_WINDOW_SHIFT_MAX	52U		/* one window for any DRAM below 2^52 */
#define PMEM_MAX_WINDOWS	(1ULL << 16)	/* 512 KB of directory; 64 TiB at 1 GiB */
#define PMEM_PAGE_BYTES		4096U
#define PMEM_ZERO_BYTES		PMEM_PAGE_BYTES	/* a never-written table reads from these zeros */

struct pmem_segs;	/* pmem.c: the segments of shared runs (see above) */

struct pmem {
	uint8_t **win;		/* win[i]: host address of window i, NULL until written */
	struct pmem_segs *segs;	/* allocated by pmem_init, never NULL while @m is live */
	uint64_t pa_base;	/* first PA, 4 KB aligned */
	uint64_t size;		/* bytes, a multiple of 4 KB */
	uint64_t nwin;		/* windows: size / 2^shift, rounded up */
	uint32_t shift;		/* log2 of the window size */
	uint32_t pad;
};

extern const uint64_t pmem_zero_page[PMEM_ZERO_BYTES / 8U];

/* Set up @m for DRAM [pa_base, pa_base + size); maps nothing.  0, -EINVAL or -ENOMEM. */
int pmem_init(struct pmem *m, uint64_t pa_base, uint64_t size, unsigned int shift);

/* Unmap every window and free the directory and segments; @m reads as absent afterwards. */
void pmem_fini(struct pmem *m);

/*
 * pmem_back() - the slow path of pmem_wr() and pmem_page_wr(): map the windows that
 * [off, off + len) covers and make them contiguous.  The range is already
 * bounds-checked and non-empty.  NULL when the host refuses a mapping; the
 * windows keep their contents either way.
 */
void *pmem_back(const struct pmem *m, uint64_t off, uint64_t len);

/* Offset of [pa, pa + len) in @m, or false when any byte lies outside (or pa + len wraps). */
static inline bool pmem_offset(const struct pmem *m, uint64_t pa, uint64_t len, uint64_t *off)
{
	if ((m == NULL) || (m->win == NULL) || (pa < m->pa_base) || (len == 0U)) {
		return false;
	}
	*off = pa - m->pa_base;
	return (*off < m->size) && (len <= (m->size - *off));
}

/*
 * pmem_wr() - writable host pointer for the PA range [pa, pa + len).
 *
 * NULL when any byte lies outside the DRAM, when len is 0, or when the host
 * refuses a mapping.  The caller guarantees the natural alignment it needs
 * through the PA: windows are page aligned in host memory.
 */
static inline void *pmem_wr(const struct pmem *m, uint64_t pa, uint64_t len)
{
	uint64_t off;
	uint64_t w;

	if (!pmem_offset(m, pa, len, &off)) {
		return NULL;
	}
	w = off >> m->shift;
	if ((((off + len - 1U) >> m->shift) == w) && (m->win[w] != NULL)) {
		return m->win[w] + (off & ((1ULL << m->shift) - 1U));
	}
	return pmem_back(m, off, len);
}

/*
 * pmem_page_wr() / pmem_page_rd() - host pointer for the whole 4 KB page
 * at a page-aligned PA, a translation table: writable (mapping its window
 * first), or read-only (pmem_zero_page if its window was never written).
 * A page never crosses a window (windows are whole pages), so only its
 * start needs checking; an unaligned PA yields NULL, as does one outside.
 */
static inline void *pmem_page_wr(const struct pmem *m, uint64_t pa)
{
	uint64_t off = pa - m->pa_base;
	uint8_t *w;

	/* After pmem_fini() size is 0, so nothing passes. */
	if ((pa < m->pa_base) || (off >= m->size) || ((pa & (PMEM_PAGE_BYTES - 1U)) != 0U)) {
		return NULL;
	}
	w = m->win[off >> m->shift];
	return (w != NULL) ? (w + (off & ((1ULL << m->shift) - 1U))) : pmem_back(m, off, PMEM_PAGE_BYTES);
}

static inline const void *pmem_page_rd(const struct pmem *m, uint64_t pa)
{
	uint64_t off = pa - m->pa_base;
	uint8_t *w;

	if ((pa < m->pa_base) || (off >= m->size) || ((pa & (PMEM_PAGE_BYTES - 1U)) != 0U)) {
		return NULL;
	}
	w = m->win[off >> m->shift];
	return (w != NULL) ? (const void *)(w + (off & ((1ULL << m->shift) - 1U))) : (const void *)pmem_zero_page;
}

/*
 * pmem_span() - host pointer for [pa, pa + len) when the range lies in one
 * window that is mapped already, else NULL: for callers that can fall back
 * to pmem_page_rd()/pmem_page_wr() page by page.  Maps and moves nothing;
 * the memory behind a pointer it returns is writable.
 */
static inline void *pmem_span(const struct pmem *m, uint64_t pa, uint64_t len)
{
	uint64_t off;

	if (!pmem_offset(m, pa, len, &off) || ((off >> m->shift) != ((off + len - 1U) >> m->shift)) ||
	    (m->win[off >> m->shift] == NULL)) {
		return NULL;
	}
	return m->win[off >> m->shift] + (off & ((1ULL << m->shift) - 1U));
}

/* Range checks without translation: [pa, pa + len) lies inside @m. */
static inline bool pmem_contains(const struct pmem *m, uint64_t pa, uint64_t len)
{
	uint64_t off;

	return pmem_offset(m, pa, len, &off);
}

/*
 * Copies, window by window, so any range works.  Each returns 0, -EFAULT
 * for a range outside the DRAM (len 0 is in range anywhere inside it or at
 * its end), or -ENOMEM when the host refuses a mapping; a failing call
 * changes no byte of emulated memory.
 *
 * pmem_read()  never maps anything: unwritten memory reads as zero.
 * pmem_write() maps no window for data that is all zeros, and of data it
 *              writes, hands runs of 64 KB of zeros or more back to the
 *              host (MADV_DONTNEED, or fresh anonymous memory over a
 *              shared run) and writes the rest only into host pages whose
 *              contents it changes.
 * pmem_zero()  costs nothing on unwritten memory, unmaps windows it covers
 *              whole, hands runs of 64 KB or more back to the host, and
 *              writes the rest only into host pages that are not zero.
 *
 * What that costs in host memory: writing a page what it holds already
 * (zeros over zeros, or a table's own contents) costs nothing, shared or
 * not.  Writing zeros over a private page costs nothing either.  Writing
 * zeros that change a page of a shared run costs that page (the kernel's
 * private copy), unless the page lies in a run of 64 KB or more being
 * handed back: that is, zeroing less than 64 KB of a shared run, and the
 * partial pages at either end of a longer range.  Any other change to a
 * shared page or a never-written one costs the page, as it always did.
 */
int pmem_read(const struct pmem *m, uint64_t pa, void *dst, uint64_t len);
int pmem_write(const struct pmem *m, uint64_t pa, const void *src, uint64_t len);
int pmem_zero(const struct pmem *m, uint64_t pa, uint64_t len);

/*
 * pmem_clear() - pmem_zero() that keeps every window mapped, so that host
 * pointers into them stay valid and writes to them cannot fail.
 * pmem_map() - map every window [pa, pa + len) touches, without joining
 * them: afterwards pmem_wr() of any range inside one window cannot fail.
 * 0, -EFAULT or (pmem_map) -ENOMEM.
 */
int pmem_clear(const struct pmem *m, uint64_t pa, uint64_t len);
int pmem_map(const struct pmem *m, uint64_t pa, uint64_t len);

/* Windows mapped and the host address space they hold, in bytes. */
void pmem_usage(const struct pmem *m, uint64_t *windows, uint64_t *mapped_bytes);

/*
 * pmem_share() - share every run of at least PMEM_SHARE_MIN_PAGES whole
 * pages in [pa, pa + len) whose 64-bit words all hold one non-zero value
 * (see above).  A longer run than PMEM_SHARE_MAX_PAGES is shared in parts
 * of at most that (each its own mapping), so a pattern file never grows
 * past it.  Pages in a shared run already, and unwritten windows, are
 * left alone.  Values past the first eight a process meets are not
 * shared.  Changes no byte of emulated memory.  0; -EFAULT for a range
 * outside the DRAM; -ENOMEM when the host refused to share some run, which
 * then keeps its contents: callers may ignore it.
 *
 * pmem_shared() - shared runs and the bytes they map (pages written since
 * are counted too: the kernel's copies are not visible from here).
 */
#define PMEM_SHARE_MIN_PAGES	16U
#define PMEM_SHARE_MAX_PAGES	1024U	/* 4 MB: a 1 GB pool's run of L3 tables is 2 MB */
int pmem_share(const struct pmem *m, uint64_t pa, uint64_t len);
void pmem_shared(const struct pmem *m, uint64_t *runs, uint64_t *bytes);

#endif /* LFAFS_PMEM_H */
