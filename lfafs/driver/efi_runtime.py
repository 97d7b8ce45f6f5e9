"""The kernel's side of the EFI runtime services: which calls exist, one call at a time, statuses to errno.

- drivers/firmware/efi/efi.c: generic_ops_register() registers the efivars
  ops only when the RT properties table has GetVariable and
  GetNextVariableName, wires set_variable only with SetVariable, and
  efivarfs' statfs asks QueryVariableInfo only when that bit is set;
  efi_status_to_err() maps statuses to errno.
- drivers/firmware/efi/runtime-wrappers.c: every call goes through the
  ordered workqueue efi_rts_wq, one at a time, and the caller waits without
  a timeout; with runtime services disabled every call answers EFI_ABORTED.
- fs/efivarfs/vars.c: efivar_lock() (the efivars_lock semaphore) held around
  the compound operations (set then get size).

The firmware is reached only through a :class:`RuntimeServices` object, as
the LFA driver reaches it only through an SMC conduit.
"""

from __future__ import annotations

import collections
import errno
import uuid
from typing import Protocol

import trio

from lfafs.uefi import EFI_RT_PROPERTIES_TABLE, RT_PROPERTIES, EfiStatus, RtSupported, SystemTable

S = EfiStatus
CALLS_KEPT = 1024  # the names of the last calls made, kept for tests that count them (calls_since)


class RuntimeServices(Protocol):
    """What firmware offers the OS after ExitBootServices (the UEFI runtime-services table)."""

    async def get_variable(self, name: str, vendor: uuid.UUID, *, attributes: bool, data_size: int,
                           data: bool = True) -> tuple[int, int | None, int, bytes | None]: ...

    async def get_next_variable_name(self, name_size: int, name: str, vendor: uuid.UUID
                                     ) -> tuple[int, int, str, uuid.UUID]: ...

    async def set_variable(self, name: str, vendor: uuid.UUID, attributes: int, data: bytes) -> int: ...

    async def query_variable_info(self, attributes: int) -> tuple[int, tuple[int, int, int] | None]: ...


_TO_ERR = {
    S.SUCCESS: 0,
    S.INVALID_PARAMETER: -errno.EINVAL,
    S.OUT_OF_RESOURCES: -errno.ENOSPC,
    S.DEVICE_ERROR: -errno.EIO,
    S.WRITE_PROTECTED: -errno.EROFS,
    S.SECURITY_VIOLATION: -errno.EACCES,
    S.NOT_FOUND: -errno.ENOENT,
    S.ABORTED: -errno.EINTR,
}


def efi_status_to_err(status: int) -> int:
    """drivers/firmware/efi/efi.c efi_status_to_err(): a negative errno; anything unlisted is -EINVAL."""
    return _TO_ERR.get(status, -errno.EINVAL)


def rt_supported(table: SystemTable) -> int:
    """The RuntimeServicesSupported mask of EFI_RT_PROPERTIES_TABLE (all calls when the table is absent)."""
    raw = table.table(EFI_RT_PROPERTIES_TABLE)
    if raw is None or len(raw) < RT_PROPERTIES.size:
        return 0xFFFF  # efi.runtime_supported_mask defaults to EFI_RT_SUPPORTED_ALL
    version, _, mask = RT_PROPERTIES.unpack_from(raw)
    return mask if version == 1 else 0xFFFF


class QuickLock:
    """A trio.Lock that is taken without a scheduling point when it is free.

    The kernel's efi_rts_wq and efivars_lock cost nothing uncontended; a
    trio.Lock yields to the scheduler on every acquire, and an efivarfs read
    takes the two locks twice each. Contended, it queues as trio.Lock does.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    def locked(self) -> bool:
        return self._lock.locked()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class EfiRuntime:
    """efi.get_variable() and friends as the kernel calls them, serialised on efi_rts_wq."""

    def __init__(self, services: RuntimeServices, table: SystemTable) -> None:
        self._fw = services
        self.supported = rt_supported(table)
        self.disabled = False  # set when a firmware fault made the kernel stop calling it
        self._rts = QuickLock()  # efi_rts_wq: one call at a time, in order
        self.efivars_lock = QuickLock()  # efivar_lock(): around compound operations
        self.call_count = 0
        self._recent: collections.deque[str] = collections.deque(maxlen=CALLS_KEPT)

    def calls_since(self, mark: int) -> list[str]:
        """The names of the calls made since ``call_count`` was ``mark`` (the last CALLS_KEPT are kept)."""
        n = self.call_count - mark
        if not 0 <= n <= len(self._recent):
            raise ValueError(f"calls since {mark} are not kept (made {self.call_count}, kept {len(self._recent)})")
        return list(self._recent)[len(self._recent) - n:]

    def has(self, bit: int) -> bool:
        return bool(self.supported & bit)

    @property
    def efivars_registered(self) -> bool:
        """generic_ops_register(): the efivars ops need GetVariable and GetNextVariableName."""
        return self.has(RtSupported.GET_VARIABLE) and self.has(RtSupported.GET_NEXT_VARIABLE_NAME)

    @property
    def supports_writes(self) -> bool:
        """efivar_supports_writes(): set_variable is wired only with SetVariable in the mask."""
        return self.has(RtSupported.SET_VARIABLE)

    async def _run(self, name: str, call, fallback):
        if self.disabled:
            return fallback
        async with self._rts:
            self.call_count += 1
            self._recent.append(name)
            return await call()

    async def get_variable(self, name: str, vendor: uuid.UUID, *, attributes: bool, data_size: int,
                           data: bool = True) -> tuple[int, int | None, int, bytes | None]:
        return await self._run("GetVariable", lambda: self._fw.get_variable(
            name, vendor, attributes=attributes, data_size=data_size, data=data), (S.ABORTED, None, 0, None))

    async def get_next_variable_name(self, name_size: int, name: str, vendor: uuid.UUID
                                     ) -> tuple[int, int, str, uuid.UUID]:
        return await self._run("GetNextVariableName", lambda: self._fw.get_next_variable_name(
            name_size, name, vendor), (S.ABORTED, name_size, name, vendor))

    async def set_variable(self, name: str, vendor: uuid.UUID, attributes: int, data: bytes) -> int:
        if not self.supports_writes:
            return S.UNSUPPORTED
        return await self._run("SetVariable", lambda: self._fw.set_variable(name, vendor, attributes, data),
                               S.ABORTED)

    async def query_variable_info(self, attributes: int) -> tuple[int, tuple[int, int, int] | None]:
        if not self.has(RtSupported.QUERY_VARIABLE_INFO):
            return S.UNSUPPORTED, None
        return await self._run("QueryVariableInfo", lambda: self._fw.query_variable_info(attributes),
                               (S.ABORTED, None))
