"""Build recipe of the native core (cffi, out-of-line API mode).

This is the only module that knows how the C in ``native/`` is compiled.
``setup.py`` names it in ``cffi_modules``; ``lfafs.xlat`` imports the
result, ``lfafs._xlat_native``.

Set ``LFAFS_SANITIZE=1`` to build with AddressSanitizer and
UndefinedBehaviorSanitizer (``make sanitize``).
"""

from __future__ import annotations

import os
import pathlib

import cffi

NATIVE = pathlib.Path(__file__).resolve().parent.parent / "native"
# Sources by role, lowest layer first; each calls only into those before it
# (see native/xlat.h for the header of each concern).
SOURCES = [
    "pmem.c",           # the sparse store behind emulated DRAM, the only caller of mmap
    "va_bitmap.c",      # bitmap and summary tree, knows nothing of tables
    "xlat_desc.c",      # descriptor codec
    "xlat_contexts.c",  # environment, context validity, plain-bytes form
    "xlat_walk.c",      # software walkers
    "xlat_alloc.c",     # the VA allocator, parent flags, search policies, check
    "xlat_core.c",      # context configuration, estimator, context init
    "xlat_build.c",     # the table build (and its dry run, the table count)
    "xlat_stitch.c",    # L1 stitching of a child context into a parent
    "xlat_l3.c",        # runtime L3 transitions
    "xlat_reference.c",  # TF-RMM's unmap as TF-RMM runs it, for lfafs bench
]

# Every constant is declared with "..." so that its value comes from the C
# headers: Python reads lib.NAME and never re-types a number.
CDEF = """
#define XLAT_GRANULE_SHIFT ...
#define XLAT_GRANULE_SIZE ...
#define XLAT_TABLE_ENTRIES ...
#define XLAT_LEVEL_MIN ...
#define XLAT_LEVEL_MAX ...
#define XLAT_MAX_PA_LPA2 ...
#define TRANSIENT_DESC ...
#define VA_ALLOCATED_FLAG ...
#define RESERVED_DESC ...

#define MT_DEVICE ...
#define MT_MEMORY ...
#define MT_TRANSIENT ...
#define MT_RW ...
#define MT_EXECUTE_NEVER ...
#define MT_CONT ...
#define MT_NG ...
#define MT_NS ...
#define MT_AP_UNPRIV ...
#define MT_EXEC_UNPRIV ...
#define MT_AP_AMEC ...
#define MT_RO ...
#define MT_REALM ...
#define MT_EXECUTE ...
#define MT_CODE ...
#define MT_RO_DATA ...
#define MT_RW_DATA ...
#define MT_RW_DEV ...

#define PMEM_WINDOW_SHIFT ...
#define PMEM_WINDOW_SHIFT_MIN ...
#define PMEM_WINDOW_SHIFT_MAX ...
#define PMEM_MAX_WINDOWS ...
#define PMEM_SHARE_MIN_PAGES ...
#define PMEM_SHARE_MAX_PAGES ...

#define XLAT_MAX_REGIONS ...
#define XLAT_TLBI_RING ...
#define XLAT_F_LPA2 ...
#define XLAT_F_REMAPPED ...
#define XLAT_POLICY_BITMAP ...
#define XLAT_POLICY_SCAN ...
#define XLAT_CHECK_BAD_TABLE ...
#define XLAT_CHECK_BAD_ENTRY ...
#define XLAT_CHECK_BITMAP_MISMATCH ...
#define XLAT_CHECK_SUMMARY ...
#define XLAT_CHECK_PARENT_FLAG ...
#define XLAT_CHECK_BAD_CONTEXT ...

struct pmem_segs;
struct pmem { uint8_t **win; struct pmem_segs *segs; uint64_t pa_base; uint64_t size; uint64_t nwin;
              uint32_t shift; uint32_t pad; };
struct xlat_region { uint64_t base_pa; uint64_t base_va; uint64_t size; uint64_t attr;
                     uint64_t granularity; };
struct xlat_tlbi_entry { uint64_t va; uint64_t pages; };
struct xlat_tlbi_log { uint64_t pages; uint64_t syncs; uint32_t head; uint32_t count;
                       struct xlat_tlbi_entry ring[...]; };
struct xlat_env { struct pmem mem; uint32_t mmu_on; uint32_t pad; struct xlat_tlbi_log tlbi; };
struct xlat_ctx {
    uint64_t magic; uint32_t flags; int32_t base_level; uint64_t base_va; uint64_t va_size;
    uint64_t max_mapped_pa; uint64_t tables_pa; uint64_t tables_num; uint64_t next_table;
    uint64_t tbls_va; int64_t tbls_va_to_pa_diff; uint64_t alloc_pa; uint64_t alloc_bytes;
    uint64_t alloc_va; uint64_t alloc_pages; uint32_t nregions; uint32_t pad;
    struct xlat_region regions[...];
};
struct xlat_llt { uint64_t table_pa; uint64_t base_va; int32_t level; uint32_t entries; };
struct xlat_check_report { uint64_t va; int32_t level; uint32_t what; };

int pmem_read(const struct pmem *m, uint64_t pa, void *dst, uint64_t len);
int pmem_write(const struct pmem *m, uint64_t pa, const void *src, uint64_t len);
int pmem_zero(const struct pmem *m, uint64_t pa, uint64_t len);
void pmem_usage(const struct pmem *m, uint64_t *windows, uint64_t *mapped_bytes);
int pmem_share(const struct pmem *m, uint64_t pa, uint64_t len);
void pmem_shared(const struct pmem *m, uint64_t *runs, uint64_t *bytes);

int xlat_env_init(struct xlat_env *env, uint64_t pa_base, uint64_t size, uint32_t window_shift);
void xlat_env_fini(struct xlat_env *env);
void xlat_tlbi_clear(struct xlat_env *env);
int xlat_base_level(uint64_t va_size, bool lpa2);
unsigned long xlat_estimate_num_l3_l2_tables(const struct xlat_region *regions, unsigned int n);
int xlat_ctx_cfg_init(struct xlat_ctx *ctx, const struct xlat_region *regions, unsigned int n,
                      uint64_t partial_va_base, uint64_t va_size, uint32_t flags);
int xlat_ctx_requirements(const struct xlat_ctx *ctx, uint64_t *tables, uint64_t *alloc_bytes);
int xlat_ctx_init(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
                  uint64_t ntables, uint64_t alloc_pa);
int xlat_ctx_init_remapped(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t tables_pa,
                           uint64_t ntables, uint64_t tbls_va, uint64_t alloc_pa);
uint64_t xlat_ctx_bytes(void);
int xlat_ctx_save(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t pa);
int xlat_ctx_load(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa);
int xlat_stitch_tables_l1(struct xlat_env *env, struct xlat_ctx *parent,
                          const struct xlat_ctx *child, uint64_t va_start, uint64_t va_size,
                          uint32_t *stitched);
int xlat_map_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t pa, uint64_t size,
                       uint64_t attr, uint64_t *mapped_va);
int xlat_unmap_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va, uint64_t size);
int xlat_reserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t size,
                              uint64_t *va);
int xlat_populate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
                               uint64_t pa, uint64_t size, uint64_t attr);
int xlat_commit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
                             uint64_t size);
int xlat_decommit_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
                               uint64_t size);
int xlat_depopulate_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
                                 uint64_t size);
int xlat_unreserve_va_l3_region(struct xlat_env *env, struct xlat_ctx *ctx, uint64_t va,
                                uint64_t size);
int xlat_map_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *pas,
                      uint64_t n, uint64_t size, uint64_t attr, uint32_t policy,
                      uint64_t *vas, uint64_t *done);
int xlat_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
                        uint64_t n, uint64_t size, uint64_t *done);
int xlat_tfrmm_unmap_l3_batch(struct xlat_env *env, struct xlat_ctx *ctx, const uint64_t *vas,
                              uint64_t n, uint64_t size, uint64_t *done, uint64_t *ns);
int xlat_find_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
                 uint32_t policy, uint64_t *va);
int xlat_find_va_repeat(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t size,
                        uint32_t policy, uint64_t reps, uint64_t *va);
int xlat_alloc_stats(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t *free_pages,
                     uint64_t *longest_run);
int xlat_get_llt_from_va(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
                         struct xlat_llt *llt);
int xlat_get_tte_pa(const struct xlat_llt *llt, uint64_t va, uint64_t *tte_pa);
int xlat_read_desc(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, int level,
                   uint64_t *desc, int32_t *leaf_level);
int xlat_read_l3_range(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
                       uint64_t pages, uint64_t *out);
int xlat_walk(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va, uint64_t *pa,
              uint64_t *desc, int32_t *level);
int xlat_get_contig_pa_level3(struct xlat_env *env, const struct xlat_ctx *ctx, uint64_t va,
                              uint64_t top_va, uint64_t *pa_out, uint64_t *bytes);
uint64_t xlat_desc(uint64_t attr, uint64_t pa, int level, bool lpa2);
uint64_t xlat_desc_attr(uint64_t desc);
uint64_t xlat_desc_oa(uint64_t desc, bool lpa2);
int xlat_check(struct xlat_env *env, const struct xlat_ctx *ctx, struct xlat_check_report *rep);
"""


def _flags() -> tuple[list[str], list[str]]:
    # Calls between our own C files stay direct inside the shared object:
    # without -fvisibility=hidden and -fno-semantic-interposition, -fPIC
    # routes every one through the PLT.  -flto lets the hot paths inline
    # across the files by concern (the allocator's record and search into
    # the runtime L3 calls) as they would within one file.
    opt = "-O2"
    extra: list[str] = []
    if os.environ.get("LFAFS_SANITIZE") == "1":
        opt = "-O1"
        extra = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                 "-fno-omit-frame-pointer", "-g"]
    cflags = ["-std=c11", opt, "-Wall", "-Wextra", "-fno-strict-aliasing",
              "-fvisibility=hidden", "-fno-semantic-interposition", "-flto", *extra]
    return cflags, ["-flto", opt, *extra]


ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "lfafs._xlat_native",
    '#include "xlat.h"',
    # setuptools wants paths relative to setup.py
    sources=[os.path.relpath(NATIVE / s) for s in SOURCES],
    include_dirs=[os.path.relpath(NATIVE)],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
