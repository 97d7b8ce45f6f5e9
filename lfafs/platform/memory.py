"""Emulated DRAM and the EL3 allocator behind RMM_RESERVE_MEMORY.

DRAM is one sparse mapping (lfafs.xlat.Memory): untouched pages cost
nothing. EL3 hands the RMM memory from the top of its carve-out downwards,
as TF-A's Arm platform code does (plat_rmmd_reserve_memory, docs/smc-abi.md
4.3); reservations are never freed and outlive every RMM activation.
"""

from __future__ import annotations

import attrs

from lfafs.smccc import RmmEl3Status
from lfafs.xlat import Memory

PAGE = 4096
RESERVE_FLAGS_MASK = ((1 << 56) - 1) & ~1  # args [55:1] must be zero
LOCAL_CPU = 1


@attrs.define
class Reservation:
    pa: int
    size: int
    align: int
    local_cpu: bool


@attrs.define
class ReserveAllocator:
    """Top-down bump allocator over [floor, top)."""

    floor: int
    top: int
    log: list[Reservation] = attrs.field(factory=list)

    def reserve(self, size: int, args: int) -> tuple[RmmEl3Status, int]:
        """RMM_RESERVE_MEMORY(x1 = size, x2 = args) -> (status, PA).

        TF-A services/std_svc/rmmd/rmmd_mem.c, rmmd_reserve_memory(), then the
        Arm platform's plat_rmmd_reserve_memory() (plat_rmm_mem_carveout.c):
        an unknown flag is E_RMM_INVAL; the PA is (top - size) aligned down,
        refused below the payload. Size 0 succeeds as there: the current top,
        aligned down, which becomes the new top.
        """
        if args & RESERVE_FLAGS_MASK:
            return RmmEl3Status.INVAL, 0
        align = 1 << (args >> 56)
        # TF-A's top - size wraps when size > top and hands out an address past the
        # carve-out; lfafs refuses (a deliberate fix, docs/rmm-lfa.md).
        if size > self.top:
            return RmmEl3Status.NOMEM, 0
        addr = (self.top - size) & ~(align - 1)
        if addr < self.floor:
            return RmmEl3Status.NOMEM, 0
        self.top = addr
        self.log.append(Reservation(pa=addr, size=size, align=align, local_cpu=bool(args & LOCAL_CPU)))
        return RmmEl3Status.OK, addr


def reserve_args(align: int = PAGE, *, local_cpu: bool = False) -> int:
    """x2 for RMM_RESERVE_MEMORY: alignment exponent in [63:56], LOCAL_CPU in [0]."""
    if align <= 0 or align & (align - 1):
        raise ValueError(f"alignment must be a power of two, got {align}")
    return ((align.bit_length() - 1) << 56) | (LOCAL_CPU if local_cpu else 0)


def make_dram(base: int, size: int) -> Memory:
    """A node's DRAM [base, base + size): 4 KB aligned, any size below 2**52.

    A sparse store (docs/decisions/0008-sparse-dram.md): creating it maps
    nothing; the node pays host memory for the pages it writes and 1 GiB of
    address space for each 1 GiB window it writes in, so thousands of
    multi-terabyte nodes fit in one process.  Zeroing (Memory.zero) never
    costs memory and hands written pages back.
    """
    return Memory(size, base_pa=base)
