"""The lfa_fw.c model: probe, the image list, attributes, activate and cancel.

Target: the v3 series (docs/sysfs-abi.md section 6), with v1 and v2
selectable. Every firmware interaction is an SMC through the conduit the
daemon hands in; the model never sees the platform.

Budgets and delays use Trio's clock: PRIME call-again is polled every 10 ms
within 30 s, ACTIVATE within 10 s (v2/v3), so tests run them on a mock
clock.
"""

from __future__ import annotations

import collections
import errno
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs
import trio

from lfafs.driver.abi import ABIS, Abi
from lfafs.driver.kstrtobool import kstrtobool
from lfafs.driver.rwsem import RwSem
from lfafs.smccc import SMC_UNK, Fid, LfaStatus, s64

PRIME_BUDGET = 30.0  # LFA_PRIME_BUDGET_MS
ACTIVATE_BUDGET = 10.0  # LFA_ACTIVATE_BUDGET_MS
RETRY_DELAY = 0.010  # LFA_PRIME_DELAY_MS, and the ACTIVATE retry
REMOVAL_DELAY = 0.001  # the queued work that removes vanished images runs "shortly after"
MAX_WRITE = 4096
STALE = -1
STALE_FLAGS = 0b1000  # rescan marks every image capable 0, pending 0, rendezvous 0

# lfa_fw.c's table of known images (v1 onward).
KNOWN_NAMES = {
    "47d4086d-4cfe-9846-9b95-2950cbbd5a00": "TF-A BL31 runtime",
    "d6d0eea7-fcea-d54b-9782-9934f234b6e4": "BL33 non-secure payload",
    "6c0762a6-12f2-4b56-92cb-ba8f633606d9": "TF-RMM",
}

ATTRIBUTES = {  # name -> mode
    "activate": 0o200, "cancel": 0o200,
    "force_cpu_rendezvous": 0o644, "auto_activate": 0o644,
    "name": 0o444, "activation_capable": 0o444, "activation_pending": 0o444, "may_reset_cpu": 0o444,
    "cpu_rendezvous": 0o444, "current_version": 0o444, "pending_version": 0o444,
}


class Conduit(Protocol):
    """How the driver reaches firmware: an SMC on one CPU, and which CPUs are online."""

    async def smc(self, cpu: int, fid: int, x1: int = 0, x2: int = 0, x3: int = 0,
                  x4: int = 0) -> Sequence[int]: ...

    def online_cpus(self) -> list[int]: ...


class KernelLog:
    """The driver's printk lines, as dmesg shows them."""

    def __init__(self, capacity: int = 1024) -> None:
        self.lines: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._t0: float | None = None
        self.changed = trio.Event()

    def _add(self, level: str, text: str) -> None:
        try:
            now = trio.current_time()
        except RuntimeError:
            now = 0.0
        if self._t0 is None:  # times count from the driver's first line, as dmesg counts from boot
            self._t0 = now
        self.lines.append((now - self._t0, level, f"Arm LFA: {text}"))
        self._seq += 1
        self.changed.set()
        self.changed = trio.Event()

    def info(self, text: str) -> None:
        self._add("info", text)

    def warn(self, text: str) -> None:
        self._add("warn", text)

    def err(self, text: str) -> None:
        self._add("err", text)

    def text(self) -> list[str]:
        return [f"[{t:12.6f}] {msg}" for t, _, msg in self.lines]


def lfa_error_string(status: int) -> str:
    """v2+: out-of-range values read as LFA_DEVICE_ERROR, positive ones as LFA_SUCCESS."""
    if status >= 0:
        return "LFA_SUCCESS"
    try:
        return f"LFA_{LfaStatus(status).name}"
    except ValueError:
        return "LFA_DEVICE_ERROR"


def guid_of(x1: int, x2: int) -> str:
    """%pUb of {x1, x2}: the 16 bytes in memory order, lowercase."""
    return str(uuid.UUID(bytes=x1.to_bytes(8, "little") + x2.to_bytes(8, "little")))


def format_version(v: int) -> bytes:
    return b"%u.%u\n" % ((v >> 32) & 0xFFFF_FFFF, v & 0xFFFF_FFFF)


class DriverError(OSError):
    """An errno the file interface reports for an attribute access."""

    def __init__(self, err: int) -> None:
        super().__init__(err, errno.errorcode.get(err, str(err)))


@attrs.define
class Image:
    """struct fw_image: one directory under /sys/firmware/lfa."""

    guid: str
    name: str
    seq_id: int
    flags: int
    current_version: int
    pending_version: int
    force_cpu_rendezvous: bool = True
    auto_activate: bool = False

    @property
    def capable(self) -> bool:
        return bool(self.flags & 1)

    @property
    def pending(self) -> bool:
        return bool(self.flags & 2)

    @property
    def may_reset_cpu(self) -> bool:
        return bool(self.flags & 4)

    @property
    def cpu_rendezvous(self) -> bool:
        return not self.flags & 8  # the file is the inverse of cpu_rendezvous_optional


class LfaDriver:
    """The driver, bound to one conduit; ``present`` is False when probe found no LFA."""

    def __init__(self, conduit: Conduit, *, abi: str = "v3", klog: KernelLog | None = None) -> None:
        if abi not in ABIS:
            raise ValueError(f"unknown kernel ABI {abi!r}; choose one of {', '.join(ABIS)}")
        self.conduit = conduit
        self.abi: Abi = ABIS[abi]
        self.klog = klog or KernelLog()
        self.images: dict[str, Image] = {}  # in creation order, keyed by GUID
        self.present = False
        self.smc_lock = RwSem()
        self._nursery: trio.Nursery | None = None
        self.changed = trio.Event()  # set whenever the directory list changes

    # -- SMC helpers -------------------------------------------------------------------

    def _cpu(self) -> int:
        cpus = self.conduit.online_cpus()
        return cpus[0] if cpus else 0

    async def _smc(self, fid: int, *args: int) -> Sequence[int]:
        return await self.conduit.smc(self._cpu(), fid, *args)

    # -- probe and scan ------------------------------------------------------------------

    async def probe(self, nursery: trio.Nursery) -> bool:
        """Module init: LFA_VERSION, then the first scan. No LFA, or no component: no directory."""
        self._nursery = nursery
        r = await self._smc(Fid.LFA_VERSION)
        if r[0] == SMC_UNK or s64(r[0]) < 0:
            return False
        self.klog.info(f"Live Firmware Activation: detected v{(r[0] >> 16) & 0x7FFF}.{r[0] & 0xFFFF}")
        if await self.update_fw_images_tree() != 0:
            return False
        self.present = True
        return True

    def _name_for(self, guid: str) -> str:
        if guid in KNOWN_NAMES:
            return KNOWN_NAMES[guid]
        return guid if self.abi.unknown_name == "guid" else self.abi.unknown_name

    async def update_fw_images_tree(self) -> int:
        """Rescan: GET_INFO, mark all stale, refresh or create by GUID, remove the rest later."""
        r = await self._smc(Fid.LFA_GET_INFO, 0)
        if s64(r[0]) != 0 or r[1] == 0:
            self.klog.err("Error getting number of LFA components")
            return -errno.ENODEV
        for img in self.images.values():
            img.seq_id, img.flags, img.current_version, img.pending_version = STALE, STALE_FLAGS, 0, 0
        added = False
        for seq in range(r[1]):
            inv = await self._smc(Fid.LFA_GET_INVENTORY, seq)
            if s64(inv[0]) != 0:
                continue  # a seq id that fails leaves no directory, silently
            guid = guid_of(inv[1], inv[2])
            img = self.images.get(guid)
            if img is None:
                self.images[guid] = Image(guid=guid, name=self._name_for(guid), seq_id=seq, flags=inv[3],
                                          current_version=inv[4], pending_version=inv[5])
                added = True
            else:
                img.seq_id, img.flags, img.current_version, img.pending_version = seq, inv[3], inv[4], inv[5]
        if added:
            self._changed()
        if any(img.seq_id == STALE for img in self.images.values()):
            if self._nursery is not None:
                self._nursery.start_soon(self._remove_invalid_fw_images)
        return 0

    async def _remove_invalid_fw_images(self) -> None:
        # A sysfs file cannot remove itself from its own store(): the kernel queues this work.
        await trio.sleep(REMOVAL_DELAY)
        stale = [g for g, img in self.images.items() if img.seq_id == STALE]
        for g in stale:
            del self.images[g]
        if stale:
            self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- attributes -------------------------------------------------------------------------

    def files(self) -> tuple[str, ...]:
        return self.abi.files

    def image(self, guid: str) -> Image:
        img = self.images.get(guid)
        if img is None:
            raise DriverError(errno.ENOENT)
        return img

    FRESH = ("activation_pending", "pending_version")  # shown after a GET_INVENTORY

    def read_cached(self, guid: str, attr: str) -> bytes | None:
        """An attribute's text from the driver's cache, or None if showing it asks firmware.

        Safe to call from any thread: it reads one image's fields, no SMC.
        """
        img = self.image(guid)
        if attr not in self.abi.files or ATTRIBUTES[attr] & 0o444 == 0:
            raise DriverError(errno.EACCES)
        if attr in self.FRESH:
            return None
        if attr == "name":
            return img.name.encode() + b"\n"
        if attr == "activation_capable":
            return b"%d\n" % img.capable
        if attr == "may_reset_cpu":
            return b"%d\n" % img.may_reset_cpu
        if attr == "cpu_rendezvous":
            return b"%d\n" % img.cpu_rendezvous
        if attr == "force_cpu_rendezvous":
            return b"%d\n" % img.force_cpu_rendezvous
        if attr == "auto_activate":
            return b"%d\n" % img.auto_activate
        if attr == "current_version":
            return format_version(img.current_version)
        raise DriverError(errno.EACCES)

    async def read(self, guid: str, attr: str) -> bytes:
        """show(): cached values at once; activation_pending and pending_version ask firmware."""
        cached = self.read_cached(guid, attr)
        if cached is not None:
            return cached
        img = self.image(guid)
        if attr == "activation_pending":
            async with self._read_lock():
                inv = await self._smc(Fid.LFA_GET_INVENTORY, img.seq_id & 0xFFFF_FFFF)
            if s64(inv[0]) == 0:
                img.flags = (img.flags & ~2) | (inv[3] & 2)
            return b"%d\n" % img.pending  # on failure: the cached value, no error
        if attr == "pending_version":
            async with self._read_lock():
                inv = await self._smc(Fid.LFA_GET_INVENTORY, img.seq_id & 0xFFFF_FFFF)
            if not self.abi.pending_version_na:
                return format_version(inv[5] if s64(inv[0]) == 0 else img.pending_version)
            if s64(inv[0]) == 0 and inv[5] != 0 and img.pending:
                img.pending_version = inv[5]
                return format_version(inv[5])
            return b"N/A\n"
        raise DriverError(errno.EACCES)

    def _read_lock(self):
        return self.smc_lock.read() if self.abi.rwsem else _null()

    def _write_lock(self):
        return self.smc_lock.write() if self.abi.rwsem else _null()

    async def write(self, guid: str, attr: str, data: bytes) -> int:
        img = self.image(guid)
        if attr not in self.abi.files or ATTRIBUTES[attr] & 0o222 == 0:
            raise DriverError(errno.EACCES)
        if len(data) > MAX_WRITE:
            raise DriverError(errno.E2BIG)
        if not data:
            return 0  # kernfs never calls store() for an empty write
        if attr in ("force_cpu_rendezvous", "auto_activate"):
            try:
                value = kstrtobool(data)
            except ValueError:
                raise DriverError(errno.EINVAL) from None
            setattr(img, attr, value)
            return len(data)
        if attr == "cancel":
            status = await self.lfa_cancel(img)
            if status != 0:
                raise DriverError(errno.EINVAL)
            return len(data)
        # activate: the content is never parsed
        err = await self.activate(img)
        if err:
            raise DriverError(err)
        return len(data)

    # -- actions --------------------------------------------------------------------------------

    def _label(self, img: Image) -> str:
        return img.name if img.name and img.name != "(unknown)" else img.guid

    async def lfa_cancel(self, img: Image) -> int:
        async with self._read_lock():
            r = await self._smc(Fid.LFA_CANCEL, img.seq_id & 0xFFFF_FFFF)
        status = s64(r[0])
        if status == 0:
            self.klog.info(f"Activation cancelled for image {self._label(img)}")
        else:
            self.klog.err(f"Activation not cancelled for image {self._label(img)}: {lfa_error_string(status)}")
        return status

    async def prime(self, img: Image) -> int:
        """PRIME, polling call-again every 10 ms (v2/v3: within 30 s, then cancel)."""
        deadline = trio.current_time() + PRIME_BUDGET
        while True:
            async with self._read_lock():
                r = await self._smc(Fid.LFA_PRIME, img.seq_id & 0xFFFF_FFFF)
            status = s64(r[0])
            if status < 0:
                self.klog.err(f"LFA_PRIME for image {self._label(img)} failed: {lfa_error_string(status)}")
                return status
            if not r[1] & 1:
                return 0
            if self.abi.budgets and trio.current_time() >= deadline:
                self.klog.err(f"LFA_PRIME for image {self._label(img)} timed out")
                cancel = await self.lfa_cancel(img)
                return -errno.ETIMEDOUT if cancel == 0 else cancel
            await trio.sleep(RETRY_DELAY)

    async def _activate_on_cpus(self, img: Image, skip: bool) -> tuple[int, int]:
        """One ACTIVATE attempt: on one CPU, or on every online CPU at once (stop_machine)."""
        seq = img.seq_id & 0xFFFF_FFFF
        if skip:
            r = await self._smc(Fid.LFA_ACTIVATE, seq, 1, 0, 0)
            return s64(r[0]), r[1] & 1
        results: dict[int, Sequence[int]] = {}

        async def on(cpu: int) -> None:
            results[cpu] = await self.conduit.smc(cpu, Fid.LFA_ACTIVATE, seq, 0, 0, 0)

        async with trio.open_nursery() as nursery:
            for cpu in self.conduit.online_cpus():
                nursery.start_soon(on, cpu)
        first = results[min(results)]
        worst = min(s64(r[0]) for r in results.values())  # any CPU's failure fails the call
        return (worst if worst < 0 else s64(first[0])), first[1] & 1

    async def activate_fw_image(self, img: Image) -> int:
        skip = not (img.force_cpu_rendezvous or img.cpu_rendezvous)
        deadline = trio.current_time() + ACTIVATE_BUDGET
        while True:
            retry = False
            async with self._write_lock():
                status, call_again = await self._activate_on_cpus(img, skip)
                if status == 0 and not call_again:
                    await self.update_fw_images_tree()  # v3: the rescan is under the writer lock
                    return 0
                if (status == 0 and call_again) or (status == LfaStatus.BUSY and self.abi.activate_busy_retry):
                    retry = True
            if not retry:
                self.klog.err(f"LFA_ACTIVATE for image {self._label(img)} failed: {lfa_error_string(status)}")
                return status
            if self.abi.budgets and trio.current_time() >= deadline:
                self.klog.err(f"LFA_ACTIVATE for image {self._label(img)} failed: {lfa_error_string(-32)}")
                return -32  # LFA_TIMED_OUT
            await trio.sleep(RETRY_DELAY)

    async def activate(self, img: Image) -> int:
        """activate_store: 0 on success, else the errno the write fails with."""
        if img.may_reset_cpu:
            self.klog.err("CPU reset not supported by kernel driver")
            return errno.ECANCELED
        if await self.prime(img) != 0:
            return errno.ECANCELED  # no CANCEL after a PRIME error
        status = await self.activate_fw_image(img)
        if status != 0:
            cancel = await self.lfa_cancel(img)
            if self.abi.activate_failure_is_cancel_result:
                return 0 if cancel == 0 else errno.ECANCELED  # v1 reports success when the cancel succeeds
            return errno.ECANCELED
        self.klog.info(f"{self._label(img)}: successfully activated")
        return 0

    async def notify(self) -> None:
        """A platform notification (ACPI ARML0003 Notify or the arm,lfa interrupt)."""
        if "auto_activate" not in self.abi.files:
            return  # v1 has no notification support
        while True:
            img = await self._next_auto_image()
            if img is None:
                return
            err = await self.activate(img)
            if err:
                self.klog.warn(f"notified image activation failed: {-err}")
                return
            self.klog.info(f"{self._label(img)}: automatic activation succeeded")

    async def _next_auto_image(self) -> Image | None:
        for img in list(self.images.values()):
            if img.seq_id == STALE or not img.capable or not img.auto_activate:
                continue
            async with self._read_lock():
                inv = await self._smc(Fid.LFA_GET_INVENTORY, img.seq_id & 0xFFFF_FFFF)
            if s64(inv[0]) == 0:
                img.flags = (img.flags & ~2) | (inv[3] & 2)
            if img.pending:
                return img
        return None


class _null:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc) -> None:
        return None


def platform_conduit(smc: Callable[..., Awaitable[Sequence[int]]], online: Callable[[], list[int]]) -> Conduit:
    """Adapt an SMC function (cpu=, keyword) and an online-CPU list into a Conduit."""

    class _Conduit:
        async def smc(self, cpu: int, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0):
            return await smc(fid, x1, x2, x3, x4, cpu=cpu)

        def online_cpus(self) -> list[int]:
            return online()

    return _Conduit()
