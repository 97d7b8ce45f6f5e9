"""A pure-Python reference model of the L3 runtime API and the VA allocator.

It knows the semantics of TF-RMM's lib/xlat/src/xlat_tables_utils.c
(xlat_map_l3_region() and its siblings, xlat_apply_va_l3_entry(),
find_available_va()) and the deliberate differences (docs/rmm-lfa.md, "What
differs from TF-RMM, and why"), and nothing of the C core:
entries are a Python list, the allocator a linear first-fit scan, and the
descriptor encoding its own.  The stateful test drives both and compares.
"""

from __future__ import annotations

import errno

PAGE = 4096
T55 = 1 << 55
A56 = 1 << 56
MAX_PA = 1 << 48


def encode(attr: int, pa: int) -> int:
    """Page descriptor for an MT_* word (TF-RMM xlat_desc, no LPA2)."""
    d = (pa & 0x0000_FFFF_FFFF_F000) | 0b11 | (1 << 10)
    mtype, rw = attr & 0xF, attr & (1 << 4)
    if attr & (1 << 8):
        d |= 1 << 5  # NS
    if not rw:
        d |= 1 << 7  # AP[2]
    if attr & (1 << 7):
        d |= 1 << 11  # nG
    if not attr & (1 << 10):
        d |= 1 << 54  # UXN
    if attr & (1 << 9):
        d |= 1 << 6  # AP[1]
    if attr & (1 << 11):
        d |= 1 << 63  # AMEC
    if mtype == 0:
        d |= (1 << 2) | (1 << 53)  # device: AttrIndx 1, PXN
    else:
        d |= (1 << 53) if (rw or attr & (1 << 5)) else (1 << 50)
        d |= 0b11 << 8  # inner shareable
    return d


def attr_ok(attr: int) -> bool:
    return attr & ~0xFFF == 0 and attr & 0xF in (0, 2, 3)


def state(d: int) -> str:
    if not d & T55:
        return "static"
    if d == T55:
        return "free"
    if d == T55 | A56:
        return "reserved"
    return "committed" if d & 1 else "populated"


class ModelError(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(errno.errorcode[err])
        self.errno = err


class Model:
    """Entries of pages [0, pages) of a context based at VA 0 of size va_size."""

    def __init__(self, entries: list[int], va_size: int) -> None:
        self.entries = list(entries)
        self.va_size = va_size
        self.tlbi_pages = 0

    # -- helpers --------------------------------------------------------------

    def _find(self, n: int) -> int:
        run = 0
        for i, d in enumerate(self.entries):
            run = run + 1 if d == T55 else 0
            if run == n:
                return i - n + 1
        raise ModelError(errno.ENOMEM)

    def _in_ctx(self, va: int, size: int) -> None:
        if va >= self.va_size or size > self.va_size - va:
            raise ModelError(errno.EFAULT)

    def _pages(self, va: int, size: int, accepted: set[str]) -> range:
        pages = range(va // PAGE, (va + size) // PAGE)
        for p in pages:
            if p >= len(self.entries):
                raise ModelError(errno.EFAULT)  # no L3 table here
            if state(self.entries[p]) not in accepted:
                raise ModelError(errno.EPERM)
        return pages

    # -- the API --------------------------------------------------------------

    def map(self, pa: int, size: int, attr: int) -> int:
        if size % PAGE or pa % PAGE:
            raise ModelError(errno.EFAULT)
        if size == 0:
            raise ModelError(errno.EINVAL)
        if attr & 0xF == 3:
            raise ModelError(errno.EFAULT)
        if not attr_ok(attr):
            raise ModelError(errno.EINVAL)
        if pa + size > MAX_PA:
            raise ModelError(errno.ERANGE)
        first = self._find(size // PAGE)
        for k in range(size // PAGE):
            self.entries[first + k] = encode(attr, pa + k * PAGE) | T55 | A56
        return first * PAGE

    def unmap(self, va: int, size: int) -> None:
        if size == 0:
            raise ModelError(errno.EINVAL)
        if (va | size) % PAGE:
            raise ModelError(errno.EFAULT)
        self._in_ctx(va, size)
        for p in self._pages(va, size, {"committed"}):
            self.entries[p] = T55
        self.tlbi_pages += size // PAGE

    def reserve(self, size: int) -> int:
        if size % PAGE or size == 0:
            raise ModelError(errno.EINVAL)
        first = self._find(size // PAGE)
        for k in range(size // PAGE):
            self.entries[first + k] = T55 | A56
        return first * PAGE

    def populate(self, va: int, pa: int, size: int, attr: int) -> None:
        if (va | pa | size) % PAGE or size == 0 or attr & 0xF == 3 or not attr_ok(attr):
            raise ModelError(errno.EINVAL)
        if pa + size > MAX_PA:
            raise ModelError(errno.ERANGE)
        self._in_ctx(va, size)
        for k, p in enumerate(self._pages(va, size, {"reserved"})):
            self.entries[p] = (encode(attr, pa + k * PAGE) | T55 | A56) & ~1

    def _range(self, va: int, size: int, accepted: set[str]) -> range:
        if (va | size) % PAGE or size == 0:
            raise ModelError(errno.EINVAL)
        self._in_ctx(va, size)
        return self._pages(va, size, accepted)

    def commit(self, va: int, size: int) -> None:
        for p in self._range(va, size, {"populated"}):
            self.entries[p] |= 1

    def decommit(self, va: int, size: int) -> None:
        for p in self._range(va, size, {"committed"}):
            self.entries[p] &= ~1
        self.tlbi_pages += size // PAGE

    def depopulate(self, va: int, size: int) -> None:
        for p in self._range(va, size, {"populated"}):
            self.entries[p] = T55 | A56

    def unreserve(self, va: int, size: int) -> None:
        for p in self._range(va, size, {"reserved", "populated"}):
            self.entries[p] = T55

    def longest_free_run(self) -> int:
        best = run = 0
        for d in self.entries:
            run = run + 1 if d == T55 else 0
            best = max(best, run)
        return best
