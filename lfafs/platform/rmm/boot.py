"""An RMM image and its boots: cold, warm, and the LFA cold boot from a token.

Follows TF-RMM's boot path (runtime/core/aarch64/head.S, runtime/core/init.c,
plat/arm/src/arm_setup.c, plat/common/src/plat_common_init.c;
docs/rmm-lfa.md, "The RMM model"): [main: the CPU's per-CPU region], the
boot arguments, the boot manifest and its console, the low VA (static
tables rebuilt by every image; the dynamic pool built once and stitched
into the static L1 before the MMU is enabled), the DRAM layout, MMU on,
then glob_data and the granule array.

An image is a fresh object for every boot of a new payload. The LFA boot
receives only the activation token and rebuilds its view from emulated
memory. What the token is depends on the TF-RMM release the platform's
images come from (``[rmm] release``): at main each CPU's token is its own
per-CPU region, whose metadata page holds glob_data's PA; at v0.9.0 the
token is glob_data's PA on every CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from lfafs.platform.images import Image
from lfafs.platform.memory import reserve_args
from lfafs.platform.profile import RmmSpec
from lfafs.platform.rmm import glob_data as gd
from lfafs.platform.rmm import pcpu_data
from lfafs.platform.rmm.compat_mem import CompatReserve
from lfafs.platform.rmm.granules import Granules, array_bytes
from lfafs.platform.rmm.manifest import ManifestError, check_version, read_consoles, read_manifest
from lfafs.platform.rmm.rmi import Rmi
from lfafs.smccc import RmmBootStatus, RmmEl3Status
from lfafs.xlat import PAGE, Attr, Context, Memory, Region, XlatError, estimate_tables
from lfafs.xlat_low_va import GB, build_pool, pool_base, pool_layout

STATIC_VA_SIZE = 1 << 46  # TF-RMM xlat_low_va_pvt.h
EXTRA_LFA_TABLES = 5  # margin for a new image at another PA (TF-RMM xlat_low_va.c)
MAX_CPUS = 4096  # RMM_EL3_IFC_MAX_CPUS: the CPU index lives in TPIDR_EL2's low 12 bits
RW = Attr.RW_DATA | Attr.REALM
DEFAULT_GRANULARITY = GB  # REGION_DEFAULT_GRANULARITY without LPA2 (lib/xlat/include/xlat_tables.h)
# The image inside its 3 MB bank (identity mapped, as TF-RMM's image is): the bundled
# EL0 applications' binaries, then the RMM's code, read-only and read-write sections.
APP_SIZE = 0x4_0000
CODE_SIZE = 0x10_0000
RO_SIZE = 0x8_0000
RW_SIZE = 0x10_0000
SHARED_BUF_SIZE = PAGE  # rmm_el3_ifc_get_shared_buf_size()
UART_SIZE = PAGE  # ARM_RMM_UART (plat/arm/src/arm_setup.c)
UART_ATTR = Attr.DEVICE | Attr.RW | Attr.REALM

ReserveFn = Callable[[int, int], tuple[int, int]]  # (size, args) -> (status, pa)


class BootFailure(Exception):
    """The boot stops. ``token`` is x2 of the RMM_BOOT_COMPLETE that reports it;
    ``hang`` means no RMM_BOOT_COMPLETE at all (TF-RMM panic(): an endless loop)."""

    def __init__(self, status: RmmBootStatus, reason: str, *, token: int = 0, hang: bool = False) -> None:
        super().__init__(f"{status.name}: {reason}")
        self.status = status
        self.reason = reason
        self.token = token
        self.hang = hang


@attrs.define
class BootResult:
    status: RmmBootStatus
    token: int
    reason: str = ""
    phases: dict[str, float] = attrs.field(factory=dict)  # seconds of real compute
    hung: bool = False  # the image never issued RMM_BOOT_COMPLETE


class RmmImage:
    """One RMM payload, loaded in a bank, booted on the emulated CPUs.

    ``ns_pas(addr)`` answers whether EL3's GPT holds a granule in the
    Non-secure PAS (the RMI uses it for delegation and NS buffers).
    """

    def __init__(self, image: Image, load_pa: int, spec: RmmSpec, memory: Memory,
                 dram_base: int, dram_size: int, shared_buffer: int,
                 ns_pas: Callable[[int], bool] = lambda addr: True) -> None:
        self.image = image
        self.load_pa = load_pa
        self.spec = spec
        self.memory = memory
        self.dram_base = dram_base
        self.dram_size = dram_size
        self.shared_buffer = shared_buffer
        self.ns_pas = ns_pas
        self.static: Context | None = None
        self.dyn: Context | None = None
        self.glob_pa = 0
        self.granules: Granules | None = None
        self.rmi: Rmi | None = None
        self.booted = False
        self.ncpus = 0
        self.uart = 0  # the console base from the boot manifest (0: none)
        self.boot_args: tuple[int, ...] = ()
        self._prev: gd.GlobData | None = None

    @property
    def per_cpu_regions(self) -> bool:
        """TF-RMM main reserves a region per CPU and returns its base as the token."""
        return self.spec.release == "main"

    # -- layout -----------------------------------------------------------------

    def static_regions(self) -> list[Region]:
        """xlat_low_va_static_setup(): COMMON_REGIONS and the FVP's UART, sorted by VA.

        APP (the bundled applications, RO), CODE, RO, RW, SHARED (the EL3
        shared buffer one guard page above RW) and the VA pool (TRANSIENT,
        1 GB granular, at a 512 GB boundary), plus the UART plat_setup() maps
        from the manifest's console (at VA 0 when there is none, as TF-RMM's
        plat_regions[] starts).
        """
        app = self.load_pa
        code = app + APP_SIZE
        ro = code + CODE_SIZE
        rw = ro + RO_SIZE
        shared_va = rw + RW_SIZE + PAGE
        g = DEFAULT_GRANULARITY
        regions = [
            Region(va=self.uart, pa=self.uart, size=UART_SIZE, attr=UART_ATTR, granularity=g),
            Region(va=app, pa=app, size=APP_SIZE, attr=Attr.RO_DATA | Attr.REALM, granularity=g),
            Region(va=code, pa=code, size=CODE_SIZE, attr=Attr.CODE | Attr.REALM, granularity=g),
            Region(va=ro, pa=ro, size=RO_SIZE, attr=Attr.RO_DATA | Attr.REALM, granularity=g),
            Region(va=rw, pa=rw, size=RW_SIZE, attr=RW, granularity=g),
            Region(va=shared_va, pa=self.shared_buffer, size=SHARED_BUF_SIZE, attr=RW, granularity=g),
        ]
        top = max(r.va + r.size for r in regions)
        regions.append(Region.transient(pool_base(top), self.spec.va_pool_size, granularity=GB))
        return sorted(regions, key=lambda r: r.va)

    @property
    def pool_region(self) -> Region:
        return next(r for r in self.static_regions() if r.attr == Attr.TRANSIENT)

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
            return BootResult(status=e.status, token=e.token, reason=e.reason, phases=phases, hung=e.hang)
        self.booted = True
        return BootResult(status=RmmBootStatus.SUCCESS, token=token, phases=phases)

    def _cold_boot(self, reserve: ReserveFn, cpu: int, x1: int, x2: int, x3: int, x4: int,
                   phases: dict[str, float]) -> int:
        # head.S: [main] the per-CPU region, before any C code runs.
        region = self._pcpu_region(reserve, x4) if self.per_cpu_regions else 0

        # plat_setup(): rmm_el3_ifc_init, then the console from the manifest.
        self._check_args(cpu, x1, x2, x3)
        self._console(x3)
        if self.image.compat_reserve_mem:
            if x4 != 0:
                # TF-RMM plat/arm/src/arm_setup.c, plat_setup(): panic(), an endless loop.
                raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                                  "built with RMM_EL3_COMPAT_RESERVE_MEM: panicked on a non-zero activation token",
                                  hang=True)
            reserve = CompatReserve.above(self.spec.payload_limit).reserve

        # plat_cmn_setup(): the low VA with the MMU off, reusing glob_data when there is one.
        prev_pa = self._previous_glob_data(region, x4)
        self.memory.mmu_on = False
        if prev_pa == 0:
            self._fresh_low_va(reserve, phases)
        else:
            self._lfa_low_va(prev_pa, phases)

        # The DRAM layout from the manifest gives the number of granules.
        try:
            banks = read_manifest(self.memory, x3)
        except ManifestError as e:
            raise BootFailure(e.status, str(e)) from None
        num_granules = sum(size for _, size in banks) // PAGE
        self.memory.mmu_on = True

        # rmm_main(): glob_data, then the granule array.
        t0 = time.perf_counter()
        if prev_pa == 0:
            self._fresh_glob_data(reserve, num_granules)
        else:
            self._lfa_glob_data(prev_pa, num_granules)
        phases["glob_data"] = time.perf_counter() - t0
        self.rmi = Rmi(self.memory, self.glob_pa, self.granules, self.spec.release, self.ns_pas)
        if self.per_cpu_regions:
            self._set_glob_data_pa(region)
            return region
        return self.glob_pa

    def _pcpu_region(self, reserve: ReserveFn, token: int) -> int:
        """pcpu_region_alloc() and pcpu_metadata_early_init() for the CPU entering."""
        if token == 0:
            args = reserve_args(PAGE, local_cpu=True)
            status, pa = reserve(pcpu_data.REGION_PAGES * PAGE, args)
            if status != RmmEl3Status.OK:
                # rmm_el3_ifc_early_reserve_mem_local(): BOOT_COMPLETE(E_RMM_BOOT_NO_MEM) with x2
                # still holding the reservation's args word.
                why = (" (EL3 has no RMM_RESERVE_MEMORY: TF-RMM main cannot run in compatibility mode; "
                       'use [rmm] release = "v0.9")' if status == RmmEl3Status.UNK else f" (status {status})")
                raise BootFailure(RmmBootStatus.NO_MEM, "no memory for the per-CPU region" + why, token=args)
            pcpu_data.early_init(self.memory, pa, 0)
            return pa
        try:
            pcpu_data.read(self.memory, token)
        except (pcpu_data.PcpuError, XlatError) as e:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, str(e)) from None
        return token

    def _previous_glob_data(self, region: int, x4: int) -> int:
        """plat_cmn_setup(): main reads the CPU's metadata page, v0.9 takes the token itself."""
        if self.per_cpu_regions:
            return pcpu_data.read(self.memory, region).glob_data_pa
        return x4

    def _set_glob_data_pa(self, region: int) -> None:
        if not pcpu_data.set_glob_data_pa(self.memory, region, self.glob_pa):
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR,
                              f"per-CPU region {region:#x} already names another glob_data")

    def _check_args(self, cpu: int, x1: int, x2: int, x3: int) -> None:
        """rmm_el3_ifc_init (TF-RMM lib/rmm_el3_ifc): versions, CPUs, shared buffer, manifest."""
        ours = self.image.rmm_ifc
        if (x1 >> 16) != (ours >> 16) or (x1 & 0xFFFF) < (ours & 0xFFFF):
            raise BootFailure(RmmBootStatus.VERSION_NOT_VALID,
                              f"EL3 speaks RMM-EL3 {x1 >> 16}.{x1 & 0xFFFF}, the image {ours >> 16}.{ours & 0xFFFF}")
        if x2 > MAX_CPUS:
            raise BootFailure(RmmBootStatus.CPUS_OUT_OF_RANGE, f"{x2} CPUs")
        if cpu >= x2:
            raise BootFailure(RmmBootStatus.CPU_ID_OUT_OF_RANGE, f"CPU {cpu} of {x2}")
        if x3 == 0 or x3 % PAGE:
            raise BootFailure(RmmBootStatus.INVALID_SHARED_BUFFER, f"shared buffer {x3:#x}")
        self.ncpus = x2
        try:
            check_version(self.memory, x3)
        except ManifestError as e:
            raise BootFailure(e.status, str(e)) from None

    def _console(self, shared: int) -> None:
        """plat_setup(): the first console must be a pl011; its base is the UART region."""
        try:
            consoles = read_consoles(self.memory, shared)
        except ManifestError as e:
            raise BootFailure(e.status, str(e)) from None
        if consoles:
            if consoles[0].name != "pl011":
                raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"console {consoles[0].name!r} is not a pl011")
            self.uart = consoles[0].base

    def _reserve(self, reserve: ReserveFn, size: int, what: str) -> int:
        status, pa = reserve(size, reserve_args(PAGE))
        if status != RmmEl3Status.OK:
            raise BootFailure(RmmBootStatus.NO_MEM, f"no memory for {what} ({size:#x} bytes)")
        return pa

    def _fresh_low_va(self, reserve: ReserveFn, phases: dict[str, float]) -> None:
        """Static tables, dynamic tables, then glob_data (which holds the VA allocator state)."""
        t0 = time.perf_counter()
        regions = self.static_regions()
        ntables = self.static_tables_needed() + EXTRA_LFA_TABLES
        tables_pa = self._reserve(reserve, ntables * PAGE, "static tables")
        self.static = Context(self.memory, regions, va_size=STATIC_VA_SIZE, tables_pa=tables_pa, ntables=ntables)
        phases["static_tables"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        layout = pool_layout(self.pool_region.va, self.spec.va_pool_size)
        dyn_tables = self._reserve(reserve, layout.tables_bytes, "dynamic tables")
        size = gd.size(layout.alloc_bytes(dyn_tables))
        self.glob_pa = self._reserve(reserve, size, "glob_data")
        self.memory.zero(self.glob_pa, size)
        self.dyn = build_pool(self.memory, layout, dyn_tables, gd.alloc_pa(self.glob_pa))
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

    def _lfa_low_va(self, prev_pa: int, phases: dict[str, float]) -> None:
        t0 = time.perf_counter()
        try:
            prev = gd.read(self.memory, prev_pa)
        except (gd.GlobDataError, XlatError) as e:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"glob_data at {prev_pa:#x}: {e}") from None
        problem = gd.reuse_problem(prev, prev_pa, self.image.glob_data_version, self.pool_region.va,
                                   self.spec.va_pool_size, self.static_tables_needed())
        if problem:
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, problem)
        try:
            dyn = Context.load(self.memory, gd.dyn_ctx_pa(prev_pa))
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
            self.static = Context(self.memory, self.static_regions(), va_size=STATIC_VA_SIZE,
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

    def _fresh_glob_data(self, reserve: ReserveFn, num_granules: int) -> None:
        """glob_data_init() on a first boot: rmm_state INIT, sequence 1."""
        assert self.dyn is not None and self.static is not None
        pa, size = self.glob_pa, gd.size(self.dyn.alloc_bytes)
        va = self._map(pa, size, "glob_data")
        if va != self.dyn.base_va:  # TF-RMM asserts glob_data is the first dynamic allocation
            raise BootFailure(RmmBootStatus.UNKNOWN_ERROR, f"glob_data landed at {va:#x}, not the pool base")
        granules_size = array_bytes(num_granules)
        granules_pa = self._reserve(reserve, granules_size, "granules")
        self.memory.zero(granules_pa, granules_size)  # every granule NS
        granules_va = self._map(granules_pa, granules_size, "granules")
        g = gd.GlobData(
            version=self.image.glob_data_version, fw_img_sequence=1, rmm_state=gd.RmmState.INIT,
            glob_data_pa=pa, glob_data_va=va, glob_data_size=size,
            bitmap_pa=self.dyn.alloc_pa, bitmap_va=va + (self.dyn.alloc_pa - pa), bitmap_size=self.dyn.alloc_bytes,
            pool_base=self.dyn.base_va, pool_size=self.spec.va_pool_size, pool_tables=self.dyn.tables_num,
            granules_pa=granules_pa, granules_va=granules_va, granules_size=granules_size,
            dev_granules_pa=0, dev_granules_va=0, dev_granules_size=0, num_granules=num_granules,
            static_tables_pa=self.static.tables_pa, static_tables_num=self.static.tables_num,
        )
        g.write(self.memory, pa)
        self.dyn.save(gd.dyn_ctx_pa(pa))
        self.granules = Granules(self.memory, self.dyn, granules_va, self.dram_base, num_granules)

    def _lfa_glob_data(self, prev_pa: int, num_granules: int) -> None:
        """glob_data_init(prev): reuse everything, rmm_state unchanged, sequence + 1."""
        assert self.dyn is not None and self.static is not None and self._prev is not None
        g = self._prev
        if num_granules * 2 > g.granules_size:  # granule_init(): "Max granules mismatch"
            raise BootFailure(RmmBootStatus.NO_MEM, f"{num_granules} granules do not fit the kept array")
        g.version = self.image.glob_data_version
        g.fw_img_sequence += 1
        g.static_tables_pa, g.static_tables_num = self.static.tables_pa, self.static.tables_num
        g.write(self.memory, prev_pa)
        self.dyn.save(gd.dyn_ctx_pa(prev_pa))
        self.glob_pa = prev_pa
        self.granules = Granules(self.memory, self.dyn, g.granules_va, self.dram_base, num_granules)

    def warm_boot(self, reserve: ReserveFn, cpu: int, token: int) -> BootResult:
        """A secondary CPU (or CPU_ON) enters the image: x0 = cpu, x1 = token.

        main: the CPU's per-CPU region (reserved on its first entry), its
        metadata pointed at glob_data, the region base returned. v0.9: the
        token is not looked at; glob_data's PA is returned
        (runtime/core/init.c, rmm_warmboot_main()).
        """
        if not self.booted:
            return BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, "warm boot before the cold boot")
        if not self.per_cpu_regions:
            return BootResult(RmmBootStatus.SUCCESS, self.glob_pa)
        try:
            region = self._pcpu_region(reserve, token)
            if cpu >= self.ncpus:  # plat_warmboot_setup() at main
                raise BootFailure(RmmBootStatus.CPU_ID_OUT_OF_RANGE, f"CPU {cpu} of {self.ncpus}")
            self._set_glob_data_pa(region)
        except BootFailure as e:
            return BootResult(e.status, e.token, e.reason)
        return BootResult(RmmBootStatus.SUCCESS, region)

    # -- what the running RMM answers -------------------------------------------------

    def glob_data(self) -> gd.GlobData:
        return gd.read(self.memory, self.glob_pa)
