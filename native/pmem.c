/* SPDX-License-Identifier: MIT */
/*
 * The sparse store behind emulated DRAM: window mappings, joining windows
 * for a range that spans them, the copies, and shared pattern pages; see
 * pmem.h.  This file is the only one that talks to the host's memory
 * manager.
 *
 * Kept together as one file although it is long: the window directory,
 * the segments of shared runs and every mmap, mremap and madvise on them
 * must agree (zeroing and joining both act on segments), and keeping them
 * in one file keeps that agreement in one place.
 */
#define _GNU_SOURCE	/* MAP_NORESERVE, MADV_NOHUGEPAGE, mremap(), memfd_create() */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmem.h"

#define PMEM_PAGE		4096ULL
#define PMEM_RELEASE_MIN	(16U * PMEM_PAGE)	/* see clear_pages() */
#define PMEM_PATTERNS		8U	/* distinct shared values per process; more are not shared */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000	/* Linux 4.17; older kernels take the address as a hint */
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL		0x0008U		/* Linux 6.3; older kernels refuse it with EINVAL */
#endif

/*
 * A segment: a stretch of one window with a mapping of its own, made by
 * pmem_share() (shared) or by zeroing part of a shared run (anonymous).
 */
struct pmem_seg {
	uint64_t off;		/* DRAM offset, page aligned */
	uint64_t len;		/* whole pages, inside one window */
	uint64_t shared;	/* 1: a view of a pattern file; 0: anonymous */
};

struct pmem_segs {
	struct pmem_seg *v;	/* sorted by off, disjoint */
	uint64_t n;
	uint64_t cap;
};

/* 4 KB aligned so that it serves any natural alignment a table read needs. */
const uint64_t pmem_zero_page[PMEM_ZERO_BYTES / 8U] __attribute__((aligned(4096))) = { 0U };

static uint64_t window_bytes(const struct pmem *m)
{
	return 1ULL << m->shift;
}

/* Bytes of window @w: the last window ends with the DRAM. */
static uint64_t window_len(const struct pmem *m, uint64_t w)
{
	uint64_t start = w << m->shift;
	uint64_t rest = m->size - start;

	return (rest < window_bytes(m)) ? rest : window_bytes(m);
}

/*
 * A fresh mapping for @bytes of emulated memory.  MAP_NORESERVE keeps it out
 * of the commit limit (Python 3.11's mmap module cannot ask for that, which
 * is why the store lives here); MADV_NOHUGEPAGE keeps host memory growing
 * 4 KB at a time where transparent huge pages are "always".
 */
static uint8_t *map_fresh(uint64_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		return NULL;
	}
	(void)madvise(p, bytes, MADV_NOHUGEPAGE);	/* advice only: failure changes nothing */
	return (uint8_t *)p;
}

/* Index of the first segment that ends after @off; s->n when none does. */
static uint64_t seg_find(const struct pmem_segs *s, uint64_t off)
{
	uint64_t lo = 0U;
	uint64_t hi = s->n;

	while (lo < hi) {
		uint64_t mid = lo + ((hi - lo) / 2U);

		if ((s->v[mid].off + s->v[mid].len) <= off) {
			lo = mid + 1U;
		} else {
			hi = mid;
		}
	}
	return lo;
}

/* Room for @extra more segments, so that the edits that follow cannot fail half way. */
static bool seg_reserve(struct pmem_segs *s, uint64_t extra)
{
	struct pmem_seg *v;
	uint64_t cap = (s->cap == 0U) ? 8U : s->cap;

	if ((s->n + extra) <= s->cap) {
		return true;
	}
	while (cap < (s->n + extra)) {
		cap *= 2U;
	}
	v = (struct pmem_seg *)realloc(s->v, cap * sizeof(*v));
	if (v == NULL) {
		return false;
	}
	s->v = v;
	s->cap = cap;
	return true;
}

/* Make @off a segment edge if it falls inside a segment; takes one reserved slot. */
static void seg_cut(struct pmem_segs *s, uint64_t off)
{
	uint64_t i = seg_find(s, off);
	uint64_t end;

	if ((i == s->n) || (s->v[i].off >= off)) {
		return;
	}
	end = s->v[i].off + s->v[i].len;
	memmove(&s->v[i + 1U], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->n++;
	s->v[i].len = off - s->v[i].off;
	s->v[i + 1U].off = off;
	s->v[i + 1U].len = end - off;
}

/* Forget the segments inside [off, off + len), whose edges are segment edges already. */
static void seg_remove(struct pmem_segs *s, uint64_t off, uint64_t len)
{
	uint64_t i = seg_find(s, off);
	uint64_t j = i;

	while ((j < s->n) && (s->v[j].off < (off + len))) {
		j++;
	}
	if (j == i) {
		return;	/* nothing there; s->v may still be NULL */
	}
	memmove(&s->v[i], &s->v[j], (s->n - j) * sizeof(*s->v));
	s->n -= j - i;
}

/* Record @g, which overlaps no segment; takes one reserved slot. */
static void seg_insert(struct pmem_segs *s, const struct pmem_seg *g)
{
	uint64_t i = seg_find(s, g->off);

	memmove(&s->v[i + 1U], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = *g;
	s->n++;
}

/* Make [off, off + len), inside one window, one segment, shared or not; needs three reserved slots. */
static void seg_set(struct pmem_segs *s, uint64_t off, uint64_t len, bool shared)
{
	const struct pmem_seg g = { off, len, shared ? 1U : 0U };

	seg_cut(s, off);
	seg_cut(s, off + len);
	seg_remove(s, off, len);
	seg_insert(s, &g);
}

/* Index of the segment holding @off when it is shared, else s->n. */
static uint64_t seg_shared_at(const struct pmem_segs *s, uint64_t off)
{
	uint64_t i = seg_find(s, off);

	return ((i < s->n) && (s->v[i].off <= off) && (s->v[i].shared != 0U)) ? i : s->n;
}

/* Window @w has segments, so may be several host mappings. */
static bool window_segmented(const struct pmem *m, uint64_t w)
{
	uint64_t i = seg_find(m->segs, w << m->shift);

	return (i < m->segs->n) && (m->segs->v[i].off < ((w << m->shift) + window_len(m, w)));
}

int pmem_init(struct pmem *m, uint64_t pa_base, uint64_t size, unsigned int shift)
{
	uint64_t nwin;

	if ((m == NULL) || ((pa_base & (PMEM_PAGE - 1U)) != 0U) || ((size & (PMEM_PAGE - 1U)) != 0U) ||
	    (size == 0U) || ((pa_base + size) < pa_base) ||
	    (shift < PMEM_WINDOW_SHIFT_MIN) || (shift > PMEM_WINDOW_SHIFT_MAX)) {
		return -EINVAL;
	}
	nwin = ((size - 1U) >> shift) + 1U;
	if (nwin > PMEM_MAX_WINDOWS) {
		return -EINVAL;
	}
	memset(m, 0, sizeof(*m));
	m->win = (uint8_t **)calloc(nwin, sizeof(*m->win));
	m->segs = (struct pmem_segs *)calloc(1U, sizeof(*m->segs));
	if ((m->win == NULL) || (m->segs == NULL)) {
		free(m->win);
		free(m->segs);
		memset(m, 0, sizeof(*m));
		return -ENOMEM;
	}
	m->pa_base = pa_base;
	m->size = size;
	m->nwin = nwin;
	m->shift = shift;
	return 0;
}

void pmem_fini(struct pmem *m)
{
	if ((m == NULL) || (m->win == NULL)) {
		return;
	}
	/* Window by window: a joined mapping is just windows side by side. */
	for (uint64_t w = 0U; w < m->nwin; w++) {
		if (m->win[w] != NULL) {
			(void)munmap(m->win[w], window_len(m, w));
		}
	}
	free(m->win);
	free(m->segs->v);
	free(m->segs);
	memset(m, 0, sizeof(*m));
}

/* Windows first..last already sit side by side in host memory. */
static bool contiguous(const struct pmem *m, uint64_t first, uint64_t last)
{
	for (uint64_t w = first; w <= last; w++) {
		if ((m->win[w] == NULL) ||
		    ((w > first) && (m->win[w] != (m->win[w - 1U] + window_bytes(m))))) {
			return false;
		}
	}
	return true;
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
	return (n == 0U) || ((p[0] == 0U) && (memcmp(p, p + 1, n - 1U) == 0));
}

/*
 * Write zeros over [p, p + len) a host page at a time, and only over pages
 * that are not zero already: a page left alone costs nothing, where a
 * write would give a never-written page, or a page of a shared run, a
 * private copy.
 */
static void zero_where_needed(uint8_t *p, uint64_t len)
{
	uint64_t at = 0U;

	while (at < len) {
		uint64_t n = PMEM_PAGE - (((uintptr_t)p + at) & (PMEM_PAGE - 1U));

		if (n > (len - at)) {
			n = len - at;
		}
		if (!all_zero(p + at, n)) {
			memset(p + at, 0, n);
		}
		at += n;
	}
}

/* What swap_in() left at its target. */
enum swap {
	SWAP_DONE,	/* @fresh is there now */
	SWAP_KEPT,	/* the old mapping is still there, untouched */
	SWAP_ZEROS,	/* the old mapping was lost; fresh anonymous zeros are there instead */
	SWAP_LOST	/* the old mapping was lost and nothing could be put there */
};

/*
 * swap_in() - replace [target, target + len), memory of ours, with @fresh, a
 * mapping of @len bytes made for it at an address the kernel chose (one
 * mapping, so mremap can move it on any kernel).  Unlike mmap(MAP_FIXED)
 * over live memory, which before Linux 6.12 can unmap the target and then
 * fail, making @fresh first fails cleanly.  Moving it is mremap_to(), which
 * before Linux 6.17 unmaps the target before it can fail; with a source of
 * one mapping and the map-count check done before the unmap, that takes
 * the kernel failing an allocation of its own (a VMA, page tables).  Then
 * the target is a hole: take it back as zeros (MAP_FIXED_NOREPLACE maps
 * nothing over anything), and the caller restores what it held.
 *
 * Unless SWAP_DONE, @fresh is still mapped and the caller unmaps it.  The
 * residual risk, kernel allocation failure after the unmap: SWAP_LOST when
 * the hole cannot be mapped again either (the range stays unmapped; a
 * later access to it faults), and should another thread map memory into
 * the hole in the moment between, SWAP_KEPT or SWAP_LOST for a target that
 * is no longer ours.
 */
static enum swap swap_in(uint8_t *target, void *fresh, uint64_t len)
{
	void *p;

	if (mremap(fresh, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target) != MAP_FAILED) {
		return SWAP_DONE;
	}
	/* msync(MS_ASYNC) does nothing but fail with ENOMEM where any page is unmapped. */
	if (msync(target, len, MS_ASYNC) == 0) {
		return SWAP_KEPT;
	}
	p = mmap(target, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == (void *)target) {
		(void)madvise(p, len, MADV_NOHUGEPAGE);	/* advice only */
		return SWAP_ZEROS;
	}
	if (p != MAP_FAILED) {
		(void)munmap(p, len);	/* a kernel before 4.17 put it elsewhere */
	}
	return SWAP_LOST;
}

/*
 * Copy window @w, which has segments, to @slot in a fresh reservation:
 * its pages that are not all zero (reading a never-written page maps the
 * kernel's zero page and costs no memory), then unmap it and forget its
 * segments.  The copy is plain anonymous memory, so the window's shared
 * runs are given up (their pages become private copies).  Moving the
 * window with mremap instead would take one call per mapping it is made
 * of, and before Linux 6.17 a refused move unmaps its destination first,
 * so a fallback would write into a hole.  The copy needs nothing from the
 * host but the pages it writes, so it cannot be refused.  (If even the
 * unmap of the old window is refused, that copy leaks; nothing reads it.)
 */
static void copy_segmented(const struct pmem *m, uint64_t w, uint8_t *slot)
{
	uint64_t len = window_len(m, w);
	const uint8_t *from = m->win[w];

	for (uint64_t at = 0U; at < len; at += PMEM_PAGE) {
		if (!all_zero(from + at, PMEM_PAGE)) {
			memcpy(slot + at, from + at, PMEM_PAGE);
		}
	}
	(void)munmap(m->win[w], len);
	seg_remove(m->segs, w << m->shift, len);	/* no segment crosses a window edge */
	m->win[w] = slot;
}

/*
 * join() - give windows first..last one contiguous mapping: move the mapped
 * ones into a fresh reservation and let the unmapped ones take their
 * slots.  A window without segments is one host mapping, and moves with
 * one mremap (page tables and all: neither its contents nor the host memory
 * they use change); a window with segments is copied (copy_segmented()).
 * On failure every window still holds its contents, wherever it now is,
 * and the unused slots are unmapped.
 *
 * A refused mremap leaves its slot ours and mapped (Linux 6.17 on, or a
 * refusal before the unmap, such as the map-count limit), or, before
 * 6.17, a hole, into which another thread (cffi releases the GIL) may map
 * memory before we look.  So that slot is unmapped only when msync() finds
 * all of it mapped: a hole is left alone.  What remains: should other
 * threads map memory over all of that hole in that moment, it is
 * unmapped under them.  That takes the kernel failing an allocation of
 * its own after its unmap, as in swap_in().
 */
static bool join(const struct pmem *m, uint64_t first, uint64_t last)
{
	const uint64_t wb = window_bytes(m);
	uint64_t total = ((last - first) * wb) + window_len(m, last);
	uint8_t *base = map_fresh(total);
	uint64_t refused = last + 1U;	/* the window whose move failed */

	if (base == NULL) {
		return false;
	}
	for (uint64_t w = first; (w <= last) && (refused > last); w++) {
		uint8_t *slot = base + ((w - first) * wb);

		if ((m->win[w] != NULL) && window_segmented(m, w)) {
			copy_segmented(m, w, slot);
		} else if (m->win[w] != NULL) {
			if (mremap(m->win[w], window_len(m, w), window_len(m, w),
				   MREMAP_MAYMOVE | MREMAP_FIXED, slot) == MAP_FAILED) {
				refused = w;
			} else {
				m->win[w] = slot;
			}
		}
	}
	for (uint64_t w = first; w <= last; w++) {
		uint8_t *slot = base + ((w - first) * wb);

		if (m->win[w] == slot) {
			continue;
		}
		if ((refused > last) && (m->win[w] == NULL)) {
			m->win[w] = slot;
		} else if ((w != refused) || (msync(slot, window_len(m, w), MS_ASYNC) == 0)) {
			(void)munmap(slot, window_len(m, w));
		}
	}
	return refused > last;
}

void *pmem_back(const struct pmem *m, uint64_t off, uint64_t len)
{
	uint64_t first = off >> m->shift;
	uint64_t last = (off + len - 1U) >> m->shift;

	if (first == last) {
		if (m->win[first] == NULL) {
			m->win[first] = map_fresh(window_len(m, first));
			if (m->win[first] == NULL) {
				return NULL;
			}
		}
	} else if (!contiguous(m, first, last) && !join(m, first, last)) {
		return NULL;
	}
	return m->win[first] + (off & (window_bytes(m) - 1U));
}

/* [pa, pa + len) inside the DRAM, len 0 allowed up to its end; the offset in *off. */
static bool copy_range(const struct pmem *m, uint64_t pa, uint64_t len, uint64_t *off)
{
	if ((m == NULL) || (m->win == NULL) || (pa < m->pa_base)) {
		return false;
	}
	*off = pa - m->pa_base;
	return (*off <= m->size) && (len <= (m->size - *off));
}

/* One window's share of a copy: [off, off + len) is cut at window boundaries. */
struct piece {
	uint64_t w;	/* window */
	uint64_t in;	/* offset inside the window */
	uint64_t len;
	uint64_t done;	/* bytes of the whole copy before this piece */
};

static bool next_piece(const struct pmem *m, uint64_t off, uint64_t len, struct piece *p)
{
	uint64_t at = off + p->done + p->len;
	uint64_t room;

	p->done += p->len;
	if (p->done >= len) {
		return false;
	}
	p->w = at >> m->shift;
	p->in = at & (window_bytes(m) - 1U);
	room = window_len(m, p->w) - p->in;
	p->len = ((len - p->done) < room) ? (len - p->done) : room;
	return true;
}

int pmem_read(const struct pmem *m, uint64_t pa, void *dst, uint64_t len)
{
	struct piece p = { 0U, 0U, 0U, 0U };
	uint64_t off;

	if (!copy_range(m, pa, len, &off) || ((dst == NULL) && (len != 0U))) {
		return -EFAULT;
	}
	while (next_piece(m, off, len, &p)) {
		uint8_t *out = (uint8_t *)dst + p.done;

		if (m->win[p.w] == NULL) {
			memset(out, 0, p.len);
		} else {
			memcpy(out, m->win[p.w] + p.in, p.len);
		}
	}
	return 0;
}

/*
 * Zero [off, off + len) at @host, inside one shared segment: MADV_DONTNEED
 * there would bring the pattern back, so put fresh anonymous memory there
 * (swap_in()) and record that part as anonymous.  If the heap or the host
 * refuses, write zeros instead, page by page where not zero already (the
 * kernel copies those pages); the part stays shared, so a later release
 * comes here again rather than to MADV_DONTNEED.
 */
static void unshare_zero(const struct pmem *m, uint64_t off, uint8_t *host, uint64_t len)
{
	uint8_t *fresh;
	enum swap r = SWAP_KEPT;

	if (!seg_reserve(m->segs, 3U)) {
		zero_where_needed(host, len);
		return;
	}
	fresh = map_fresh(len);
	if (fresh != NULL) {
		r = swap_in(host, fresh, len);
		if (r != SWAP_DONE) {
			(void)munmap(fresh, len);
		}
	}
	if ((r == SWAP_DONE) || (r == SWAP_ZEROS)) {
		seg_set(m->segs, off, len, false);	/* inside one segment: edges only, as before */
	} else if (r == SWAP_KEPT) {
		zero_where_needed(host, len);
	}
	/* SWAP_LOST: nothing is mapped there to write to (swap_in()). */
}

/*
 * Hand the whole pages [off, off + len) at @host back to the host:
 * MADV_DONTNEED where the memory is anonymous (it reads as zero afterwards),
 * unshare_zero() where it meets a shared run.
 */
static void release_pages(const struct pmem *m, uint64_t off, uint8_t *host, uint64_t len)
{
	const struct pmem_segs *s = m->segs;
	uint64_t at = off;
	uint64_t end = off + len;

	while (at < end) {
		uint64_t i = seg_shared_at(s, at);
		uint64_t stop = end;
		uint8_t *h = host + (at - off);

		if (i < s->n) {
			if ((s->v[i].off + s->v[i].len) < end) {
				stop = s->v[i].off + s->v[i].len;
			}
			unshare_zero(m, at, h, stop - at);
		} else {
			/* Up to the next shared segment, which starts after @at. */
			for (i = seg_find(s, at); (i < s->n) && (s->v[i].off < end); i++) {
				if (s->v[i].shared != 0U) {
					stop = s->v[i].off;
					break;
				}
			}
			if (madvise(h, stop - at, MADV_DONTNEED) != 0) {
				zero_where_needed(h, stop - at);
			}
		}
		at = stop;
	}
}

/*
 * Zero whole pages at DRAM offset @off.  A run of at least PMEM_RELEASE_MIN
 * bytes is handed back to the host; a shorter one is written, page by page
 * where not zero already: a page handed back costs a page fault when next
 * written (about 3.6 us against 0.1 us for a memset,
 * docs/decisions/0008-sparse-dram.md), and short ranges are the ones
 * written again at once (glob_data, per-CPU data, the shared buffer).
 */
static void clear_pages(const struct pmem *m, uint64_t off, uint8_t *host, uint64_t len)
{
	if (len >= PMEM_RELEASE_MIN) {
		release_pages(m, off, host, len);
	} else {
		zero_where_needed(host, len);
	}
}

/*
 * Zero host memory of one window, @p at DRAM offset @off: whole pages
 * handed back, partial ones written if not zero.
 */
static void clear_host(const struct pmem *m, uint64_t off, uint8_t *p, uint64_t len)
{
	uintptr_t start = (uintptr_t)p;
	uintptr_t lo = (start + PMEM_PAGE - 1U) & ~(uintptr_t)(PMEM_PAGE - 1U);
	uintptr_t hi = (start + len) & ~(uintptr_t)(PMEM_PAGE - 1U);

	if (lo >= hi) {	/* no whole page */
		zero_where_needed(p, len);
		return;
	}
	zero_where_needed(p, lo - start);
	clear_pages(m, off + (lo - start), (uint8_t *)lo, hi - lo);
	zero_where_needed((uint8_t *)hi, start + len - hi);
}

static int zero_range(const struct pmem *m, uint64_t pa, uint64_t len, bool unmap_whole)
{
	struct piece p = { 0U, 0U, 0U, 0U };
	uint64_t off;

	if (!copy_range(m, pa, len, &off)) {
		return -EFAULT;
	}
	while (next_piece(m, off, len, &p)) {
		if (m->win[p.w] == NULL) {
			continue;
		}
		if (unmap_whole && (p.in == 0U) && (p.len == window_len(m, p.w))) {
			(void)munmap(m->win[p.w], p.len);
			m->win[p.w] = NULL;
			seg_remove(m->segs, p.w << m->shift, p.len);	/* no segment crosses a window edge */
		} else {
			clear_host(m, (p.w << m->shift) + p.in, m->win[p.w] + p.in, p.len);
		}
	}
	return 0;
}

int pmem_zero(const struct pmem *m, uint64_t pa, uint64_t len)
{
	return zero_range(m, pa, len, true);
}

int pmem_clear(const struct pmem *m, uint64_t pa, uint64_t len)
{
	return zero_range(m, pa, len, false);
}

int pmem_map(const struct pmem *m, uint64_t pa, uint64_t len)
{
	struct piece p = { 0U, 0U, 0U, 0U };
	uint64_t off;

	if (!copy_range(m, pa, len, &off)) {
		return -EFAULT;
	}
	while (next_piece(m, off, len, &p)) {
		if (m->win[p.w] == NULL) {
			m->win[p.w] = map_fresh(window_len(m, p.w));
			if (m->win[p.w] == NULL) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/*
 * Write one piece into its mapped window: whole pages of zeros are released
 * instead of written (runs of them in one madvise), the rest copied where
 * it differs from what the page holds: writing a page what it holds
 * already would give a page of a shared run (or a never-written one) a
 * private copy for nothing.
 */
static void write_in_window(const struct pmem *m, const struct piece *p, const uint8_t *src)
{
	uint8_t *host = m->win[p->w];
	uint64_t base = p->w << m->shift;	/* DRAM offset of the window */
	uint64_t at = p->in;
	uint64_t end = p->in + p->len;
	uint64_t run = 0U;	/* start of a pending run of zero pages, valid when run_len != 0 */
	uint64_t run_len = 0U;

	while (at < end) {
		uint64_t next = (at & ~(PMEM_PAGE - 1U)) + PMEM_PAGE;
		uint64_t n = ((next < end) ? next : end) - at;
		const uint8_t *s = src + (at - p->in);

		if ((n == PMEM_PAGE) && all_zero(s, n)) {
			if (run_len == 0U) {
				run = at;
			}
			run_len += n;
		} else {
			clear_pages(m, base + run, host + run, run_len);
			run_len = 0U;
			if (memcmp(host + at, s, n) != 0) {
				memcpy(host + at, s, n);
			}
		}
		at += n;
	}
	clear_pages(m, base + run, host + run, run_len);
}

int pmem_write(const struct pmem *m, uint64_t pa, const void *src, uint64_t len)
{
	struct piece p = { 0U, 0U, 0U, 0U };
	uint64_t off;

	if (!copy_range(m, pa, len, &off) || ((src == NULL) && (len != 0U))) {
		return -EFAULT;
	}
	/* Map every window that gets a non-zero byte first, so a refusal changes nothing. */
	while (next_piece(m, off, len, &p)) {
		if ((m->win[p.w] == NULL) && !all_zero((const uint8_t *)src + p.done, p.len)) {
			m->win[p.w] = map_fresh(window_len(m, p.w));
			if (m->win[p.w] == NULL) {
				return -ENOMEM;
			}
		}
	}
	memset(&p, 0, sizeof(p));
	while (next_piece(m, off, len, &p)) {
		if (m->win[p.w] != NULL) {
			write_in_window(m, &p, (const uint8_t *)src + p.done);
		}
	}
	return 0;
}

void pmem_usage(const struct pmem *m, uint64_t *windows, uint64_t *mapped_bytes)
{
	uint64_t n = 0U;
	uint64_t bytes = 0U;

	if ((m != NULL) && (m->win != NULL)) {
		for (uint64_t w = 0U; w < m->nwin; w++) {
			if (m->win[w] != NULL) {
				n++;
				bytes += window_len(m, w);
			}
		}
	}
	if (windows != NULL) {
		*windows = n;
	}
	if (mapped_bytes != NULL) {
		*mapped_bytes = bytes;
	}
}

/*
 * Pattern files: one per distinct shared value, per process, never closed.
 * Each is a memfd (shmem) holding copies of its value, appended a page at
 * a time, so every byte below its size is the value and a mapping of
 * [0, size) reads nothing else.  Its size never shrinks (sealed: a page cut
 * from under a mapping would raise SIGBUS) and bytes once written are never
 * rewritten with anything else, so a mapping of it never changes under its
 * nodes.  A forked child that grows the file appends the same value.
 */
struct pattern {
	uint64_t value;
	int fd;
};

static struct pattern patterns[PMEM_PATTERNS];
static unsigned int npatterns;
static pthread_mutex_t pattern_lock = PTHREAD_MUTEX_INITIALIZER;

/* Append copies of @value to @fd until it holds @bytes of them. */
static bool pattern_grow(int fd, uint64_t value, uint64_t bytes)
{
	uint64_t page[PMEM_PAGE / 8U];
	struct stat st;
	uint64_t at;

	if (fstat(fd, &st) != 0) {
		return false;
	}
	for (unsigned int i = 0U; i < (PMEM_PAGE / 8U); i++) {
		page[i] = value;
	}
	/* A short write may have left a partial page: write it again whole. */
	for (at = (uint64_t)st.st_size & ~(PMEM_PAGE - 1U); at < bytes; at += PMEM_PAGE) {
		if (pwrite(fd, page, PMEM_PAGE, (off_t)at) != (ssize_t)PMEM_PAGE) {
			return false;
		}
	}
	return true;
}

static int pattern_new(void)
{
	/* Not executable, sealed so (and no kernel warning, Linux 6.3 on); older kernels refuse the flag. */
	int fd = memfd_create("lfafs-pattern", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);

	if ((fd < 0) && (errno == EINVAL)) {
		fd = memfd_create("lfafs-pattern", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	}

	if ((fd >= 0) && (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)) {
		(void)close(fd);
		fd = -1;
	}
	return fd;
}

/* The pattern file of @value, holding at least @bytes of it; -1 when the host refuses. */
static int pattern_fd(uint64_t value, uint64_t bytes)
{
	unsigned int i = 0U;
	int fd = -1;

	if (pthread_mutex_lock(&pattern_lock) != 0) {
		return -1;
	}
	while ((i < npatterns) && (patterns[i].value != value)) {
		i++;
	}
	if ((i == npatterns) && (npatterns < PMEM_PATTERNS)) {
		patterns[i].fd = pattern_new();
		patterns[i].value = value;
		if (patterns[i].fd >= 0) {
			npatterns++;
		}
	}
	if ((i < npatterns) && pattern_grow(patterns[i].fd, value, bytes)) {
		fd = patterns[i].fd;
	}
	(void)pthread_mutex_unlock(&pattern_lock);
	return fd;
}

/* Every 64-bit word of the page at @p is @value. */
static bool page_holds(const uint8_t *p, uint64_t value)
{
	uint64_t first;

	memcpy(&first, p, sizeof(first));
	return (first == value) && (memcmp(p, p + sizeof(first), PMEM_PAGE - sizeof(first)) == 0);
}

/*
 * Map the pattern file of @value over the run [off, off + len) of window @w:
 * a view of it made where the kernel chooses, then put over the run by
 * swap_in(), which frees the run's anonymous pages.  A refusal leaves the
 * run's contents as they were: in its old pages (SWAP_KEPT), or copied back
 * from the view into fresh ones, which become an anonymous segment
 * (SWAP_ZEROS; the view holds the run's contents, page_holds()).
 */
static int share_run(const struct pmem *m, uint64_t w, uint64_t off, uint64_t len, uint64_t value)
{
	uint8_t *host = m->win[w] + (off - (w << m->shift));
	void *view;
	enum swap r;
	int fd;

	if (!seg_reserve(m->segs, 3U)) {
		return -ENOMEM;
	}
	fd = pattern_fd(value, len);
	if (fd < 0) {
		return -ENOMEM;
	}
	view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (view == MAP_FAILED) {
		return -ENOMEM;
	}
	(void)madvise(view, len, MADV_NOHUGEPAGE);	/* as map_fresh(): the kernel's copies stay 4 KB */
	r = swap_in(host, view, len);
	if (r == SWAP_DONE) {
		seg_set(m->segs, off, len, true);
		return 0;
	}
	if (r == SWAP_ZEROS) {
		memcpy(host, view, len);
		seg_set(m->segs, off, len, false);
	}
	(void)munmap(view, len);
	return -ENOMEM;
}

/* Share the runs of one piece of a mapped window: whole pages, not shared already. */
static int share_in_window(const struct pmem *m, const struct piece *p)
{
	const uint8_t *host = m->win[p->w];
	uint64_t base = p->w << m->shift;
	uint64_t at = (p->in + PMEM_PAGE - 1U) & ~(PMEM_PAGE - 1U);
	uint64_t end = (p->in + p->len) & ~(PMEM_PAGE - 1U);
	int ret = 0;

	while (at < end) {
		uint64_t value;
		uint64_t stop = at;

		memcpy(&value, host + at, sizeof(value));
		while ((stop < end) && ((stop - at) < (PMEM_SHARE_MAX_PAGES * PMEM_PAGE)) &&
		       page_holds(host + stop, value) && (seg_shared_at(m->segs, base + stop) == m->segs->n)) {
			stop += PMEM_PAGE;
		}
		if (stop == at) {
			at += PMEM_PAGE;
			continue;
		}
		/* Zeros are cheaper handed back than shared (pmem_write, pmem_zero). */
		if ((value != 0U) && ((stop - at) >= (PMEM_SHARE_MIN_PAGES * PMEM_PAGE)) &&
		    (share_run(m, p->w, base + at, stop - at, value) != 0)) {
			ret = -ENOMEM;
		}
		at = stop;
	}
	return ret;
}

int pmem_share(const struct pmem *m, uint64_t pa, uint64_t len)
{
	struct piece p = { 0U, 0U, 0U, 0U };
	uint64_t off;
	int ret = 0;

	if (!copy_range(m, pa, len, &off)) {
		return -EFAULT;
	}
	while (next_piece(m, off, len, &p)) {
		if ((m->win[p.w] != NULL) && (share_in_window(m, &p) != 0)) {
			ret = -ENOMEM;
		}
	}
	return ret;
}

void pmem_shared(const struct pmem *m, uint64_t *runs, uint64_t *bytes)
{
	uint64_t n = 0U;
	uint64_t b = 0U;

	if ((m != NULL) && (m->segs != NULL)) {
		for (uint64_t i = 0U; i < m->segs->n; i++) {
			if (m->segs->v[i].shared != 0U) {
				n++;
				b += m->segs->v[i].len;
			}
		}
	}
	if (runs != NULL) {
		*runs = n;
	}
	if (bytes != NULL) {
		*bytes = b;
	}
}
