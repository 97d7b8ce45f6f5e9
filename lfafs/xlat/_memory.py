"""Emulated DRAM and the state of the CPU that uses it."""

from __future__ import annotations

import errno
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
    """Emulated DRAM: a sparse store in the native core (docs/decisions/0008-sparse-dram.md).

    DRAM is cut into windows of ``window`` bytes (1 GiB unless measuring).
    A window costs nothing until something in it is written; then it gets a
    host mapping of its own, backed page by page as pages are written.  So
    a 4 TB node that writes a few megabytes costs a few megabytes of host
    memory and a window of address space per window written, and memory
    never written reads as zero.  Writing whole pages of zeros, or zeroing
    a range, hands their host memory back.

    It also carries the state of the CPU that uses it: the MMU enable bit
    (SCTLR_EL2.M) and the log of TLB invalidations.  One lock serialises
    every native call on this memory, so no two threads ever run C on it at
    once.
    """

    WINDOW = 1 << lib.PMEM_WINDOW_SHIFT
    MAX_WINDOWS = lib.PMEM_MAX_WINDOWS

    def __init__(self, size: int, *, base_pa: int = 0, window: int | None = None) -> None:
        u64("size", size)
        u64("base_pa", base_pa)
        if size == 0 or size % PAGE or base_pa % PAGE or base_pa + size > lib.XLAT_MAX_PA_LPA2:
            raise XlatError(
                errno.EINVAL, "Memory",
                f"size {size:#x} and base_pa {base_pa:#x} must be non-zero 4 KB multiples below 2**52",
            )
        if window is None:
            # The default window, doubled until the directory fits (DRAM beyond 64 TiB).
            window = self.WINDOW
            while -(-size // window) > self.MAX_WINDOWS:
                window *= 2
        shift = window.bit_length() - 1 if isinstance(window, int) and window > 0 else -1
        if (shift < 0 or window != 1 << shift
                or not lib.PMEM_WINDOW_SHIFT_MIN <= shift <= lib.PMEM_WINDOW_SHIFT_MAX):
            raise XlatError(errno.EINVAL, "Memory", f"window {window!r} must be a power of two from 4 KB to 2**52")
        if -(-size // window) > self.MAX_WINDOWS:
            raise XlatError(
                errno.EINVAL, "Memory",
                f"size {size:#x} needs more than {self.MAX_WINDOWS} windows of {window:#x} bytes; "
                f"the largest DRAM is {self.MAX_WINDOWS * window:#x}",
            )
        env = ffi.new("struct xlat_env *")
        call("Memory", lib.xlat_env_init, env, base_pa, size, shift)
        # Every window the store mapped is unmapped when this Memory goes.
        self._env = ffi.gc(env, lib.xlat_env_fini)
        self._mem = ffi.addressof(self._env, "mem")
        self._word = ffi.new("uint64_t *")  # read64's result, read under the lock
        self.lock = threading.RLock()
        self.base_pa = base_pa
        self.size = size
        self.window = window

    @property
    def end_pa(self) -> int:
        return self.base_pa + self.size

    def _check(self, pa: int, n: int, op: str) -> None:
        # The common case in one comparison chain; the C store checks again.
        if type(pa) is int and type(n) is int and self.base_pa <= pa and 0 <= n and pa + n <= self.base_pa + self.size:
            return
        u64("pa", pa)
        u64("length", n)
        if pa < self.base_pa or pa + n > self.end_pa:
            raise XlatError(
                errno.EFAULT, op,
                f"[{pa:#x}, {pa + n:#x}) is outside memory [{self.base_pa:#x}, {self.end_pa:#x})",
            )

    def read(self, pa: int, n: int) -> bytes:
        """``n`` bytes at ``pa``; never-written memory reads as zero and stays unbacked."""
        self._check(pa, n, "read")
        buf = ffi.new("char[]", n)
        call("read", lib.pmem_read, self._mem, pa, buf, n, lock=self.lock)
        return ffi.unpack(buf, n)

    def write(self, pa: int, data: bytes) -> None:
        """Store ``data`` at ``pa``; whole pages of zeros are handed back rather than written."""
        n = len(data)
        self._check(pa, n, "write")
        call("write", lib.pmem_write, self._mem, pa, ffi.from_buffer(data), n, lock=self.lock,
             detail=("the host refused to map memory for [{:#x}, {:#x})", pa, pa + n))

    def read64(self, pa: int) -> int:
        self._check(pa, 8, "read")
        return call("read", lib.pmem_read, self._mem, pa, self._word, 8, lock=self.lock, out=self._word)

    def write64(self, pa: int, value: int) -> None:
        self._check(pa, 8, "write")
        call("write", lib.pmem_write, self._mem, pa, ffi.new("uint64_t *", u64("value", value)), 8,
             lock=self.lock, detail=("the host refused to map memory for [{:#x}, {:#x})", pa, pa + 8))

    def zero(self, pa: int, n: int) -> None:
        """Make [pa, pa + n) read as zero; costs nothing where never written, and frees whole pages."""
        self._check(pa, n, "zero")
        call("zero", lib.pmem_zero, self._mem, pa, n, lock=self.lock)

    @property
    def mapped_bytes(self) -> int:
        """Host address space this memory holds: the windows written so far (host memory is less)."""
        out = ffi.new("uint64_t[2]")
        with self.lock:
            lib.pmem_usage(self._mem, out, out + 1)
        return int(out[1])

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
