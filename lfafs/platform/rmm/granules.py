"""The granule array: one ``struct granule`` per 4 KB granule of DRAM, in reserved memory.

As TF-RMM lib/granule/include/granule_types.h (v0.9.0 and main): an entry
is one 16-bit descriptor, lock in bit 15, state in bits 14:10, reference
count in bits 9:0, and the array is round_up(2 x granules, 4 KB) bytes
(lib/glob_data/src/glob_data.c, glob_data_init()). The RMM reaches the
array only through its VA in the dynamic pool, so a new image that inherits
the mapping inherits every state.
"""

from __future__ import annotations

import enum
import struct

from lfafs.xlat import Context, Memory

GRANULE = 4096
ENTRY = 2  # sizeof(struct granule)
LOCK_BIT = 1 << 15
STATE_SHIFT, STATE_WIDTH = 10, 5
REFCOUNT_SHIFT, REFCOUNT_WIDTH = 0, 10
STATE_MASK = ((1 << STATE_WIDTH) - 1) << STATE_SHIFT
REFCOUNT_MASK = ((1 << REFCOUNT_WIDTH) - 1) << REFCOUNT_SHIFT
_DESC = struct.Struct("<H")


class GranuleState(enum.IntEnum):
    """TF-RMM GRANULE_STATE_* (granule_types.h); PSMMU_ST_L2 exists from main on."""

    NS = 0
    DELEGATED = 1
    RD = 2
    REC = 3
    REC_AUX = 4
    DATA = 5
    RTT = 6
    PDEV = 7
    PDEV_AUX = 8
    VDEV = 9
    VDEV_AUX = 10
    PARTIAL = 11
    INTERNAL = 12
    PSMMU_ST_L2 = 13


def array_bytes(count: int) -> int:
    """round_up(sizeof(struct granule) * count, GRANULE_SIZE)."""
    return -(-count * ENTRY // GRANULE) * GRANULE


class Granules:
    """Access to the array through the RMM's dynamic mapping of it.

    ``find`` is TF-RMM's find_granule(): an aligned address inside the one
    DRAM bank the boot manifest describes, else None.
    """

    def __init__(self, memory: Memory, dyn: Context, va: int, dram_base: int, count: int) -> None:
        self.memory = memory
        self.dyn = dyn
        self.va = va
        self.dram_base = dram_base
        self.count = count

    @staticmethod
    def array_bytes(count: int) -> int:
        return array_bytes(count)

    def find(self, addr: int) -> int | None:
        if addr % GRANULE or not self.dram_base <= addr < self.dram_base + self.count * GRANULE:
            return None
        return (addr - self.dram_base) // GRANULE

    def address(self, idx: int) -> int:
        return self.dram_base + idx * GRANULE

    def _entry_pa(self, idx: int) -> int:
        walk = self.dyn.walk(self.va + idx * ENTRY)
        if walk.pa is None:
            raise RuntimeError(f"granule array VA {self.va + idx * ENTRY:#x} is not mapped")
        return walk.pa

    def descriptor(self, idx: int) -> int:
        return _DESC.unpack(self.memory.read(self._entry_pa(idx), ENTRY))[0]

    def state(self, idx: int) -> int:
        """The state field; an int, since a corrupted array may hold any 5-bit value."""
        return (self.descriptor(idx) & STATE_MASK) >> STATE_SHIFT

    def set_state(self, idx: int, state: GranuleState) -> None:
        """__granule_set_state() then unlock: the reference count is kept, the lock bit cleared."""
        d = self.descriptor(idx)
        d = (d & REFCOUNT_MASK) | (int(state) << STATE_SHIFT)
        self.memory.write(self._entry_pa(idx), _DESC.pack(d))
