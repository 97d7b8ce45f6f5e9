"""Context configuration and build (TF-RMM lib/xlat/src/xlat_contexts.c, xlat_ctx_cfg_init()
and xlat_ctx_init(); docs/rmm-lfa.md, "Contexts")."""

from __future__ import annotations

import errno

import pytest

from lfafs._xlat_native import ffi, lib
from lfafs.xlat import PAGE, Attr, Context, Region, XlatError

RW = Attr.RW_DATA | Attr.REALM
GB = 1 << 30
MB = 1 << 20


def cfg_err(regions, va_size=1 << 32, partial_base=0):
    with pytest.raises(XlatError) as e:
        Context.requirements(regions, va_size=va_size, partial_base=partial_base)
    return e.value.errno


@pytest.mark.parametrize(
    ("regions", "expected"),
    [
        ([Region(va=0, pa=0, size=0, attr=RW)], errno.EINVAL),
        ([Region(va=0x1000, pa=0x1001, size=PAGE, attr=RW)], errno.EFAULT),
        ([Region(va=0x1001, pa=0x1000, size=PAGE, attr=RW)], errno.EFAULT),
        ([Region(va=0, pa=0, size=PAGE + 1, attr=RW)], errno.EFAULT),
        ([Region(va=0, pa=0, size=PAGE, attr=RW, granularity=3 * PAGE)], errno.EINVAL),
        ([Region(va=0, pa=0, size=PAGE, attr=1 << 40)], errno.EINVAL),
        ([Region(va=(1 << 32) - PAGE, pa=0, size=2 * PAGE, attr=RW)], errno.ERANGE),
        ([Region(va=0, pa=(1 << 48) - PAGE, size=2 * PAGE, attr=RW)], errno.ERANGE),
        ([Region(va=0x2000, pa=0x2000, size=PAGE, attr=RW), Region(va=0x1000, pa=0x1000, size=PAGE, attr=RW)],
         errno.EPERM),
        ([Region(va=0x1000, pa=0x1000, size=2 * PAGE, attr=RW), Region(va=0x2000, pa=0x8000, size=PAGE, attr=RW)],
         errno.EPERM),
        ([Region(va=0x1000, pa=0x1000, size=PAGE, attr=RW), Region(va=0x2000, pa=0x1000, size=PAGE, attr=RW)],
         errno.EPERM),
        ([Region(va=1 << 52, pa=0, size=PAGE, attr=RW)], errno.EINVAL),
    ],
)
def test_region_validation_errors(regions, expected):
    assert cfg_err(regions) == expected


def test_transient_regions_skip_pa_overlap_checks():
    regions = [Region(va=0x1000, pa=0x1000, size=PAGE, attr=RW), Region.transient(0x2000, PAGE)]
    assert Context.requirements(regions, va_size=1 << 32).tables >= 1


def test_va_size_and_region_count_limits():
    r = [Region.transient(0, PAGE)]
    assert cfg_err(r, va_size=3 << 20) == errno.EINVAL  # not a power of two
    assert cfg_err(r, va_size=1 << 15) == errno.EINVAL
    assert cfg_err(r, va_size=1 << 49) == errno.EINVAL
    many = [Region.transient(i * 2 * PAGE, PAGE) for i in range(lib.XLAT_MAX_REGIONS + 1)]
    assert cfg_err(many) == errno.ERANGE
    with pytest.raises(XlatError) as e:
        Context.requirements([], va_size=1 << 32)
    assert e.value.errno == errno.EINVAL


def test_a_context_takes_twenty_regions(layout, memory):
    # TF-RMM's xlat_ctx_cfg_init() takes any number of regions; its unit tests
    # build up to XLAT_TESTS_MAX_MMAPS = 20 (lib/xlat/tests/xlat_test_helpers.h)
    regions = [Region(va=i * 2 * MB, pa=0x4000_0000 + i * 2 * MB, size=PAGE, attr=RW, granularity=PAGE)
               for i in range(19)]
    regions.append(Region.transient(64 * MB, 8 * PAGE))
    assert lib.XLAT_MAX_REGIONS >= 20
    ctx = layout.context(regions, va_size=1 << 32)
    assert ctx.regions == tuple(regions)
    assert [ctx.walk(r.va).pa for r in regions[:19]] == [r.pa for r in regions[:19]]
    pa = layout.take(Context.context_bytes())
    ctx.save(pa)
    assert Context.load(memory, pa).regions == tuple(regions)


def test_partial_base_must_be_aligned_to_the_base_level_block():
    # TF-RMM xlat_ctx_cfg_init(): "Partial base VA is not aligned with base level block size"
    r = [Region.transient(1 << 39, PAGE)]
    assert cfg_err(r, va_size=1 << 39, partial_base=(1 << 39) + MB) == errno.EINVAL
    assert cfg_err([Region.transient(0, PAGE)], va_size=1 << 39, partial_base=1 << 39) == errno.EINVAL


def test_partial_base_rebases_region_vas(layout):
    base = 1 << 39
    ctx = layout.context([Region.transient(base + 2 * MB, 2 * MB)], va_size=1 << 39, partial_base=base)
    raw = ctx._ctx.regions[0].base_va
    assert raw == 2 * MB  # stored relative, as TF-RMM rewrites it in place
    assert ctx.regions[0].va == base + 2 * MB
    assert ctx.base_va == base


def test_reinit_gives_ealready(layout, memory):
    ctx = layout.context([Region.transient(0, PAGE)], va_size=1 << 32)
    regions = ffi.new("struct xlat_region[1]")
    regions[0].size = PAGE
    regions[0].attr = 3
    regions[0].granularity = PAGE
    assert lib.xlat_ctx_cfg_init(ctx._ctx, regions, 1, 0, 1 << 32, 0) == -errno.EALREADY
    assert lib.xlat_ctx_init(memory._env, ctx._ctx, ctx.tables_pa, ctx.tables_num, ctx.alloc_pa) == -errno.EALREADY


def test_requirements_are_exact(layout):
    regions = [Region.transient(0, 600 * PAGE)]
    req = Context.requirements(regions, va_size=1 << 32)
    assert req.tables == 1 + 1 + 2  # L1 root, one L2, two L3
    ctx = layout.context(regions, va_size=1 << 32)
    assert ctx.tables_used == req.tables


def test_blocks_are_used_where_granularity_and_alignment_allow(layout):
    regions = [
        Region(va=GB, pa=GB, size=GB, attr=RW, granularity=GB),
        Region(va=2 * GB, pa=2 * GB, size=4 * MB, attr=RW, granularity=2 * MB),
        Region(va=3 * GB, pa=0x1_4020_0000, size=GB, attr=RW, granularity=GB),  # PA not 1 GB aligned
    ]
    ctx = layout.context(regions, va_size=1 << 32)
    assert ctx.walk(GB + 0x1234).level == 1
    assert ctx.walk(GB + 0x1234).pa == GB + 0x1234
    assert ctx.walk(2 * GB + MB).level == 2
    assert ctx.walk(3 * GB + 5 * MB).level == 2
    assert ctx.walk(3 * GB + 5 * MB).pa == 0x1_4020_0000 + 5 * MB


def test_max_mapped_pa_ignores_transient_regions(layout):
    regions = [Region(va=0, pa=0x4000_0000, size=PAGE, attr=RW, granularity=PAGE),
               Region.transient(GB, GB)]
    ctx = layout.context(regions, va_size=1 << 32)
    assert ctx.max_mapped_pa == 0x4000_0FFF


def test_transient_region_without_l3_has_no_allocator(layout, mmu_on):
    # a 1 GB-granular TRANSIENT region (the static context's VA pool) is not allocatable
    ctx = layout.context([Region.transient(GB, GB, granularity=GB)], va_size=1 << 32)
    assert ctx.alloc_pages == 0
    assert ctx.descriptor(GB, level=1) == 1 << 55
    with pytest.raises(XlatError) as e:
        ctx.map(0, PAGE, RW)
    assert e.value.errno == errno.ENOMEM


def test_tables_outside_memory_are_refused(memory):
    regions = [Region.transient(0, PAGE)]
    with pytest.raises(XlatError) as e:
        Context(memory, regions, va_size=1 << 32, tables_pa=memory.end_pa - PAGE, ntables=4,
                alloc_pa=memory.base_pa)
    assert e.value.errno == errno.EFAULT
    with pytest.raises(XlatError) as e:
        Context(memory, regions, va_size=1 << 32, tables_pa=memory.base_pa, ntables=4,
                alloc_pa=memory.end_pa)
    assert e.value.errno == errno.EFAULT


def test_alloc_overlapping_tables_is_refused(memory):
    with pytest.raises(XlatError) as e:
        Context(memory, [Region.transient(0, PAGE)], va_size=1 << 32, tables_pa=memory.base_pa,
                ntables=4, alloc_pa=memory.base_pa + PAGE)
    assert e.value.errno == errno.EINVAL


def test_bad_python_arguments_give_xlat_errors(memory):
    with pytest.raises(XlatError):
        Context(memory, [Region.transient(0, PAGE)], va_size=-1, tables_pa=memory.base_pa)
    with pytest.raises(XlatError):
        Context(memory, ["not a region"], va_size=1 << 32, tables_pa=memory.base_pa)
    with pytest.raises(XlatError):
        Context(memory, [Region.transient(0, PAGE)], va_size=1 << 32, tables_pa=memory.base_pa)  # no alloc_pa
