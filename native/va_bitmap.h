/* SPDX-License-Identifier: MIT */
/*
 * Bitmap VA allocator with a summary tree.
 *
 * One bit per 4 KB page (1 = not available), in 64-bit words, as the TF-RMM
 * LFA design proposes.  Above the words sits a complete binary tree whose
 * nodes hold, for the pages they cover, the length of the free run at the
 * low end (pre), at the high end (suf) and the longest free run anywhere
 * (max).  The lowest free run of n pages is found by one descent from the
 * root, O(log pages) whatever the fragmentation; an update of k pages costs
 * O(k / 64 + log pages).
 *
 * The words and the tree live in caller-provided memory (emulated DRAM in
 * lfafs), laid out as:
 *
 *     struct va_bitmap_hdr hdr;            64 bytes
 *     uint64_t words[leaves];              leaves = next power of two >= words
 *     struct va_summary nodes[2 * leaves]; node 1 is the root, node 0 unused,
 *                                          node leaves + w summarises words[w]
 *     uint64_t full[...];                  "word is all used" bits, 64-ary,
 *                                          level by level up to one word
 *
 * The full bits answer the commonest request, one page, with one load per
 * 64-ary level (3 for a 1 GB pool) instead of a 12-level descent.
 *
 * One leaf may be "pending": its word changed but its ancestors in the tree
 * were not yet recomputed.  A single-word update to the pending word costs
 * nothing more; an update elsewhere first writes the tree up to date (one
 * O(log pages) pass, va_bitmap_flush).  A multi-page search, the longest
 * run and the check fold the pending leaf in as they read (the same pass,
 * kept on the stack) and write nothing, so a call that fails after a search
 * leaves every byte as it was.  A run of one-page maps that fill a word
 * pays for the tree once per word, and every search still sees an exact
 * tree.
 *
 * Bits past the last real page are kept at 1, so padding never looks free.
 *
 * This file knows nothing of translation tables.
 */
#ifndef LFAFS_VA_BITMAP_H
#define LFAFS_VA_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest bitmap: 2^27 pages = 512 GB of VA, one L0 entry. */
#define VA_BITMAP_MAX_PAGES	(1ULL << 27)

struct va_summary {
	uint32_t pre;
	uint32_t suf;
	uint32_t max;
};

/* A view of a bitmap whose memory has already been bounds-checked. */
#define VA_FULL_LEVELS_MAX	4

struct va_bitmap_hdr {
	uint64_t pending;	/* leaf index + 1 whose ancestors are stale, or 0 */
	uint64_t reserved[7];
};

struct va_bitmap {
	struct va_bitmap_hdr *hdr;
	uint64_t *words;
	struct va_summary *nodes;
	uint64_t *full[VA_FULL_LEVELS_MAX];	/* full[0] has a bit per word */
	uint64_t full_words[VA_FULL_LEVELS_MAX];
	unsigned int full_levels;
	uint64_t leaves;	/* power of two */
	uint64_t pages;		/* real pages; the rest is padding */
};

/* Number of leaf words (a power of two) for a bitmap of @pages pages. */
uint64_t va_bitmap_leaves(uint64_t pages);

/* Bytes of memory a bitmap of @pages pages needs, rounded up to 4 KB. */
uint64_t va_bitmap_bytes(uint64_t pages);

/* Build a view over @mem, which holds va_bitmap_bytes(pages) bytes. */
void va_bitmap_view(struct va_bitmap *bm, void *mem, uint64_t pages);

/* Mark every page used (padding included), then rebuild the tree. */
void va_bitmap_fill(struct va_bitmap *bm);

/* Recompute every tree node from the words. */
void va_bitmap_rebuild(struct va_bitmap *bm);

/*
 * Lowest page index that starts a free run of @n pages, or -1 if there is
 * none (also for n = 0).  Writes nothing.
 */
int64_t va_bitmap_find(const struct va_bitmap *bm, uint64_t n);

/* Bring the tree up to date with the pending leaf, if any; the bits do not change. */
void va_bitmap_flush(struct va_bitmap *bm);

/* Set (used = true) or clear the bits of [first, first + n) and update the tree. */
void va_bitmap_assign(struct va_bitmap *bm, uint64_t first, uint64_t n, bool used);

/* Value of one bit. */
bool va_bitmap_used(const struct va_bitmap *bm, uint64_t page);

/* True when every page of [first, first + n) is used. */
bool va_bitmap_all_used(const struct va_bitmap *bm, uint64_t first, uint64_t n);

/* Longest free run, in pages.  Writes nothing. */
uint64_t va_bitmap_longest(const struct va_bitmap *bm);

/* Number of free pages (a full count, for reports and checks). */
uint64_t va_bitmap_free(const struct va_bitmap *bm);

/*
 * Verify the tree against the words and the padding.  Returns 0, or -1 and
 * stores the first bad node index (0 for padding) in *bad.  Writes nothing.
 */
int va_bitmap_verify(const struct va_bitmap *bm, uint64_t *bad);

#endif /* LFAFS_VA_BITMAP_H */
