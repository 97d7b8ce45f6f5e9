"""Emulated DRAM and the state of the CPU that uses it."""

from __future__ import annotations

import errno
import mmap
import threading

import attrs

from ._descriptors import PAGE
from ._native import XlatError, call, ffi, lib, u64


@attrs.frozen
class TlbiLog:
    """TLB maintenance issued so far: one TLBI VAE2IS per page, one DSB ISH; ISB per call."""

    pages: int
    syncs: int
    recent: tuple[tuple[int, int], ...]  # (va, pages), oldest first, at most 64


class Memory:
    """Emulated DRAM: one sparse anonymous mapping; untouched pages cost nothing.

    It also carries the state of the CPU that uses it: the MMU enable bit
    (SCTLR_EL2.M) and the log of TLB invalidations.  One lock serialises
    every native call on this memory, so no two threads ever run C on it at
    once.
    """

    def __init__(self, size: int, *, base_pa: int = 0) -> None:
        u64("size", size)
        u64("base_pa", base_pa)
        if size == 0 or size % PAGE or base_pa % PAGE or base_pa + size > lib.XLAT_MAX_PA_LPA2:
            raise XlatError(
                errno.EINVAL, "Memory",
                f"size {size:#x} and base_pa {base_pa:#x} must be non-zero 4 KB multiples below 2**52",
            )
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        try:
            self._map = mmap.mmap(-1, size, flags=flags)
        except OSError as e:
            raise XlatError(e.errno or errno.ENOMEM, "Memory",
                            f"the host refused a sparse mapping of {size:#x} bytes; use a smaller DRAM size") from e
        self._buf = ffi.from_buffer(self._map)
        self._env = ffi.new("struct xlat_env *")
        call("Memory", lib.xlat_env_init, self._env, self._buf, base_pa, size)
        self.lock = threading.RLock()
        self.base_pa = base_pa
        self.size = size

    @property
    def end_pa(self) -> int:
        return self.base_pa + self.size

    def _offset(self, pa: int, n: int, op: str) -> int:
        u64("pa", pa)
        u64("length", n)
        if pa < self.base_pa or pa + n > self.end_pa:
            raise XlatError(
                errno.EFAULT, op,
                f"[{pa:#x}, {pa + n:#x}) is outside memory [{self.base_pa:#x}, {self.end_pa:#x})",
            )
        return pa - self.base_pa

    def read(self, pa: int, n: int) -> bytes:
        off = self._offset(pa, n, "read")
        with self.lock:
            return self._map[off:off + n]

    def write(self, pa: int, data: bytes) -> None:
        off = self._offset(pa, len(data), "write")
        with self.lock:
            self._map[off:off + len(data)] = data

    def read64(self, pa: int) -> int:
        return int.from_bytes(self.read(pa, 8), "little")

    def write64(self, pa: int, value: int) -> None:
        self.write(pa, u64("value", value).to_bytes(8, "little"))

    def zero(self, pa: int, n: int) -> None:
        off = self._offset(pa, n, "zero")
        chunk = bytes(min(n, 1 << 20))
        with self.lock:
            for start in range(off, off + n, len(chunk) or 1):
                end = min(start + len(chunk), off + n)
                self._map[start:end] = chunk[: end - start]

    @property
    def mmu_on(self) -> bool:
        """SCTLR_EL2.M of the emulated CPU: the runtime L3 API needs it set, stitching clear."""
        return bool(self._env.mmu_on)

    @mmu_on.setter
    def mmu_on(self, value: bool) -> None:
        with self.lock:
            self._env.mmu_on = 1 if value else 0

    @property
    def tlbi(self) -> TlbiLog:
        with self.lock:
            log = self._env.tlbi
            count, head = log.count, log.head
            ring = lib.XLAT_TLBI_RING
            recent = tuple(
                (int(log.ring[(head - count + i) % ring].va), int(log.ring[(head - count + i) % ring].pages))
                for i in range(count)
            )
            return TlbiLog(pages=int(log.pages), syncs=int(log.syncs), recent=recent)

    def clear_tlbi(self) -> None:
        with self.lock:
            lib.xlat_tlbi_clear(self._env)
