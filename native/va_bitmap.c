/* SPDX-License-Identifier: MIT */
/*
 * Bitmap VA allocator with a summary tree; see va_bitmap.h for the layout.
 *
 * Kept together as one file although it is long: the words, the summary
 * tree, the full bits and the pending leaf are one data structure, and every
 * update must leave all four consistent; split, each part's invariants
 * would have to be restated in the others.
 */
#include "va_bitmap.h"

#define WORD_BITS	64U

static inline uint32_t max3_u32(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t m = (a > b) ? a : b;

	return (m > c) ? m : c;
}

/*
 * Longest run of set bits in x, for x neither 0 nor all ones.  Binary
 * lifting: y[j] has bit p set when bits p .. p + 2^j - 1 of x are all set.
 */
static uint32_t longest_ones(uint64_t x)
{
	uint64_t y[6];
	uint64_t cur = ~0ULL;
	uint32_t len = 0U;

	/* One run only (the common case): adding its lowest bit clears it. */
	if ((x & (x + (x & (~x + 1U)))) == 0U) {
		return 64U - (uint32_t)__builtin_clzll(x) - (uint32_t)__builtin_ctzll(x);
	}

	y[0] = x;
	for (unsigned int j = 1U; j < 6U; j++) {
		y[j] = y[j - 1U] & (y[j - 1U] >> (1U << (j - 1U)));
	}
	for (int j = 5; j >= 0; j--) {
		uint64_t t = cur & (y[j] >> len);

		if (t != 0ULL) {
			cur = t;
			len += 1U << (unsigned int)j;
		}
	}
	return len;
}

/* Summary of one word: set bits are used pages. */
static inline struct va_summary word_summary(uint64_t w)
{
	struct va_summary s;

	if (w == 0ULL) {
		s.pre = WORD_BITS;
		s.suf = WORD_BITS;
		s.max = WORD_BITS;
	} else if (w == ~0ULL) {
		s.pre = 0U;
		s.suf = 0U;
		s.max = 0U;
	} else {
		s.pre = (uint32_t)__builtin_ctzll(w);
		s.suf = (uint32_t)__builtin_clzll(w);
		s.max = longest_ones(~w);
	}
	return s;
}

/* Depth of tree node i (the root, node 1, is at depth 0). */
static inline unsigned int node_depth(uint64_t i)
{
	return 63U - (unsigned int)__builtin_clzll(i);
}

/* Pages covered by each child of node i (i >= 1, i < leaves). */
static inline uint32_t child_pages(const struct va_bitmap *bm, uint64_t i)
{
	return (uint32_t)((bm->leaves >> (node_depth(i) + 1U)) * WORD_BITS);
}

static inline struct va_summary combine(struct va_summary l, struct va_summary r,
					uint32_t half)
{
	struct va_summary s;

	s.pre = (l.pre == half) ? (half + r.pre) : l.pre;
	s.suf = (r.suf == half) ? (half + l.suf) : r.suf;
	s.max = max3_u32(l.max, r.max, l.suf + r.pre);
	return s;
}

static inline void recompute(struct va_bitmap *bm, uint64_t i)
{
	bm->nodes[i] = combine(bm->nodes[2U * i], bm->nodes[(2U * i) + 1U], child_pages(bm, i));
}

static inline bool same_summary(struct va_summary a, struct va_summary b)
{
	return (a.pre == b.pre) && (a.suf == b.suf) && (a.max == b.max);
}

/* Nodes on a leaf-to-root path: leaves <= VA_BITMAP_MAX_PAGES / 64 = 2^21. */
#define PATH_MAX_NODES	22U
_Static_assert((VA_BITMAP_MAX_PAGES / WORD_BITS) == (1ULL << (PATH_MAX_NODES - 1U)),
	       "PATH_MAX_NODES must cover the deepest leaf");

/*
 * What bringing the tree up to date with the pending leaf would write:
 * node (leaf >> k) becomes s[k] for k < nodes.  The pending leaf's summary
 * is always rewritten; above it, the first ancestor that comes out
 * unchanged ends the path, since nothing above it can change either.
 */
struct pending_path {
	uint64_t leaf;		/* tree index of the pending leaf */
	unsigned int nodes;	/* 0: no pending leaf, the stored tree is exact */
	struct va_summary s[PATH_MAX_NODES];
};

/* Compute the pending path, carrying the summary up and reading only siblings. */
static void pending_path(const struct va_bitmap *bm, struct pending_path *pp)
{
	const uint64_t p = bm->hdr->pending;
	uint32_t half = WORD_BITS;
	struct va_summary s;
	uint64_t i;

	pp->nodes = 0U;
	/* The index lives in emulated memory: trust it only inside the tree. */
	if ((p == 0U) || (p > bm->leaves)) {
		pp->leaf = 0U;
		return;
	}
	i = bm->leaves + p - 1U;
	pp->leaf = i;
	s = word_summary(bm->words[p - 1U]);
	pp->s[pp->nodes++] = s;
	while (i > 1U) {
		const struct va_summary sib = bm->nodes[i ^ 1U];

		s = ((i & 1U) != 0U) ? combine(sib, s, half) : combine(s, sib, half);
		i >>= 1U;
		half <<= 1U;
		if (same_summary(bm->nodes[i], s)) {
			return;
		}
		pp->s[pp->nodes++] = s;
	}
}

/* Node i as it is once the pending leaf is folded in; reads only. */
static inline struct va_summary node_at(const struct va_bitmap *bm,
					const struct pending_path *pp, uint64_t i)
{
	if (pp->nodes != 0U) {
		unsigned int up = node_depth(pp->leaf) - node_depth(i);

		if ((up < pp->nodes) && ((pp->leaf >> up) == i)) {
			return pp->s[up];
		}
	}
	return bm->nodes[i];
}

void va_bitmap_flush(struct va_bitmap *bm)
{
	struct pending_path pp;

	pending_path(bm, &pp);
	bm->hdr->pending = 0U;
	for (unsigned int k = 0U; k < pp.nodes; k++) {
		bm->nodes[pp.leaf >> k] = pp.s[k];
	}
}

uint64_t va_bitmap_leaves(uint64_t pages)
{
	uint64_t words = (pages + WORD_BITS - 1U) / WORD_BITS;

	if (words <= 1U) {
		return 1U;
	}
	/* next power of two; pages <= VA_BITMAP_MAX_PAGES keeps this in range */
	return 1ULL << (64U - (unsigned int)__builtin_clzll(words - 1U));
}

/* Words at each level of the full bits; returns the number of levels. */
static unsigned int full_geometry(uint64_t leaves, uint64_t words[VA_FULL_LEVELS_MAX])
{
	uint64_t n = leaves;
	unsigned int k = 0U;

	do {
		n = (n + WORD_BITS - 1U) / WORD_BITS;
		words[k++] = n;
	} while ((n > 1U) && (k < VA_FULL_LEVELS_MAX));
	return k;
}

uint64_t va_bitmap_bytes(uint64_t pages)
{
	uint64_t leaves = va_bitmap_leaves(pages);
	uint64_t fw[VA_FULL_LEVELS_MAX];
	unsigned int levels = full_geometry(leaves, fw);
	uint64_t bytes = sizeof(struct va_bitmap_hdr) + (leaves * sizeof(uint64_t)) +
			 (2U * leaves * sizeof(struct va_summary));

	for (unsigned int k = 0U; k < levels; k++) {
		bytes += fw[k] * sizeof(uint64_t);
	}
	return (bytes + 4095U) & ~4095ULL;
}

void va_bitmap_view(struct va_bitmap *bm, void *mem, uint64_t pages)
{
	uint64_t *next;

	bm->leaves = va_bitmap_leaves(pages);
	bm->pages = pages;
	bm->hdr = (struct va_bitmap_hdr *)mem;
	bm->words = (uint64_t *)(void *)(bm->hdr + 1);
	bm->nodes = (struct va_summary *)(void *)(bm->words + bm->leaves);
	bm->full_levels = full_geometry(bm->leaves, bm->full_words);
	next = (uint64_t *)(void *)(bm->nodes + (2U * bm->leaves));
	for (unsigned int k = 0U; k < bm->full_levels; k++) {
		bm->full[k] = next;
		next += bm->full_words[k];
	}
}

/* Expected value of full word j at level k (from the level below). */
static uint64_t full_word(const struct va_bitmap *bm, unsigned int k, uint64_t j)
{
	uint64_t v = 0U;
	uint64_t below = (k == 0U) ? bm->leaves : bm->full_words[k - 1U];

	for (uint64_t b = 0U; b < WORD_BITS; b++) {
		uint64_t child = (j * WORD_BITS) + b;
		bool is_full = (child >= below) ||
			       (((k == 0U) ? bm->words[child] : bm->full[k - 1U][child]) == ~0ULL);

		if (is_full) {
			v |= 1ULL << b;
		}
	}
	return v;
}

/* Word w changed: carry "all used" up the 64-ary levels while it flips. */
static void update_full(struct va_bitmap *bm, uint64_t w)
{
	bool is_full = bm->words[w] == ~0ULL;
	uint64_t idx = w;

	for (unsigned int k = 0U; k < bm->full_levels; k++) {
		uint64_t *f = &bm->full[k][idx / WORD_BITS];
		uint64_t old = *f;
		uint64_t bit = 1ULL << (idx % WORD_BITS);
		uint64_t now = is_full ? (old | bit) : (old & ~bit);

		if (now == old) {
			return;
		}
		*f = now;
		if ((old == ~0ULL) == (now == ~0ULL)) {
			return;
		}
		is_full = now == ~0ULL;
		idx /= WORD_BITS;
	}
}

/* Lowest free page through the full bits, or -1. */
static int64_t find_one(const struct va_bitmap *bm)
{
	unsigned int k = bm->full_levels - 1U;
	uint64_t top = bm->full[k][0];
	uint64_t idx;

	if (top == ~0ULL) {
		return -1;
	}
	idx = (uint64_t)__builtin_ctzll(~top);
	while (k > 0U) {
		k--;
		idx = (idx * WORD_BITS) + (uint64_t)__builtin_ctzll(~bm->full[k][idx]);
	}
	return (int64_t)((idx * WORD_BITS) + (uint64_t)__builtin_ctzll(~bm->words[idx]));
}

void va_bitmap_rebuild(struct va_bitmap *bm)
{
	bm->hdr->pending = 0U;
	for (uint64_t w = 0U; w < bm->leaves; w++) {
		bm->nodes[bm->leaves + w] = word_summary(bm->words[w]);
	}
	for (uint64_t i = bm->leaves - 1U; i >= 1U; i--) {
		recompute(bm, i);
	}
	for (unsigned int k = 0U; k < bm->full_levels; k++) {
		for (uint64_t j = 0U; j < bm->full_words[k]; j++) {
			bm->full[k][j] = full_word(bm, k, j);
		}
	}
}

void va_bitmap_fill(struct va_bitmap *bm)
{
	for (uint64_t w = 0U; w < bm->leaves; w++) {
		bm->words[w] = ~0ULL;
	}
	va_bitmap_rebuild(bm);
}

/* Lowest start of n set bits in x (1 <= n <= 64), or -1. */
static int lowest_run(uint64_t x, uint64_t n)
{
	uint64_t m = x;
	uint64_t k = 1U;

	while ((k < n) && (m != 0ULL)) {
		uint64_t s = ((n - k) < k) ? (n - k) : k;

		m &= m >> s;
		k += s;
	}
	return (m == 0ULL) ? -1 : __builtin_ctzll(m);
}

/*
 * One descent from the root to the lowest free run of n pages (2 <= n).
 * With @overlay the pending path's summaries replace the stored ones; the
 * two callers pass a constant, so the compiler keeps the plain descent as
 * tight as it was before there was an overlay.
 */
static inline int64_t descend(const struct va_bitmap *bm, const struct pending_path *pp,
			      uint64_t n, bool overlay)
{
	uint64_t i = 1U;
	uint64_t first = 0U;	/* first page of node i */
	uint64_t half = bm->leaves * (WORD_BITS / 2U);	/* pages under each child of i */
	unsigned int up = node_depth(bm->leaves) - 1U;	/* levels from i's children to the leaves */

	if ((overlay ? node_at(bm, pp, 1U) : bm->nodes[1]).max < n) {
		return -1;
	}
	/* Invariant: node i holds a free run of at least n pages. */
	for (; i < bm->leaves; up--) {
		/* The child of i whose summary is pending, or 0. */
		const uint64_t pc = (overlay && (up < pp->nodes)) ? (pp->leaf >> up) : 0U;
		struct va_summary l = ((2U * i) == pc) ? pp->s[up] : bm->nodes[2U * i];

		if (l.max >= n) {
			i = 2U * i;
		} else {
			/* Only now is the right child needed. */
			struct va_summary r = (((2U * i) + 1U) == pc) ? pp->s[up] : bm->nodes[(2U * i) + 1U];

			if (((uint64_t)l.suf + r.pre) >= n) {
				return (int64_t)(first + half - l.suf);
			}
			i = (2U * i) + 1U;
			first += half;
		}
		half >>= 1U;
	}
	/* A leaf with max >= n, so n <= 64. */
	return (int64_t)(first + (uint64_t)lowest_run(~bm->words[i - bm->leaves], n));
}

int64_t va_bitmap_find(const struct va_bitmap *bm, uint64_t n)
{
	struct pending_path pp;

	if (n == 1U) {
		return find_one(bm);
	}
	if (n == 0U) {
		return -1;
	}
	pending_path(bm, &pp);
	return (pp.nodes == 0U) ? descend(bm, &pp, n, false) : descend(bm, &pp, n, true);
}

static inline uint64_t range_mask(uint64_t lo, uint64_t hi)
{
	/* bits [lo, hi) of a word, 0 <= lo < hi <= 64 */
	uint64_t upper = (hi == WORD_BITS) ? ~0ULL : ((1ULL << hi) - 1ULL);

	return upper & ~((1ULL << lo) - 1ULL);
}

/*
 * Recompute the ancestors of leaves [lo, hi] (leaf indices), bottom up.  A
 * single-leaf update only marks its leaf pending; a wider one stops as soon
 * as a node comes out unchanged: nothing above it can change either.
 */
static void update_ancestors(struct va_bitmap *bm, uint64_t lo, uint64_t hi)
{
	uint32_t half = WORD_BITS;

	for (uint64_t w = lo; w <= hi; w++) {
		update_full(bm, w);
	}
	if (lo == hi) {
		if (bm->hdr->pending != lo + 1U) {
			va_bitmap_flush(bm);
			bm->hdr->pending = lo + 1U;
		}
		return;
	}
	va_bitmap_flush(bm);

	for (uint64_t w = lo; w <= hi; w++) {
		bm->nodes[bm->leaves + w] = word_summary(bm->words[w]);
	}
	lo += bm->leaves;
	hi += bm->leaves;
	while (lo > 1U) {
		lo >>= 1U;
		hi >>= 1U;
		for (uint64_t i = lo; i <= hi; i++) {
			struct va_summary s = combine(bm->nodes[2U * i], bm->nodes[(2U * i) + 1U], half);
			struct va_summary *node = &bm->nodes[i];

			if ((lo == hi) && (node->pre == s.pre) && (node->suf == s.suf) && (node->max == s.max)) {
				return;
			}
			*node = s;
		}
		half <<= 1U;
	}
}

/*
 * One page: the commonest update (one-page maps and unmaps), without the
 * range loops; the same effect as the general path below.
 */
static void assign_one(struct va_bitmap *bm, uint64_t page, bool used)
{
	const uint64_t w = page / WORD_BITS;
	const uint64_t bit = 1ULL << (page % WORD_BITS);
	const uint64_t old = bm->words[w];
	const uint64_t now = used ? (old | bit) : (old & ~bit);

	bm->words[w] = now;
	if ((old == ~0ULL) != (now == ~0ULL)) {
		update_full(bm, w);
	}
	if (bm->hdr->pending != w + 1U) {
		va_bitmap_flush(bm);
		bm->hdr->pending = w + 1U;
	}
}

void va_bitmap_assign(struct va_bitmap *bm, uint64_t first, uint64_t n, bool used)
{
	uint64_t end = first + n;
	uint64_t wfirst = first / WORD_BITS;
	uint64_t wlast;

	if (n == 1U) {
		assign_one(bm, first, used);
		return;
	}
	if (n == 0U) {
		return;
	}
	wlast = (end - 1U) / WORD_BITS;
	for (uint64_t w = wfirst; w <= wlast; w++) {
		uint64_t wlo = (w == wfirst) ? (first % WORD_BITS) : 0U;
		uint64_t whi = (w == wlast) ? (((end - 1U) % WORD_BITS) + 1U) : WORD_BITS;
		uint64_t mask = range_mask(wlo, whi);

		if (used) {
			bm->words[w] |= mask;
		} else {
			bm->words[w] &= ~mask;
		}
	}
	update_ancestors(bm, wfirst, wlast);
}

bool va_bitmap_used(const struct va_bitmap *bm, uint64_t page)
{
	return ((bm->words[page / WORD_BITS] >> (page % WORD_BITS)) & 1U) != 0U;
}

bool va_bitmap_all_used(const struct va_bitmap *bm, uint64_t first, uint64_t n)
{
	uint64_t end = first + n;

	if (n == 0U) {
		return true;
	}
	for (uint64_t w = first / WORD_BITS; w <= (end - 1U) / WORD_BITS; w++) {
		uint64_t wlo = (w == first / WORD_BITS) ? (first % WORD_BITS) : 0U;
		uint64_t whi = (w == (end - 1U) / WORD_BITS) ? (((end - 1U) % WORD_BITS) + 1U) :
								   WORD_BITS;
		uint64_t mask = range_mask(wlo, whi);

		if ((bm->words[w] & mask) != mask) {
			return false;
		}
	}
	return true;
}

uint64_t va_bitmap_longest(const struct va_bitmap *bm)
{
	struct pending_path pp;

	pending_path(bm, &pp);
	return node_at(bm, &pp, 1U).max;
}

uint64_t va_bitmap_free(const struct va_bitmap *bm)
{
	uint64_t free_pages = 0U;

	for (uint64_t w = 0U; w < bm->leaves; w++) {
		free_pages += (uint64_t)__builtin_popcountll(~bm->words[w]);
	}
	return free_pages;
}

int va_bitmap_verify(const struct va_bitmap *bm, uint64_t *bad)
{
	struct pending_path pp;

	if (bm->hdr->pending > bm->leaves) {
		*bad = 0U;
		return -1;
	}
	/* The tree as a flush would leave it, without writing it. */
	pending_path(bm, &pp);
	/* Padding: every bit at or past `pages` must be set. */
	for (uint64_t p = bm->pages; p < bm->leaves * WORD_BITS; p++) {
		if (!va_bitmap_used(bm, p)) {
			*bad = 0U;
			return -1;
		}
	}
	for (unsigned int k = 0U; k < bm->full_levels; k++) {
		for (uint64_t j = 0U; j < bm->full_words[k]; j++) {
			if (bm->full[k][j] != full_word(bm, k, j)) {
				*bad = 0U;
				return -1;
			}
		}
	}
	for (uint64_t w = 0U; w < bm->leaves; w++) {
		if (!same_summary(word_summary(bm->words[w]), node_at(bm, &pp, bm->leaves + w))) {
			*bad = bm->leaves + w;
			return -1;
		}
	}
	for (uint64_t i = bm->leaves - 1U; i >= 1U; i--) {
		struct va_summary want = combine(node_at(bm, &pp, 2U * i),
						 node_at(bm, &pp, (2U * i) + 1U),
						 child_pages(bm, i));

		if (!same_summary(want, node_at(bm, &pp, i))) {
			*bad = i;
			return -1;
		}
	}
	return 0;
}
