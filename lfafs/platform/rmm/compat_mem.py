"""Compatibility reservations: an RMM built with RMM_EL3_COMPAT_RESERVE_MEM.

TF-RMM plat/common/src/plat_compat_mem.c, plat_compat_reserve_memory(): for
an EL3 without RMM_RESERVE_MEMORY, the image serves its own reservations,
bumping upwards through a static array. lfafs models the array as a fixed
region above the payload banks (docs/rmm-lfa.md, "Compatibility mode").
"""

from __future__ import annotations

import attrs

from lfafs.smccc import RmmEl3Status

ARRAY_SIZE = 24 << 20


@attrs.define
class CompatReserve:
    """An upward bump allocator over [next, end)."""

    next: int
    end: int

    @classmethod
    def above(cls, base: int) -> CompatReserve:
        return cls(base, base + ARRAY_SIZE)

    def reserve(self, size: int, args: int) -> tuple[int, int]:
        """Same contract as RMM_RESERVE_MEMORY: (status, PA)."""
        align = 1 << (args >> 56)
        addr = -(-self.next // align) * align
        if addr + size > self.end:
            return RmmEl3Status.NOMEM, 0
        self.next = addr + size
        return RmmEl3Status.OK, addr
