"""The EL3 side of the RMM: RMMD (TF-A services/std_svc/rmmd).

It owns the RMM carve-out: the payload banks, the reservation pool served
to RMM_RESERVE_MEMORY, the shared buffer with the boot manifest, and one
activation token per CPU, stored from RMM_BOOT_COMPLETE x2 whatever the
status. A failed RMM boot sets ``boot_failed``: from then on every RMI and
RMM-EL3 call answers SMC_UNK until the platform is reset.

It also routes the SMCs that reach the RMM (TF-A std_svc_setup.c: every id
in the two RMI ranges, from the Normal world, to the RMM; RMM_RESERVE_MEMORY
from the Realm world) and runs the RMM's side of a live activation:
``primary_activate`` on the leader, ``secondary_activate`` on every other
CPU (TF-A rmmd_rmm_lfa.c).
"""

from __future__ import annotations

import time

import attrs
import trio

from lfafs.platform.images import Image
from lfafs.platform.memory import ReserveAllocator
from lfafs.platform.profile import RmmSpec
from lfafs.platform.rmm.boot import BootResult, RmmImage
from lfafs.platform.rmm.manifest import Console, write_manifest
from lfafs.platform.trace import Recorder, SmcTrace
from lfafs.smccc import RMM_EL3_INTERFACE_VERSION, SMC_UNK, Fid, LfaStatus, RmmBootStatus, u64
from lfafs.xlat import Memory

RMI_FIDS = frozenset(range(0xC400_0150, 0xC400_0190)) | frozenset(range(0xC400_01D0, 0xC400_02D0))
"""TF-A include/services/rmmd_svc.h, is_rmi_fid(): RMI_FNUM 0x150-0x18F and 0x1D0-0x2CF, SMC64."""
RMM_FIDS = RMI_FIDS | {Fid.RMM_RESERVE_MEMORY}
"""The SMCs the machine routes to the RMMD."""
FVP_CONSOLE = Console(base=0x1C0C_0000, map_pages=1, name="pl011", clk_in_hz=14_745_600, baud_rate=115_200)
"""The RMM's console in the FVP's boot manifest (TF-A plat/arm/board/fvp/fvp_common.c, FVP_RMM_CONSOLE_*)."""
RMM_HANG_S = 5.0
"""How long a leader whose new RMM panicked waits before lfafs gives the activation up.

TF-RMM's panic() loops forever and TF-A has no timeout for it; lfafs bounds the
hang so that the platform stays usable (docs/rmm-lfa.md, "Compatibility mode")."""


@attrs.define
class Rmmd:
    memory: Memory
    spec: RmmSpec
    ncpus: int
    dram_base: int
    dram_size: int
    allocator: ReserveAllocator = attrs.field(init=False)
    tokens: list[int] = attrs.field(init=False)
    boot_failed: bool = False
    failure: str = ""
    trace: SmcTrace = attrs.field(factory=SmcTrace)
    recorder: Recorder = attrs.field(factory=Recorder)
    rmm: RmmImage | None = None
    entry_pa: int = attrs.field(init=False)
    secure_dram_size: int = 0  # the top of DRAM outside the Non-secure PAS (0: only the carve-out)

    def __attrs_post_init__(self) -> None:
        # FVP: reservations bump down from RMM_LIMIT (the shared buffer) to RMM_PAYLOAD_LIMIT.
        self.allocator = ReserveAllocator(floor=self.spec.payload_limit, top=self.spec.limit)
        self.tokens = [0] * self.ncpus
        self.entry_pa = self.spec.base  # bank 1 at cold boot

    @property
    def shared_buffer(self) -> int:
        return self.spec.limit

    @property
    def second_bank(self) -> int:
        # rmmd_setup during LFA: pc = RMM_BASE + RMM_BANK_SIZE (FVP 0xFDF00000)
        return self.spec.base + self.spec.bank_size

    def reserve(self, size: int, args: int) -> tuple[int, int]:
        if not self.spec.compat_reserve_mem:
            return self.allocator.reserve(size, args)
        return -1, 0  # an EL3 without RESERVE_MEMORY: SMC_UNK

    def ns_pas(self, addr: int) -> bool:
        """Whether the GPT holds ``addr`` in the Non-secure PAS: DRAM below its secure top,
        never the RMM carve-out (Realm PAS). GTSI delegation succeeds only there."""
        ns_top = self.dram_base + self.dram_size - self.secure_dram_size
        carve_out = self.spec.base <= addr < self.spec.limit + 4096
        return self.dram_base <= addr < ns_top and not carve_out

    def boot_complete(self, cpu: int, result: BootResult) -> None:
        """RMM_BOOT_COMPLETE: x2 is stored as the CPU's token whatever x1 says."""
        self.tokens[cpu] = result.token
        if result.status != RmmBootStatus.SUCCESS:
            self.boot_failed = True
            self.failure = f"RMM boot failed on CPU {cpu}: {result.status.name}: {result.reason}"

    def _manifest(self) -> None:
        write_manifest(self.memory, self.shared_buffer, [(self.dram_base, self.dram_size)], [FVP_CONSOLE])

    def new_image(self, image: Image, load_pa: int) -> RmmImage:
        return RmmImage(image, load_pa, self.spec, self.memory, self.dram_base, self.dram_size, self.shared_buffer,
                        ns_pas=self.ns_pas)

    def cold_boot(self, cpu: int, rmm: RmmImage) -> BootResult:
        """rmmd_setup + rmm_init: (cpu, interface version, CPU count, shared buffer, token)."""
        self._manifest()
        result = rmm.cold_boot(self.reserve, cpu, RMM_EL3_INTERFACE_VERSION, self.ncpus,
                               self.shared_buffer, self.tokens[cpu])
        if result.hung:
            return result  # no RMM_BOOT_COMPLETE: the token and the failure flag stay as they were
        self.boot_complete(cpu, result)
        if result.status == RmmBootStatus.SUCCESS:
            self.rmm = rmm
        return result

    def warm_boot(self, cpu: int) -> BootResult:
        """The warm path of the running image: (cpu, token)."""
        if self.rmm is None:
            return BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, "no RMM image")
        result = self.rmm.warm_boot(self.reserve, cpu, self.tokens[cpu])
        self.boot_complete(cpu, result)
        return result


    # -- SMCs that reach the RMM ----------------------------------------------------------

    @property
    def realm_disabled(self) -> bool:
        return self.boot_failed or self.rmm is None

    def handle_smc(self, world: str, fid: int, x: list[int]) -> None:
        """RMI (Normal world) and RMM_RESERVE_MEMORY (Realm world); anything else is SMC_UNK.

        TF-A rmmd_main.c: rmmd_rmi_handler() forwards the Normal world's RMI to
        the RMM, which writes x0..x3 (runtime/core/handler.c); x4 and up keep
        the caller's values. rmmd_rmm_el3_handler() answers RESERVE_MEMORY with
        SMC_RET2(handle, ret, x2): the PA on success, the caller's x2 (the args
        word) on failure.
        """
        if self.realm_disabled:
            x[0] = SMC_UNK
        elif fid == Fid.RMM_RESERVE_MEMORY:
            if world != "realm" or self.spec.compat_reserve_mem:
                x[0] = SMC_UNK  # SMC_RET1: x1 and x2 keep the caller's values
                return
            status, pa = self.reserve(x[1], x[2])
            x[0] = u64(status)
            x[1] = pa if status == 0 else x[2]
        elif world != "ns":
            x[0] = SMC_UNK
        else:
            assert self.rmm is not None and self.rmm.rmi is not None
            x[0:4] = self.rmm.rmi.handle(fid, x[1:5])

    # -- live activation (TF-A rmmd_rmm_lfa.c) -------------------------------------------------

    async def primary_activate(self, cpu: int, image: Image, *, injected: LfaStatus | None = None,
                               since: float | None = None) -> int:
        """rmmd_primary_activate: the leader boots ``image``; 0 or LFA_ACTIVATION_FAILED.

        ``injected`` is a boot failure from fault injection: the new image
        reports it at RMM_BOOT_COMPLETE instead of booting. ``since`` is
        when the leader started (for the report's boot time).
        """
        report = self.recorder.current
        t0 = trio.current_time() if since is None else since
        waited = trio.current_time() - t0  # modelled boot latency, if any
        if injected is not None:
            result = BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, f"injected boot failure ({injected.name})")
            self.boot_complete(cpu, result)
        else:
            tlbi_before = self.memory.tlbi.pages
            self.entry_pa = self.second_bank
            result = self.cold_boot(cpu, self.new_image(image, self.entry_pa))
            if report is not None:
                report.tlb_invalidations = self.memory.tlbi.pages - tlbi_before
        if result.hung:
            return await self._hung(result)
        self._boot_complete_trace(cpu, result, t0)
        if report is not None:
            report.boot_phases = result.phases
            report.leader_boot_s = waited + sum(result.phases.values())
        if result.status != RmmBootStatus.SUCCESS:
            self.recorder.reason(f"the new RMM failed to boot: {result.status.name}: {result.reason}")
            return LfaStatus.ACTIVATION_FAILED
        if report is not None and self.rmm is not None and self.rmm.dyn is not None:
            report.dynamic_pages_preserved = self.rmm.dyn.alloc_pages - self.rmm.dyn.free_pages
            report.fw_img_sequence = self.rmm.glob_data().fw_img_sequence
        return 0

    async def _hung(self, result: BootResult) -> int:
        """The new image panicked: no RMM_BOOT_COMPLETE, the leader stuck in the RMM.

        TF-RMM's panic() never returns and TF-A waits for ever; lfafs waits
        RMM_HANG_S, then gives the activation up with the Realm world disabled
        (the old image is no longer the one EL3 enters).
        """
        await trio.sleep(RMM_HANG_S)
        self.boot_failed = True
        self.failure = f"the new RMM hung without RMM_BOOT_COMPLETE: {result.reason}"
        self.recorder.reason(self.failure)
        return LfaStatus.ACTIVATION_FAILED

    async def secondary_activate(self, cpu: int) -> int:
        """rmmd_secondary_activate: the warm path of the new image; TF-A returns 0 whatever happens."""
        t0 = time.perf_counter()
        result = self.warm_boot(cpu)
        self._boot_complete_trace(cpu, result, trio.current_time())
        if self.recorder.current is not None:
            self.recorder.current.warm_boots_s += time.perf_counter() - t0
        return 0

    def _boot_complete_trace(self, cpu: int, result: BootResult, start: float) -> None:
        """RMM_BOOT_COMPLETE as the Realm world issued it, in the SMC trace."""
        args = (u64(int(result.status)), u64(result.token))
        self.trace.add(cpu, "realm", Fid.RMM_BOOT_COMPLETE, args, (0,) * 6, start, trio.current_time() - start)
