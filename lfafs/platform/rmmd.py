"""The EL3 side of the RMM: RMMD (TF-A services/std_svc/rmmd).

It owns the RMM carve-out: the payload banks, the reservation pool served
to RMM_RESERVE_MEMORY, the shared buffer with the boot manifest, and one
activation token per CPU, stored from RMM_BOOT_COMPLETE x2 whatever the
status. A failed RMM boot sets ``boot_failed``: from then on every RMI and
RMM-EL3 call answers SMC_UNK until the platform is reset.
"""

from __future__ import annotations

import attrs

from lfafs.platform.images import Image
from lfafs.platform.memory import ReserveAllocator
from lfafs.platform.profile import RmmSpec
from lfafs.platform.rmm.boot import BootResult, RmmImage
from lfafs.platform.rmm.manifest import write_manifest
from lfafs.smccc import RMM_EL3_INTERFACE_VERSION, RmmBootStatus
from lfafs.xlat import Memory


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
    rmm: RmmImage | None = None
    entry_pa: int = attrs.field(init=False)

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

    def boot_complete(self, cpu: int, result: BootResult) -> None:
        """RMM_BOOT_COMPLETE: x2 is stored as the CPU's token whatever x1 says."""
        self.tokens[cpu] = result.token
        if result.status != RmmBootStatus.SUCCESS:
            self.boot_failed = True
            self.failure = f"RMM boot failed on CPU {cpu}: {result.status.name}: {result.reason}"

    def _manifest(self) -> None:
        write_manifest(self.memory, self.shared_buffer, [(self.dram_base, self.dram_size)])

    def new_image(self, image: Image, load_pa: int) -> RmmImage:
        return RmmImage(image, load_pa, self.spec, self.memory, self.dram_base, self.dram_size, self.shared_buffer)

    def cold_boot(self, cpu: int, rmm: RmmImage) -> BootResult:
        """rmmd_setup + rmm_init: (cpu, interface version, CPU count, shared buffer, token)."""
        self._manifest()
        result = rmm.cold_boot(self.reserve, cpu, RMM_EL3_INTERFACE_VERSION, self.ncpus,
                               self.shared_buffer, self.tokens[cpu])
        self.boot_complete(cpu, result)
        if result.status == RmmBootStatus.SUCCESS:
            self.rmm = rmm
        return result

    def warm_boot(self, cpu: int) -> BootResult:
        """The warm path of the running image: (cpu, token)."""
        if self.rmm is None:
            return BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, "no RMM image")
        result = self.rmm.warm_boot(cpu, self.tokens[cpu])
        self.boot_complete(cpu, result)
        return result

    def primary_activate(self, cpu: int, image: Image) -> BootResult:
        """rmmd_primary_activate: the leader enters the new image on the cold path with its token."""
        self.entry_pa = self.second_bank
        rmm = self.new_image(image, self.entry_pa)
        return self.cold_boot(cpu, rmm)
