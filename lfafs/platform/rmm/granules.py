"""The granule array: one entry per 4 KB granule of DRAM, in reserved memory.

Each entry is 8 bytes, state in byte 0 (TF-RMM struct granule keeps a lock,
a state and a reference count in one word). The RMM reaches the array only
through its VA in the dynamic pool, so a new image that inherits the
mapping inherits every state.
"""

from __future__ import annotations

import enum

from lfafs.xlat import Context, Memory

ENTRY = 8
GRANULE = 4096


class GranuleState(enum.IntEnum):
    UNDELEGATED = 0
    DELEGATED = 1


class Granules:
    """Access to the array through the RMM's dynamic mapping of it."""

    def __init__(self, memory: Memory, dyn: Context, va: int, dram_base: int, count: int) -> None:
        self.memory = memory
        self.dyn = dyn
        self.va = va
        self.dram_base = dram_base
        self.count = count

    @staticmethod
    def array_bytes(count: int) -> int:
        return -(-count * ENTRY // GRANULE) * GRANULE

    def index(self, addr: int) -> int | None:
        if addr % GRANULE or not self.dram_base <= addr < self.dram_base + self.count * GRANULE:
            return None
        return (addr - self.dram_base) // GRANULE

    def _entry_pa(self, idx: int) -> int:
        walk = self.dyn.walk(self.va + idx * ENTRY)
        if walk.pa is None:
            raise RuntimeError(f"granule array VA {self.va + idx * ENTRY:#x} is not mapped")
        return walk.pa

    def state(self, idx: int) -> GranuleState:
        return GranuleState(self.memory.read(self._entry_pa(idx), 1)[0])

    def set_state(self, idx: int, state: GranuleState) -> None:
        self.memory.write(self._entry_pa(idx), bytes([int(state)]))
