/* SPDX-License-Identifier: MIT */
/*
 * The sparse store behind emulated DRAM: window mappings, joining windows
 * for a range that spans them, and the copies; see pmem.h.  This file is
 * the only one that talks to the host's memory manager.
 */
#define _GNU_SOURCE	/* MAP_NORESERVE, MADV_NOHUGEPAGE, mremap() */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pmem.h"

#define PMEM_PAGE		4096ULL
#define PMEM_RELEASE_MIN	(16U * PMEM_PAGE)	/* see clear_pages() */

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
	if (m->win == NULL) {
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

/*
 * join() - give windows first..last one contiguous mapping: move the mapped
 * ones into a fresh reservation (mremap moves page tables, so neither the
 * contents nor the host memory they use change) and let the unmapped ones
 * take their slots.  On failure every window still holds its contents,
 * wherever it now is, and the unused slots are unmapped.
 */
static bool join(const struct pmem *m, uint64_t first, uint64_t last)
{
	const uint64_t wb = window_bytes(m);
	uint64_t total = ((last - first) * wb) + window_len(m, last);
	uint8_t *base = map_fresh(total);
	bool ok = true;

	if (base == NULL) {
		return false;
	}
	for (uint64_t w = first; (w <= last) && ok; w++) {
		uint8_t *slot = base + ((w - first) * wb);

		if (m->win[w] != NULL) {
			void *p = mremap(m->win[w], window_len(m, w), window_len(m, w),
					 MREMAP_MAYMOVE | MREMAP_FIXED, slot);

			if (p == MAP_FAILED) {
				ok = false;
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
		if (ok && (m->win[w] == NULL)) {
			m->win[w] = slot;
		} else {
			(void)munmap(slot, window_len(m, w));
		}
	}
	return ok;
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

static bool all_zero(const uint8_t *p, uint64_t n)
{
	return (n == 0U) || ((p[0] == 0U) && (memcmp(p, p + 1, n - 1U) == 0));
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
 * Zero whole pages.  A run of at least PMEM_RELEASE_MIN bytes is handed back
 * to the host (private anonymous memory reads as zero afterwards); a shorter
 * one is written, and only if not zero already: a page handed back costs a
 * page fault when next written (about 3.6 us against 0.1 us for a memset,
 * docs/decisions/0008-sparse-dram.md), and short ranges are the ones written
 * again at once (glob_data, per-CPU data, the shared buffer).
 */
static void clear_pages(uint8_t *host, uint64_t len)
{
	if (len >= PMEM_RELEASE_MIN) {
		if (madvise(host, len, MADV_DONTNEED) == 0) {
			return;
		}
	} else if (all_zero(host, len)) {
		return;
	}
	memset(host, 0, len);
}

/* Zero host memory of one window: whole pages handed back, partial ones written if not zero. */
static void clear_host(uint8_t *p, uint64_t len)
{
	uintptr_t start = (uintptr_t)p;
	uintptr_t lo = (start + PMEM_PAGE - 1U) & ~(uintptr_t)(PMEM_PAGE - 1U);
	uintptr_t hi = (start + len) & ~(uintptr_t)(PMEM_PAGE - 1U);

	if (lo >= hi) {	/* no whole page */
		if (!all_zero(p, len)) {
			memset(p, 0, len);
		}
		return;
	}
	if (!all_zero(p, lo - start)) {
		memset(p, 0, lo - start);
	}
	clear_pages((uint8_t *)lo, hi - lo);
	if (!all_zero((uint8_t *)hi, start + len - hi)) {
		memset((uint8_t *)hi, 0, start + len - hi);
	}
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
		} else {
			clear_host(m->win[p.w] + p.in, p.len);
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
 * instead of written (runs of them in one madvise), the rest copied.
 */
static void write_in_window(const struct pmem *m, const struct piece *p, const uint8_t *src)
{
	uint8_t *host = m->win[p->w];
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
			clear_pages(host + run, run_len);
			run_len = 0U;
			if (!all_zero(s, n) || !all_zero(host + at, n)) {
				memcpy(host + at, s, n);
			}
		}
		at += n;
	}
	clear_pages(host + run, run_len);
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
