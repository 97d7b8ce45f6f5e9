"""An RMM image and its boots: cold, warm, and the LFA cold boot from a token.

Follows TF-RMM's boot design (runtime/core/aarch64/head.S, init.c,
plat/common/src/plat_common_init.c; docs/rmm-lfa.md): validate the boot
arguments, consume the boot manifest, set up the low VA (static tables
rebuilt by every image; the dynamic pool built once and stitched into the
static L1 before the MMU is enabled), enable the MMU, then glob_data.

An image is a fresh object for every boot of a new payload. The LFA boot
receives only the activation token (the glob_data PA, as in TF-RMM v0.9)
and rebuilds its view from emulated memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from lfafs.platform.images import Image
from lfafs.platform.memory import reserve_args
from lfafs.platform.profile import RmmSpec
from lfafs.platform.rmm import glob_data as gd
from lfafs.platform.rmm.granules import Granules, GranuleState
from lfafs.platform.rmm.manifest import ManifestError, read_manifest
from lfafs.smccc import RMI_ABI_VERSION, RmiStatus, RmmBootStatus, RmmEl3Status
from lfafs.xlat import PAGE, Attr, Context, Memory, Region, XlatError, estimate_tables
from lfafs.xlat_low_va import GB, build_pool, pool_base, pool_layout

STATIC_VA_SIZE = 1 << 46  # TF-RMM xlat_low_va_pvt.h
EXTRA_LFA_TABLES = 5  # margin for a new image at another PA (TF-RMM xlat_low_va)
RW = Attr.RW_DATA | Attr.REALM
# The image's sections inside its 3 MB bank (identity mapped, as TF-RMM's image is).
CODE_SIZE = 0x10_0000
RO_SIZE = 0x8_0000
RW_SIZE = 0x10_0000
# In compat mode the reservations come from the image's own static array,
# modelled as a fixed region above the payload banks (docs/rmm-lfa.md).
COMPAT_ARRAY_SIZE = 24 << 20

ReserveFn = Callable[[int, int], tuple[int, int]]  # (size, args) -> (status, pa)


class BootFailure(Exception):
    def __init__(self, status: RmmBootStatus, reason: str) -> None:
        super().__init__(f"{status.name}: {reason}")
        self.status = status
        self.reason = reason


@attrs.define
class BootResult:
    status: RmmBootStatus
    token: int
    reason: str = ""
    phases: dict[str, float] = attrs.field(factory=dict)  # seconds of real compute


@attrs.define
class _Bump:
    """TF-RMM's compat reservations: an upward bump over a static array."""

    next: int
    end: int

    def reserve(self, size: int, args: int) -> tuple[int, int]:
        align = 1 << (args >> 56)
        addr = -(-self.next // align) * align
        if addr + size > self.end:
            return RmmEl3Status.NOMEM, 0
        self.next = addr + size
        return RmmEl3Status.OK, addr


class RmmImage:
    """One RMM payload, loaded in a bank, booted on the emulated CPUs."""

    def __init__(self, image: Image, load_pa: int, spec: RmmSpec, memory: Memory,
                 dram_base: int, dram_size: int, shared_buffer: int) -> None:
        self.image = image
        self.load_pa = load_pa
        self.spec = spec
        self.memory = memory
        self.dram_base = dram_base
        self.dram_size = dram_size
        self.shared_buffer = shared_buffer
        self.static: Context | None = None
        self.dyn: Context | None = None
        self.glob_pa = 0
        self.granules: Granules | None = None
        self.booted = False
        self.boot_args: tuple[int, ...] = ()

    # -- layout -----------------------------------------------------------------

    def static_regions(self) -> list[Region]:
        code = self.load_pa
        ro = code + CODE_SIZE
        rw = ro + RO_SIZE
        shared_va = rw + RW_SIZE + PAGE  # a 4 KB guard gap after RW
        top = shared_va + PAGE
        return [
            Region(va=code, pa=code, size=CODE_SIZE, attr=Attr.CODE, granularity=PAGE),
            Region(va=ro, pa=ro, size=RO_SIZE, attr=Attr.RO_DATA | Attr.REALM, granularity=PAGE),
            Region(va=rw, pa=rw, size=RW_SIZE, attr=RW, granularity=PAGE),
            Region(va=shared_va, pa=self.shared_buffer, size=PAGE, attr=RW, granularity=PAGE),
            Region.transient(pool_base(top), self.spec.va_pool_size, granularity=GB),
        ]

    def static_tables_needed(self) -> int:
        return estimate_tables(self.static_regions()) + 2  # + the L0 and L1 tables

    # -- boots --------------------------------------------------------------------

    def cold_boot(self, reserve: ReserveFn, cpu: int, x1: int, x2: int, x3: int, x4: int) -> BootResult:
        """The cold path on one CPU: x0 = cpu, x1 = interface version, x2 = CPU count,
        x3 = shared buffer, x4 = activation token (0 on the first boot)."""
        phases: dict[str, float] = {}
        self.boot_args = (cpu, x1, x2, x3, x4)
        try:
            token = self._cold_boot(reserve, cpu, x1, x2, x3, x4, phases)
        except BootFailure as e:
            self.memory.mmu_on = True  # the old tables stay in use on failure
            return BootResult(status=e.status, token=0, reason=e.reason, phases=phases)
        self.booted = True
        return BootResult(status=RmmBootStatus.SUCCESS, token=token, phases=phases)

    def _cold_boot(self, reserve: ReserveFn, cpu: int, x1: int, x2: int, x3: int, x4: int,
                   phases: dict[str, float]) -> int:
        # Phase 1: system registers and C runtime; the boot arguments.
        if self.image.compat_reserve_mem:
            if x4 != 0:
                # TF-RMM's plat_setup panics: a compat image cannot take over a live RMM.
                raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                                  "built with RMM_EL3_COMPAT_RESERVE_MEM: live activation is not supported")
            bump = _Bump(self.spec.payload_limit, self.spec.payload_limit + COMPAT_ARRAY_SIZE)
            reserve = bump.reserve
        self._check_args(cpu, x1, x2, x3)

        # Phase 2: platform setup, consuming the boot manifest.
        try:
            banks = read_manifest(self.memory, x3)
        except ManifestError as e:
            raise BootFailure(e.status, str(e)) from None
        dram_pages = sum(size for _, size in banks) // PAGE

        # Phase 3: the low VA, with the MMU off.
        self.memory.mmu_on = False
        if x4 == 0:
            self._fresh_low_va(reserve, phases)
        else:
            self._lfa_low_va(x4, phases)

        # Phase 4: MMU on.
        self.memory.mmu_on = True

        # Phase 5: rmm_main -> glob_data.
        t0 = time.perf_counter()
        if x4 == 0:
            self._fresh_glob_data(reserve, dram_pages)
        else:
            self._lfa_glob_data(x4)
        phases["glob_data"] = time.perf_counter() - t0
        return self.glob_pa

    def _check_args(self, cpu: int, x1: int, x2: int, x3: int) -> None:
        """rmm_el3_ifc_init (TF-RMM lib/rmm_el3_ifc): versions, CPUs, shared buffer."""
        ours = self.image.rmm_ifc
        if (x1 >> 16) != (ours >> 16) or (x1 & 0xFFFF) < (ours & 0xFFFF):
            raise BootFailure(RmmBootStatus.VERSION_NOT_VALID,
                              f"EL3 speaks RMM-EL3 {x1 >> 16}.{x1 & 0xFFFF}, the image {ours >> 16}.{ours & 0xFFFF}")
        if not 0 < x2 <= 4096:
            raise BootFailure(RmmBootStatus.CPUS_OUT_OF_RANGE, f"{x2} CPUs")
        if cpu >= x2:
            raise BootFailure(RmmBootStatus.CPU_ID_OUT_OF_RANGE, f"CPU {cpu} of {x2}")
        if x3 == 0 or x3 % PAGE:
            raise BootFailure(RmmBootStatus.INVALID_SHARED_BUFFER, f"shared buffer {x3:#x}")

    def _reserve(self, reserve: ReserveFn, size: int, what: str) -> int:
        status, pa = reserve(size, reserve_args(PAGE))
        if status != RmmEl3Status.OK:
            raise BootFailure(RmmBootStatus.NO_MEM, f"no memory for {what} ({size:#x} bytes)")
        return pa

    def _fresh_low_va(self, reserve: ReserveFn, phases: dict[str, float]) -> None:
        t0 = time.perf_counter()
        regions = self.static_regions()
        ntables = self.static_tables_needed() + EXTRA_LFA_TABLES
        tables_pa = self._reserve(reserve, ntables * PAGE, "static tables")
        self.static = Context(self.memory, regions, va_size=STATIC_VA_SIZE, tables_pa=tables_pa, ntables=ntables)
        phases["static_tables"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        layout = pool_layout(regions[-1].va, self.spec.va_pool_size)
        dyn_tables = self._reserve(reserve, layout.tables_bytes, "dynamic tables")
        alloc_pa = self._reserve(reserve, layout.alloc_bytes(dyn_tables), "VA bitmap")
        self.dyn = build_pool(self.memory, layout, dyn_tables, alloc_pa)
        phases["dyn_setup"] = time.perf_counter() - t0
        self._stitch(phases)

    def _stitch(self, phases: dict[str, float]) -> None:
        t0 = time.perf_counter()
        assert self.static is not None and self.dyn is not None
        size = self.spec.va_pool_size
        stitched = self.static.stitch_l1(self.dyn, self.dyn.base_va, size)
        if stitched != size // GB:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"stitched {stitched} L1 entries, expected {size // GB}")
        phases["stitch"] = time.perf_counter() - t0

    def _lfa_low_va(self, token: int, phases: dict[str, float]) -> None:
        t0 = time.perf_counter()
        try:
            prev = gd.read(self.memory, token)
        except (gd.GlobDataError, XlatError) as e:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"activation token {token:#x}: {e}") from None
        regions = self.static_regions()
        mine, theirs = self.image.glob_data_version, prev.version
        # lfafs checks what TF-RMM leaves unchecked (docs/rmm-lfa.md): major equal, minor not older.
        if (mine >> 16) != (theirs >> 16) or (mine & 0xFFFF) < (theirs & 0xFFFF):
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                              f"glob_data {gd.version_str(theirs)} is not compatible with this image's "
                              f"{gd.version_str(mine)}")
        if prev.glob_data_pa != token:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"glob_data at {token:#x} says it is at {prev.glob_data_pa:#x}")
        if prev.low_va_capacity != gd.LOW_VA_CAPACITY:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"low VA capacity {prev.low_va_capacity}")  # TF-RMM -ERANGE
        if prev.pool_base != regions[-1].va or prev.pool_size != self.spec.va_pool_size:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                              f"dynamic pool {prev.pool_base:#x}+{prev.pool_size:#x} differs from this image's "
                              f"{regions[-1].va:#x}+{self.spec.va_pool_size:#x}")  # TF-RMM -EINVAL
        if prev.static_tables_num < self.static_tables_needed():
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                              f"{prev.static_tables_num} static tables kept, {self.static_tables_needed()} needed")
        try:
            dyn = Context.load(self.memory, gd.dyn_ctx_pa(token))
        except XlatError as e:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"dynamic context in glob_data: {e}") from None
        if dyn.base_level != 1 or dyn.base_va != prev.pool_base:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, "dynamic context does not match the pool")
        self.dyn = dyn
        self._prev = prev
        phases["glob_data_checks"] = time.perf_counter() - t0

        # The static tables are rebuilt, into the memory the previous image reserved.
        t0 = time.perf_counter()
        try:
            self.static = Context(self.memory, regions, va_size=STATIC_VA_SIZE,
                                  tables_pa=prev.static_tables_pa, ntables=prev.static_tables_num)
        except XlatError as e:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"static tables: {e}") from None
        phases["static_tables"] = time.perf_counter() - t0
        self._stitch(phases)

    def _map(self, pa: int, size: int, what: str) -> int:
        assert self.dyn is not None
        try:
            return self.dyn.map(pa, size, RW)
        except XlatError as e:
            raise BootFailure(RmmBootStatus.NO_MEM, f"cannot map {what}: {e}") from None

    def _fresh_glob_data(self, reserve: ReserveFn, dram_pages: int) -> None:
        assert self.dyn is not None and self.static is not None
        pa = self._reserve(reserve, gd.SIZE, "glob_data")
        self.memory.zero(pa, gd.SIZE)
        va = self._map(pa, gd.SIZE, "glob_data")
        if va != self.dyn.base_va:  # TF-RMM asserts glob_data is the first dynamic allocation
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"glob_data landed at {va:#x}, not the pool base")
        bitmap_va = self._map(self.dyn.alloc_pa, self.dyn.alloc_bytes, "VA bitmap")
        size = Granules.array_bytes(dram_pages)
        granules_pa = self._reserve(reserve, size, "granules")
        self.memory.zero(granules_pa, size)
        granules_va = self._map(granules_pa, size, "granules")
        g = gd.GlobData(
            version=self.image.glob_data_version, fw_img_sequence=1, rmm_state=gd.RmmState.ACTIVE,
            glob_data_pa=pa, glob_data_va=va, glob_data_size=gd.SIZE,
            bitmap_pa=self.dyn.alloc_pa, bitmap_va=bitmap_va, bitmap_size=self.dyn.alloc_bytes,
            pool_base=self.dyn.base_va, pool_size=self.spec.va_pool_size, pool_tables=self.dyn.tables_num,
            granules_pa=granules_pa, granules_va=granules_va, granules_size=size,
            dev_granules_pa=0, dev_granules_va=0, dev_granules_size=0, num_granules=dram_pages,
            static_tables_pa=self.static.tables_pa, static_tables_num=self.static.tables_num,
        )
        g.write(self.memory, pa)
        self.dyn.save(gd.dyn_ctx_pa(pa))
        self.glob_pa = pa
        self.granules = Granules(self.memory, self.dyn, granules_va, self.dram_base, dram_pages)

    def _lfa_glob_data(self, token: int) -> None:
        assert self.dyn is not None and self.static is not None
        g = self._prev
        g.version = self.image.glob_data_version
        g.fw_img_sequence += 1
        g.static_tables_pa, g.static_tables_num = self.static.tables_pa, self.static.tables_num
        g.write(self.memory, token)
        self.dyn.save(gd.dyn_ctx_pa(token))
        self.glob_pa = token
        self.granules = Granules(self.memory, self.dyn, g.granules_va, self.dram_base, g.num_granules)

    def warm_boot(self, cpu: int, token: int) -> BootResult:
        """A secondary CPU (or CPU_ON) enters the image: x0 = cpu, x1 = token."""
        if not self.booted:
            return BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, "warm boot before the cold boot")
        if token not in (0, self.glob_pa):
            return BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, f"CPU {cpu}: token {token:#x} is not this RMM's")
        return BootResult(RmmBootStatus.SUCCESS, self.glob_pa)

    # -- what the running RMM answers -------------------------------------------------

    def glob_data(self) -> gd.GlobData:
        return gd.read(self.memory, self.glob_pa)

    def rmi(self, fid_name: str, x1: int) -> tuple[int, int]:
        """RMI_VERSION and the granule delegation calls: (x0, x1)."""
        if fid_name == "RMI_VERSION":
            return 0, RMI_ABI_VERSION
        assert self.granules is not None
        idx = self.granules.index(x1)
        if idx is None:
            return RmiStatus.ERROR_INPUT, x1
        want_from, to = ((GranuleState.UNDELEGATED, GranuleState.DELEGATED) if fid_name == "RMI_GRANULE_DELEGATE"
                         else (GranuleState.DELEGATED, GranuleState.UNDELEGATED))
        if self.granules.state(idx) != want_from:
            return RmiStatus.ERROR_INPUT, x1
        self.granules.set_state(idx, to)
        return RmiStatus.SUCCESS, x1
