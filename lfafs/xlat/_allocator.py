"""Questions to a context's VA allocator, and the whole-context check."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ._native import XlatError, call, ffi, lib, u64

if TYPE_CHECKING:
    from ._memory import Memory

POLICIES = {"bitmap": lib.XLAT_POLICY_BITMAP, "scan": lib.XLAT_POLICY_SCAN}

_CHECK_WHAT = {
    lib.XLAT_CHECK_BAD_TABLE: "table address outside memory",
    lib.XLAT_CHECK_BAD_ENTRY: "dynamic entry in no valid state",
    lib.XLAT_CHECK_BITMAP_MISMATCH: "bitmap disagrees with descriptor bit 56",
    lib.XLAT_CHECK_SUMMARY: "summary tree disagrees with the bitmap",
    lib.XLAT_CHECK_PARENT_FLAG: "table descriptor bit 56 disagrees with its child table",
    lib.XLAT_CHECK_BAD_CONTEXT: "context fields out of range",
}


def policy_value(op: str, policy: str) -> int:
    """The C value of a search policy by name, or XlatError(EINVAL) listing the names."""
    if policy not in POLICIES:
        raise XlatError(errno.EINVAL, op, f"policy must be one of {sorted(POLICIES)}")
    return POLICIES[policy]


class AllocatorQueries:
    """The allocator half of :class:`~lfafs.xlat.Context` (native/xlat_alloc.h); none of it writes."""

    memory: Memory
    _ctx: Any
    _out: Any

    @property
    def free_pages(self) -> int:
        return self._stats()[0]

    @property
    def longest_free_run(self) -> int:
        return self._stats()[1]

    def _stats(self) -> tuple[int, int]:
        out = ffi.new("uint64_t[2]")
        call("stats", lib.xlat_alloc_stats, self.memory._env, self._ctx, out, out + 1, lock=self.memory.lock)
        return int(out[0]), int(out[1])

    def find_va(self, size: int, *, policy: str = "bitmap") -> int:
        """The VA ``map`` would pick for ``size`` bytes now, without allocating."""
        p = policy_value("find_va", policy)
        return call("find_va", lib.xlat_find_va, self.memory._env, self._ctx, u64("size", size), p, self._out,
                    lock=self.memory.lock, detail=f"size={size:#x}", out=self._out)

    def find_va_repeated(self, size: int, reps: int, *, policy: str = "bitmap") -> int | None:
        """Benchmark support: run the VA search ``reps`` times in one native call.

        Returns the VA found, or None when no run of ``size`` bytes is free.
        """
        p = policy_value("find_va", policy)
        try:
            return call("find_va", lib.xlat_find_va_repeat, self.memory._env, self._ctx, u64("size", size), p,
                        u64("reps", reps), self._out, lock=self.memory.lock, detail=f"size={size:#x}",
                        out=self._out)
        except XlatError as e:
            if e.errno == errno.ENOMEM:
                return None
            raise

    def check(self) -> None:
        """Verify the pool: entry states, bitmap == bit 56, summary tree, parent flags."""
        rep = ffi.new("struct xlat_check_report *")
        try:
            call("check", lib.xlat_check, self.memory._env, self._ctx, rep, lock=self.memory.lock)
        except XlatError as e:
            what = _CHECK_WHAT.get(int(rep.what), "inconsistent")
            raise XlatError(e.errno, "check", f"{what} at va={int(rep.va):#x} level={int(rep.level)}") from None
