"""The runtime L3 API of a context: map, unmap and the reserve/populate/commit cycle."""

from __future__ import annotations

import array
import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._allocator import policy_value
from ._native import XlatBatchError, XlatError, call, ffi, lib, u64

if TYPE_CHECKING:
    from ._memory import Memory


def _u64_array(values: Iterable[int], name: str):
    """(cdata uint64_t[], n); an ``array('Q')`` is already unsigned 64-bit and is used in place."""
    if isinstance(values, array.array) and values.typecode == "Q":
        n = len(values)
        return (ffi.from_buffer("uint64_t[]", values) if n else ffi.new("uint64_t[1]")), n
    checked = [u64(name, v) for v in values]
    return (ffi.new("uint64_t[]", checked) if checked else ffi.new("uint64_t[1]")), len(checked)


class RuntimeL3:
    """The runtime half of :class:`~lfafs.xlat.Context` (native/xlat_l3.h).

    Every call needs the MMU on and changes nothing when it fails.
    """

    memory: Memory
    _ctx: Any
    _out: Any

    def map(self, pa: int, size: int, attr: int) -> int:
        """Map ``size`` bytes at ``pa`` at a VA the allocator picks (lowest first fit)."""
        # The hot path: no per-call allocation, errors formatted only on failure.
        mem = self.memory
        return call("map", lib.xlat_map_l3_region, mem._env, self._ctx, pa, size, attr, self._out,
                    lock=mem.lock, detail=("pa={:#x} size={:#x}", pa, size), out=self._out)

    def unmap(self, va: int, size: int) -> None:
        call("unmap", lib.xlat_unmap_l3_region, self.memory._env, self._ctx, va, size,
             lock=self.memory.lock, detail=("va={:#x} size={:#x}", va, size))

    def reserve(self, size: int) -> int:
        return call("reserve", lib.xlat_reserve_va_l3_region, self.memory._env, self._ctx, size, self._out,
                    lock=self.memory.lock, detail=("size={:#x}", size), out=self._out)

    def populate(self, va: int, pa: int, size: int, attr: int) -> None:
        call("populate", lib.xlat_populate_va_l3_region, self.memory._env, self._ctx, va, pa, size, int(attr),
             lock=self.memory.lock, detail=("va={:#x} pa={:#x} size={:#x}", va, pa, size))

    def _range(self, op: str, fn, va: int, size: int) -> None:
        call(op, fn, self.memory._env, self._ctx, va, size,
             lock=self.memory.lock, detail=("va={:#x} size={:#x}", va, size))

    def commit(self, va: int, size: int) -> None:
        self._range("commit", lib.xlat_commit_va_l3_region, va, size)

    def decommit(self, va: int, size: int) -> None:
        self._range("decommit", lib.xlat_decommit_va_l3_region, va, size)

    def depopulate(self, va: int, size: int) -> None:
        self._range("depopulate", lib.xlat_depopulate_va_l3_region, va, size)

    def unreserve(self, va: int, size: int) -> None:
        self._range("unreserve", lib.xlat_unreserve_va_l3_region, va, size)

    def map_batch(self, pas: Iterable[int], size: int, attr: int, *, policy: str = "bitmap",
                  out: array.array | None = None) -> array.array:
        """Map one ``size``-byte range per PA in one native call; returns the VAs (``array('Q')``).

        The batch stops at the first failing element, which changes nothing;
        :class:`XlatBatchError` then carries the VAs of the elements done.
        ``policy="scan"`` picks VAs with TF-RMM's descriptor scan instead of
        the bitmap (same answers, for comparison).  ``out``, an ``array('Q')``
        as long as ``pas``, receives the VAs in place and is returned (so that
        a benchmark times the maps, not the allocation of their result).
        """
        p = policy_value("map_batch", policy)
        cpas, n = _u64_array(pas, "pa")
        if out is not None:
            if not isinstance(out, array.array) or out.typecode != "Q" or len(out) != n:
                raise XlatError(errno.EINVAL, "map_batch", f"out must be an array('Q') of {n} elements")
            vas = ffi.from_buffer("uint64_t[]", out) if n else ffi.new("uint64_t[1]")
        else:
            vas = ffi.new("uint64_t[]", max(n, 1))
        done = ffi.new("uint64_t *")
        try:
            call("map_batch", lib.xlat_map_l3_batch, self.memory._env, self._ctx, cpas, n, u64("size", size),
                 u64("attr", int(attr)), p, vas, done, lock=self.memory.lock)
        except XlatError as e:
            raise XlatBatchError(e.errno, "map_batch", [int(v) for v in vas[0:int(done[0])]]) from None
        if out is not None:
            return out
        result = array.array("Q")
        result.frombytes(ffi.buffer(vas, 8 * int(done[0])))
        return result

    def unmap_batch(self, vas: Iterable[int], size: int) -> None:
        """Unmap ``size`` bytes at each VA in one native call; stops at the first failure."""
        cvas, n = _u64_array(vas, "va")
        done = ffi.new("uint64_t *")
        try:
            call("unmap_batch", lib.xlat_unmap_l3_batch, self.memory._env, self._ctx, cvas, n, u64("size", size),
                 done, lock=self.memory.lock)
        except XlatError as e:
            raise XlatBatchError(e.errno, "unmap_batch", [int(v) for v in cvas[0:int(done[0])]]) from None

    def unmap_batch_as_tfrmm(self, vas: Iterable[int], size: int) -> int:
        """Benchmark support: unmap as TF-RMM does, and return the nanoseconds it took.

        Each element runs TF-RMM's ``xlat_unmap_l3_region()`` in its single
        pass (native/xlat_reference.h): not all or nothing, and TLBI over the
        whole range even when it fails; where TF-RMM asserts, the element
        stops with an error, earlier pages unmapped.  The bitmap is rebuilt
        from the descriptors afterwards (not timed), so the context stays
        consistent.  Raises :class:`XlatBatchError` like :meth:`unmap_batch`.
        """
        cvas, n = _u64_array(vas, "va")
        out = ffi.new("uint64_t[2]")  # done, ns
        try:
            call("unmap_batch_as_tfrmm", lib.xlat_tfrmm_unmap_l3_batch, self.memory._env, self._ctx, cvas, n,
                 u64("size", size), out, out + 1, lock=self.memory.lock)
        except XlatError as e:
            done = [int(v) for v in cvas[0:int(out[0])]]
            raise XlatBatchError(e.errno, "unmap_batch_as_tfrmm", done) from None
        return int(out[1])
