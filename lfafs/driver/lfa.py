"""The lfa_fw.c model: probe, the image list, attributes, activate, cancel and notifications.

Target: upstream v3, with v1, v2 and NVIDIA's trees selectable (lfafs/driver/abi.py;
docs/sysfs-abi.md). Every firmware interaction is an SMC through the conduit the
daemon hands in; the model never sees the platform. Function names follow
lfa_fw.c, so a reader can hold the two side by side; for the same reason
the module is kept together, as the driver is one C file (struct fw_image
and the value formats live in lfafs/driver/image.py).

Budgets and delays use Trio's clock: PRIME call-again is polled every 10 ms
within 30 s, ACTIVATE within 10 s (v2/v3), so tests run them on a mock clock.
"""

from __future__ import annotations

import collections
import errno
import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from lfafs.driver.abi import ABIS, Abi
from lfafs.driver.image import (
    ATTRIBUTES,
    KNOWN_NAMES,
    STALE,
    STALE_FLAGS,
    DriverError,
    Image,
    format_version,
    guid_of,
    lfa_error_string,
)
from lfafs.driver.klog import KernelLog
from lfafs.driver.kstrtobool import kstrtobool
from lfafs.driver.rwsem import RwSem
from lfafs.smccc import LFA_CALL_AGAIN, LFA_TIMED_OUT, SMC_UNK, ActivateFlags, Fid, InventoryFlags, LfaStatus, s64, u64

RETRY_DELAY = 0.010  # LFA_PRIME_DELAY_MS and LFA_ACTIVATE_DELAY_MS (NVIDIA's v1 polls every 10 us; see docs)
REMOVAL_DELAY = 0.001  # the queued work that removes vanished images runs "shortly after"
PAGE_SIZE = 4096  # what kernfs hands store() at most (fs/kernfs/file.c, kernfs_fop_write_iter())

# The line lfa_smccc_probe() logs for the notification source it registered
# (v3 4/8 and 6/8, 20260706134455.132091-5- and -7-; NV-Kernels lfa_fw.c @08ba8802aa8e).
NOTIFICATION_SOURCES = {
    "acpi": "registered LFA ACPI notification",  # the ARML0003 device's ACPI_DEVICE_NOTIFY handler
    "dt": "registered LFA DT notification interrupt",  # the "arm,lfa" node's interrupt 0
}
# The device NVIDIA's tree sends its uevent on: the SMCCC bus device "arm-smccc-lfa" with the
# first id the bus hands out (NV-Kernels drivers/firmware/smccc/bus.c, arm_smccc_device_register()).
SMCCC_DEVPATH = "/devices/arm-smccc-lfa-1"
SMCCC_SUBSYSTEM = "arm_smccc"


class HeldCpu(Protocol):
    """A CPU the driver keeps (stop_machine's stopper): SMCs on it run at once."""

    async def smc(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0) -> Sequence[int]: ...


class Conduit(Protocol):
    """How the driver reaches firmware: an SMC on one CPU, which CPUs are online, and keeping a CPU."""

    async def smc(self, cpu: int, fid: int, x1: int = 0, x2: int = 0, x3: int = 0,
                  x4: int = 0) -> Sequence[int]: ...

    def online_cpus(self) -> list[int]: ...

    def hold(self, cpu: int) -> AbstractAsyncContextManager[HeldCpu]: ...


class LfaDriver:
    """The driver, bound to one conduit; ``present`` is False when probe found no LFA.

    ``notification`` is the source the platform offers: "acpi" (an ARML0003
    device), "dt" (an "arm,lfa" node with an interrupt) or None ("none"). Probe
    registers a handler for it in the builds that have notifications, and
    ``notify()`` runs that handler.
    """

    def __init__(self, conduit: Conduit, *, abi: str = "v3", klog: KernelLog | None = None,
                 notification: str | None = None) -> None:
        if abi not in ABIS:
            raise ValueError(f"unknown kernel ABI {abi!r}; choose one of {', '.join(ABIS)}")
        if notification == "none":  # the platform profile's spelling of "no source"
            notification = None
        if notification is not None and notification not in NOTIFICATION_SOURCES:
            raise ValueError(f"unknown notification source {notification!r}; choose one of "
                             f"{', '.join(NOTIFICATION_SOURCES)}, or None")
        self.conduit = conduit
        self.abi: Abi = ABIS[abi]
        self.klog = klog or KernelLog()
        self.notification = notification
        self.handler_registered = False  # probe installed the ACPI notify handler or requested the IRQ
        self.images: dict[str, Image] = {}  # in creation order (the kset list), keyed by GUID
        self.present = False
        self.smc_lock = RwSem()
        self.activation_lock = trio.Lock()  # NVIDIA's lfa_activation_lock
        self._uevent_anchor = False  # NVIDIA's lfa_smccc_dev: set once probe has finished
        self._removal_queued = False  # queue_work() of a work item already pending is a no-op
        self._nursery: trio.Nursery | None = None
        self._cpus_in_smc: collections.Counter[int] = collections.Counter()
        self.changed = trio.Event()  # set whenever the directory list changes

    # -- SMC helpers -------------------------------------------------------------------

    async def _smc(self, fid: int, *args: int) -> Sequence[int]:
        """An SMC from the calling task, on the first online CPU not already in one of ours.

        A second writer runs on another CPU in Linux, so its SMC reaches the agent
        while the first is still in EL3 (and may get LFA_BUSY from the agent's lock).
        """
        cpus = self.conduit.online_cpus() or [0]
        cpu = next((c for c in cpus if not self._cpus_in_smc[c]), cpus[0])
        self._cpus_in_smc[cpu] += 1
        try:
            return await self.conduit.smc(cpu, fid, *args)
        finally:
            self._cpus_in_smc[cpu] -= 1

    def _read_lock(self):
        return self.smc_lock.read() if self.abi.rwsem else _null()

    def _write_lock(self):
        return self.smc_lock.write() if self.abi.rwsem else _null()

    def _log_name(self, img: Image, where: str = "log") -> str:
        return img.get_image_name() if where in self.abi.get_image_name_for else img.image_name

    # -- probe and scan ------------------------------------------------------------------

    async def probe(self, nursery: trio.Nursery) -> bool:
        """lfa_smccc_probe(): LFA_VERSION, the first scan, then the notification source.

        No LFA, or no component: no directory, and no handler.
        """
        self._nursery = nursery
        r = await self._smc(Fid.LFA_VERSION)
        if r[0] == SMC_UNK or s64(r[0]) < 0:
            return False
        self.klog.info(f"Live Firmware Activation: detected v{(r[0] >> 16) & 0x7FFF}.{r[0] & 0xFFFF}")
        if await self.update_fw_images_tree() != 0:
            return False
        self.present = True
        if self.abi.notifications and self.notification is not None:
            self.handler_registered = True
            self.klog.info(NOTIFICATION_SOURCES[self.notification])
        if self.abi.inventory_uevent:
            self._uevent_anchor = True
            self._queue_removal()  # the work announces the settled inventory
        return True

    def _name_for(self, guid: str) -> str:
        if self.abi.name_lookup_keeps_last:
            last_guid, last_name = list(KNOWN_NAMES.items())[-1]
            return last_name if guid == last_guid else guid
        return KNOWN_NAMES.get(guid, self.abi.unknown_image_name)

    async def update_fw_images_tree(self) -> int:
        """Rescan: GET_INFO, mark all stale, refresh or create by GUID, remove the rest later."""
        r = await self._smc(Fid.LFA_GET_INFO, 0)
        if s64(r[0]) != 0 or s64(r[1]) <= 0:
            self.klog.err("Error getting number of LFA components")
            return -errno.ENODEV
        for img in self.images.values():
            img.seq_id, img.flags, img.current_version, img.pending_version = STALE, STALE_FLAGS, 0, 0
        added = False
        for seq in range(r[1]):
            inv = await self._smc(Fid.LFA_GET_INVENTORY, seq)
            if s64(inv[0]) != 0:
                continue  # a seq id that fails leaves no directory, silently
            guid, flags = guid_of(inv[1], inv[2]), InventoryFlags(inv[3] & 0xF)
            img = self.images.get(guid)
            if img is None:
                self.images[guid] = Image(guid=guid, image_name=self._name_for(guid), seq_id=seq, flags=flags,
                                          current_version=inv[4], pending_version=inv[5])
                added = True
            else:
                img.seq_id, img.flags, img.current_version, img.pending_version = seq, flags, inv[4], inv[5]
        if added:
            self._changed()
        if self.present:
            self._queue_removal()
        return 0

    def _queue_removal(self) -> None:
        if self._nursery is not None and not self._removal_queued:
            self._removal_queued = True
            self._nursery.start_soon(self._remove_invalid_fw_images)

    async def _remove_invalid_fw_images(self) -> None:
        # A sysfs file cannot remove itself from its own store(): the kernel queues this work.
        await trio.sleep(REMOVAL_DELAY)
        self._removal_queued = False
        async with self.activation_lock if self.abi.activation_mutex else _null():
            stale = [g for g, img in self.images.items() if img.seq_id == STALE]
            for g in stale:
                del self.images[g]
            if stale:
                self._changed()
            if self.abi.inventory_uevent and self._uevent_anchor:
                # NV-Kernels lfa_fw.c, lfa_notify_inventory_update(): udev learns of the new inventory.
                self.klog.uevent("change", SMCCC_DEVPATH, SMCCC_SUBSYSTEM)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- attributes -------------------------------------------------------------------------

    def files(self) -> tuple[str, ...]:
        return self.abi.files

    def image(self, guid: str) -> Image:
        img = self.images.get(guid)
        if img is None:  # the node was removed: kernfs_get_active() fails (fs/kernfs/file.c)
            raise DriverError(errno.ENODEV)
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
            return self._log_name(img, "name").encode() + b"\n"
        if attr == "current_version":
            return format_version(img.current_version)
        value = {"activation_capable": img.capable, "may_reset_cpu": img.may_reset_cpu,
                 "cpu_rendezvous": img.cpu_rendezvous, "force_cpu_rendezvous": img.force_cpu_rendezvous,
                 "auto_activate": img.auto_activate}[attr]
        return b"%d\n" % value

    async def read(self, guid: str, attr: str) -> bytes:
        """show(): cached values at once; activation_pending and pending_version ask firmware."""
        cached = self.read_cached(guid, attr)
        if cached is not None:
            return cached
        img = self.image(guid)
        async with self._read_lock():
            if self.abi.stale_enoent and img.seq_id < 0:  # NV-Kernels: no SMC for a stale image
                if attr == "activation_pending":
                    raise DriverError(errno.ENOENT)
                return b"N/A\n"
            # reg.a1 = fw_seq_id: an int widened to 64 bits, so a stale -1 goes out as all ones.
            inv = await self._smc(Fid.LFA_GET_INVENTORY, u64(img.seq_id))
        ok = s64(inv[0]) == 0
        if attr == "activation_pending":
            if ok:
                img.set_pending(inv[3])
            return b"%d\n" % img.pending  # on failure: the cached value, no error
        if not self.abi.pending_version_na:
            return format_version(inv[5] if ok else img.pending_version)
        if ok and inv[5] != 0 and img.pending:
            img.pending_version = inv[5]
            return format_version(inv[5])
        return b"N/A\n"

    async def write(self, guid: str, attr: str, data: bytes) -> int:
        """store(): ``data`` is what kernfs passes, at most PAGE_SIZE bytes; returns the count."""
        img = self.image(guid)
        if attr not in self.abi.files or ATTRIBUTES[attr] & 0o222 == 0:
            raise DriverError(errno.EACCES)
        data = data[:PAGE_SIZE]
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
            ret = await self.lfa_cancel(img)
            if ret != 0:
                raise DriverError(-ret)
            return len(data)
        err = await self.activate_store(img)  # the content is never parsed
        if err:
            raise DriverError(err)
        return len(data)

    # -- actions --------------------------------------------------------------------------------

    async def lfa_cancel(self, img: Image, seq_id: int | None = None) -> int:
        """LFA_CANCEL: 0, or -EINVAL for any status but SUCCESS (NVIDIA: -ENOENT for a stale image).

        NVIDIA's tree cancels the sequence id its PRIME used (``seq_id``); upstream
        always uses the image's current one.
        """
        async with self._read_lock():
            pinned = self.abi.pins_seq_id and seq_id is not None and seq_id >= 0
            seq = seq_id if pinned else img.seq_id
            if self.abi.stale_enoent and seq < 0:
                return -errno.ENOENT
            r = await self._smc(Fid.LFA_CANCEL, u64(seq))
        status = s64(r[0])
        name = self._log_name(img, "cancel_log")
        if status == 0:
            self.klog.info(f"Activation cancelled for image {name}")
            return 0
        self.klog.err(f"Activation not cancelled for image {name}: {lfa_error_string(status)}")
        return -errno.EINVAL

    async def prime_fw_image(self, img: Image) -> tuple[int, int]:
        """PRIME, polling call-again every 10 ms within the budget: (0 or a negative return, seq id used)."""
        abi = self.abi
        budget = abi.prime_budget
        deadline = trio.current_time() + budget if budget is not None else math.inf
        started = False  # NVIDIA: a PRIME call has succeeded, so the agent holds a primed image
        seq = img.seq_id
        if not abi.reset_check_in_loop and img.may_reset_cpu:
            self.klog.err("CPU reset not supported by kernel driver")
            return -errno.EINVAL, seq
        while True:
            async with self._read_lock():
                stale = img.seq_id == STALE or (started and img.seq_id != seq)
                if abi.reset_check_in_loop and not stale and img.may_reset_cpu:
                    self.klog.err("CPU reset not supported by kernel driver")
                    return -errno.EINVAL, seq
                if abi.stale_prime_errno is not None and stale:
                    if abi.stale_prime_log is not None:
                        self.klog.err(abi.stale_prime_log)
                    ret = -abi.stale_prime_errno
                else:
                    ret = None
                    if not started:
                        seq = img.seq_id
                    r = await self._smc(Fid.LFA_PRIME, u64(seq))
            if ret is not None:  # the stale image's abort path, outside the lock
                return (await self._cancel_after_prime(img, seq, ret) if started else ret), seq
            status = s64(r[0])
            if status < 0:
                self.klog.err(f"LFA_PRIME for image {self._log_name(img)} failed: {lfa_error_string(status)}")
                if started and abi.prime_error_cancels_once_started:
                    return await self._cancel_after_prime(img, seq, status), seq
                return status, seq  # upstream: no CANCEL after a PRIME error
            started = abi.prime_error_cancels_once_started and status == 0
            if not r[1] & LFA_CALL_AGAIN:
                return 0, seq
            if trio.current_time() >= deadline:
                self.klog.err(f"LFA_PRIME for image {self._log_name(img)} timed out")  # no "\n" in the format
                cancel = await self.lfa_cancel(img, seq)
                return (cancel if cancel else -errno.ETIMEDOUT), seq
            await trio.sleep(RETRY_DELAY)

    async def _cancel_after_prime(self, img: Image, seq: int, ret: int) -> int:
        cancel = await self.lfa_cancel(img, seq)
        return cancel or ret  # `cancel_ret ?: ret`

    async def _activate_on_cpus(self, img: Image, seq: int, skip: bool) -> tuple[int, int]:
        """One ACTIVATE attempt: on one CPU, or on every online CPU at once (stop_machine)."""
        if skip:
            r = await self._smc(Fid.LFA_ACTIVATE, u64(seq), ActivateFlags.SKIP_CPU_RENDEZVOUS, 0, 0)
            return s64(r[0]), r[1] & LFA_CALL_AGAIN
        results: dict[int, Sequence[int]] = {}
        cpus = self.conduit.online_cpus()
        # kernel/stop_machine.c multi_cpu_stop(): every CPU's stopper takes its CPU, all of them
        # step through the states together, and none lets go before all have run the callback; so
        # nothing else (an EFI runtime call) runs on any CPU from the first ACTIVATE to the last.
        arrived, finished = _Barrier(len(cpus)), _Barrier(len(cpus))

        async def on(cpu: int) -> None:
            async with self.conduit.hold(cpu) as held:
                await arrived.wait()
                results[cpu] = await held.smc(Fid.LFA_ACTIVATE, u64(seq), 0, 0, 0)
                await finished.wait()

        async with trio.open_nursery() as nursery:
            for cpu in cpus:
                nursery.start_soon(on, cpu)
        first = results[min(results)]
        worst = min(s64(r[0]) for r in results.values())  # any CPU's failure fails the call
        return (worst if worst < 0 else s64(first[0])), first[1] & LFA_CALL_AGAIN

    async def activate_fw_image(self, img: Image, seq: int) -> int:
        """ACTIVATE attempts under the writer lock, then the rescan; on failure CANCEL, then the log line."""
        abi = self.abi
        budget = abi.activate_budget
        deadline = trio.current_time() + budget if budget is not None else math.inf
        while True:
            async with self._write_lock():
                if abi.pins_seq_id and img.seq_id != seq:  # NVIDIA: the image was rescanned under us
                    ret = -errno.ENOENT
                else:
                    ret = None
                    seq = seq if abi.pins_seq_id else img.seq_id  # upstream reads fw_seq_id at each attempt
                    skip = not (img.force_cpu_rendezvous or img.cpu_rendezvous)
                    status, call_again = await self._activate_on_cpus(img, seq, skip)
                    if status == 0 and not call_again:
                        await self.update_fw_images_tree()  # v3: the rescan is under the writer lock
                        return 0
            if ret is not None:
                return await self._cancel_after_prime(img, seq, ret)
            retry = (status == 0 and call_again) or (status == LfaStatus.BUSY and abi.activate_busy_retry)
            if retry and trio.current_time() < deadline:
                await trio.sleep(RETRY_DELAY)
                continue
            ret = LFA_TIMED_OUT if retry else status
            if abi.activate_failure_is_cancel_result:
                # v1 logs from inside the stop_machine callback, then returns lfa_cancel()'s result.
                self.klog.err(f"LFA_ACTIVATE for image {self._log_name(img)} failed: {lfa_error_string(ret)}")
                return await self.lfa_cancel(img, seq)
            # v2+: lfa_cancel() runs first, so its line precedes the failure line
            # (v3 3/8, 20260706134455.132091-4-, activate_fw_image(); NV-Kernels @08ba8802aa8e).
            await self.lfa_cancel(img, seq)
            self.klog.err(f"LFA_ACTIVATE for image {self._log_name(img)} failed: {lfa_error_string(ret)}")
            return ret

    async def _prime_and_activate(self, img: Image) -> int:
        ret, seq = await self.prime_fw_image(img)
        if ret == 0:
            ret = await self.activate_fw_image(img, seq)
        return ret

    async def activate_store(self, img: Image) -> int:
        """A write to `activate`: 0 on success, else the errno the write fails with."""
        if self.abi.activation_mutex:
            try:
                self.activation_lock.acquire_nowait()  # mutex_trylock(&lfa_activation_lock)
            except trio.WouldBlock:
                return errno.EBUSY
        try:
            ret = await self._prime_and_activate(img)
        finally:
            if self.abi.activation_mutex:
                self.activation_lock.release()
        if ret:
            return errno.ECANCELED
        self.klog.info(self.abi.activated_log.format(name=self._log_name(img)))
        return 0

    async def notify(self) -> bool:
        """The registered notification handler (lfa_acpi_notify_handler() or the IRQ thread).

        Activates, one at a time, each image that is capable, pending and
        auto_activate, and stops at the first failure, which it logs with the
        raw return value. False if probe registered no handler: a platform
        without a notification source cannot run it.
        """
        if not self.handler_registered:
            return False
        while (ret := await self.activate_pending_image()) == 0:
            pass
        if ret != -errno.ENOENT:
            self.klog.warn(f"notified image activation failed: {ret}")
        return True

    async def activate_pending_image(self) -> int:
        """One pass: activate the first live image that is capable, pending and auto_activate.

        The walk, in creation order, queries each image's pending state before
        it tests auto_activate, so a notification refreshes the cached flags
        even when nothing is activated (v3 4/8, -5-, activate_pending_image();
        5/8, -6-, adds the auto_activate test; NV-Kernels @08ba8802aa8e).
        -ENOENT when no image qualifies.
        """
        async with self.activation_lock if self.abi.activation_mutex else _null():
            found = None
            async with self._read_lock():
                for img in list(self.images.values()):
                    if img.seq_id == STALE:
                        continue
                    inv = await self._smc(Fid.LFA_GET_INVENTORY, u64(img.seq_id))
                    if s64(inv[0]) == 0:
                        img.set_pending(inv[3])
                    if img.capable and img.pending and img.auto_activate:
                        found = img
                        break
            if found is None:
                return -errno.ENOENT
            ret = await self._prime_and_activate(found)
            if ret == 0:
                self.klog.info(f"{self._log_name(found)}: automatic activation succeeded")
            return ret


class _null:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc) -> None:
        return None


class _Machine(Protocol):
    """What platform_conduit() needs of the machine (lfafs.platform.Platform)."""

    async def smc(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0, *,
                  cpu: int = 0) -> Sequence[int]: ...

    def online_cpus(self) -> list[int]: ...

    def hold_cpu(self, cpu: int) -> AbstractAsyncContextManager[HeldCpu]: ...


class _Barrier:
    """``n`` tasks wait until all ``n`` have arrived (multi_cpu_stop()'s ack_state() step)."""

    def __init__(self, n: int) -> None:
        self._left = n
        self._all = trio.Event()

    async def wait(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._all.set()
        await self._all.wait()


def platform_conduit(platform: _Machine, *, smc: Callable[..., Awaitable[Sequence[int]]] | None = None,
                     online: Callable[[], list[int]] | None = None) -> Conduit:
    """A Conduit over a platform: its ``smc`` (or a wrapper of it, keyword cpu=), its online CPUs
    (or ``online``), and its ``hold_cpu``. The driver never imports the platform: it is duck-typed."""
    smc = smc or platform.smc
    online = online or platform.online_cpus
    hold = platform.hold_cpu

    class _Conduit:
        async def smc(self, cpu: int, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0):
            return await smc(fid, x1, x2, x3, x4, cpu=cpu)

        def online_cpus(self) -> list[int]:
            return online()

        def hold(self, cpu: int) -> AbstractAsyncContextManager[HeldCpu]:
            return hold(cpu)

    return _Conduit()
