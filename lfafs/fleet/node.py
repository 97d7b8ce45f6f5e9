"""One emulated server of a fleet: its platform, the Linux driver model on it, its sysfs tree.

A node is what ``lfafs mount`` serves, without a process or a mount of its
own: the shard's Trio run owns its Platform, the driver reaches it only
through SMCs (lfafs.driver.lfa.platform_conduit), and lfafs.fs.SysfsOps
serves its tree under the shard's mount. The filesystem sees the driver
through ``DriverView``, which accounts every call that enters Trio to the
node: a node that goes down or resets cancels the calls in flight (their
writers get EIO, as a writer on a machine that lost power gets nothing),
and a write to ``activate`` is logged as an activation.

Power: ``power_off`` is the node going down (every file access then fails
with EHOSTDOWN); ``boot`` is a cold reset of the platform (RAM state lost,
flash kept: versions, staged images) and a new kernel, so a new driver
probes, as after a real reboot.
"""

from __future__ import annotations

import errno
import os
import uuid

import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import DriverError, platform_conduit
from lfafs.fleet.events import FAILED, RMM_FAILED, RMM_RECOVERED, STARTED, SUCCEEDED, EventLog
from lfafs.fleet.faults import Armed
from lfafs.fleet.roster import NodeSpec
from lfafs.fs import SysfsOps
from lfafs.platform import Platform, PlatformError
from lfafs.platform import images as _images
from lfafs.platform.profile import Profile
from lfafs.service.state import StateDir, StateError
from lfafs.smccc import Version

INCOMPATIBLE_GLOB_DATA = 0x0002_0000  # a glob_data major the running RMM (1.x) cannot hand over to


class NodeDown(RuntimeError):
    """A command that needs the node running, on a node that is down."""


def _v(version) -> str:
    return str(Version(*version)) if version is not None else None


class DriverView:
    """A node's driver as the filesystem sees it: the same driver, with each call that
    enters Trio accounted to the node (cancelled if it goes down, logged if it activates)."""

    def __init__(self, node: Node, driver: LfaDriver) -> None:
        self._node = node
        self._driver = driver
        self.images = driver.images  # the driver's own dict: it changes in place

    @property
    def present(self) -> bool:
        return self._driver.present

    def files(self) -> tuple[str, ...]:
        return self._driver.files()

    def read_cached(self, guid: str, attr: str) -> bytes | None:
        return self._driver.read_cached(guid, attr)

    async def read(self, guid: str, attr: str) -> bytes:
        return await self._node.enter(self._driver, self._driver.read, guid, attr)

    async def write(self, guid: str, attr: str, data: bytes) -> int:
        if attr == "activate":
            return await self._node.activate_from_sysfs(self._driver, guid, data)
        return await self._node.enter(self._driver, self._driver.write, guid, attr, data)

    def __getattr__(self, name: str):  # anything else the filesystem may ask of the driver
        return getattr(self._driver, name)


class Node:
    def __init__(self, spec: NodeSpec, profile: Profile, events: EventLog, *, state_dir: str | None = None) -> None:
        self.spec = spec
        self.id = spec.id
        self.events = events
        self.platform = Platform(profile, cpus=spec.cpus)
        self.up = False
        self.driver: LfaDriver | None = None
        self.ops: SysfsOps | None = None
        self.in_flight = 0
        self.last: dict | None = None  # the last activation's end event
        self._state = StateDir(os.path.join(state_dir, spec.id)) if state_dir else None
        self._scopes: set[trio.CancelScope] = set()
        self._busy = 0
        self._drained: trio.Event | None = None
        self._realm_ok = True

    # -- the flash ---------------------------------------------------------------------------

    def restore(self) -> bool:
        """Load the saved flash, if any (the node of a restarted shard): True if there was one."""
        if self._state is None:
            return False
        saved = self._state.load(self.platform)
        if saved is not None:
            self.platform.restore_flash(*saved)
        return saved is not None

    def keep_saving(self) -> None:
        """From now on, save the flash on every change (a node never changed is rebuilt from the description)."""
        if self._state is None:
            return
        state = self._state

        def save(p: Platform, kind: object = None) -> None:
            try:
                os.makedirs(state.images_dir, mode=0o700, exist_ok=True)
                state.save(p.flash_state(), p.staged_images())
            except (OSError, StateError) as e:  # the node runs on; the change is not on disk
                self.events.emit("flash.unsaved", self.id, reason=str(e))

        self.platform.flash_changed = save

    def image(self, component: str, version: str, kind: str) -> bytes | None:
        """The bytes to stage for an image of ``kind`` (None: let the platform sign a good one)."""
        if kind == "signed":
            return None
        c = self.platform.component(component)
        profile = self.platform.profile
        parsed = Version.parse(version)
        rmm = c.kind == "rmm"
        if kind == "bad-signature":
            return _images.build(uuid.UUID(c.guid), parsed, b"not-" + profile.auth_key, rmm=rmm)
        return _images.build(uuid.UUID(c.guid), parsed, profile.auth_key, rmm=True,
                             glob_data_version=INCOMPATIBLE_GLOB_DATA, compat=profile.rmm.compat_reserve_mem)

    def stage(self, component: str, version: str, kind: str = "signed") -> str:
        c = self.platform.component(component)
        self.platform.stage(c.index, Version.parse(version), self.image(component, version, kind))
        self.events.emit("update.staged", self.id, component=c.name, version=version, image=kind)
        return c.name

    def arm(self, fault: Armed) -> None:
        self.platform.inject(fault.component, fault.at, **fault.inject_args())
        self.events.emit("fault.armed", self.id, component=fault.component, at=fault.at, status=fault.status,
                         call_again=fault.call_again, latency=round(fault.latency, 6), rules=list(fault.rules))

    def clear_faults(self, component: str | None = None, at: str | None = None) -> None:
        self.platform.clear_faults(component, at)
        self.events.emit("faults.cleared", self.id, component=component, at=at)

    # -- power -------------------------------------------------------------------------------

    async def boot(self, nursery: trio.Nursery, token: trio.lowlevel.TrioToken, *, reason: str = "boot",
                   passthrough: str | None = None, cold: bool = True) -> None:
        """Power on: cold reset of the platform (unless it was just built), a new kernel, probe."""
        if self.up:
            return
        if cold:
            self.platform.reset()
        p = self.platform
        driver = LfaDriver(platform_conduit(p),
                           abi=self.spec.abi, notification=p.profile.notification)
        await driver.probe(nursery)
        self.driver = driver
        self.ops = SysfsOps(DriverView(self, driver), token, passthrough=passthrough)
        self.up = True
        self.events.emit("node.up", self.id, reason=reason)
        self._check_realm()

    async def power_off(self, *, reason: str = "ctl") -> None:
        """Down: new file accesses get EHOSTDOWN, calls in flight are cancelled and waited for."""
        if not self.up:
            return
        self.up = False
        for scope in list(self._scopes):
            scope.cancel()
        while self._busy:
            self._drained = trio.Event()
            await self._drained.wait()
        self.driver = None
        self.ops = None
        self.events.emit("node.down", self.id, reason=reason)

    async def reset(self, nursery: trio.Nursery, token: trio.lowlevel.TrioToken, **kw) -> None:
        await self.power_off(reason="reset")
        await self.boot(nursery, token, reason="reset", **kw)

    def power(self, cpu: int, on: bool) -> None:
        if not self.up:
            raise NodeDown(f"{self.id} is down")
        self.platform.power(cpu, on)
        self.events.emit("cpu.on" if on else "cpu.off", self.id, cpu=cpu)

    # -- what enters Trio from the filesystem ---------------------------------------------------

    async def enter(self, driver: LfaDriver, fn, *args):
        """Run a driver call for the filesystem; EHOSTDOWN if the node is down, EIO if it goes down meanwhile."""
        if not self.up or driver is not self.driver:
            raise DriverError(errno.EHOSTDOWN)
        self._busy += 1
        try:
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    return await fn(*args)
                finally:
                    self._scopes.discard(scope)
            raise DriverError(errno.EIO)
        finally:
            self._busy -= 1
            if not self._busy and self._drained is not None:
                self._drained.set()

    async def activate_from_sysfs(self, driver: LfaDriver, guid: str, data: bytes) -> int:
        try:
            c = self.platform.component(guid)
        except PlatformError:
            return await self.enter(driver, driver.write, guid, "activate", data)
        start = self.events.emit(STARTED, self.id, component=c.name, via="sysfs",
                                 from_version=_v(c.version), staged_version=_v(c.staged_version))
        before = len(self.platform.reports)
        self.in_flight += 1
        try:
            n = await self.enter(driver, driver.write, guid, "activate", data)
        except DriverError as e:
            self._finished(start, c.name, FAILED, before, errno=errno.errorcode.get(e.errno, str(e.errno)))
            raise
        finally:
            self.in_flight -= 1
        self._finished(start, c.name, SUCCEEDED, before, to_version=_v(c.version))
        return n

    async def notify(self) -> list[dict]:
        """The platform notification (ACPI ARML0003 / the arm,lfa interrupt): auto_activate's path."""
        if not self.up:
            raise NodeDown(f"{self.id} is down")
        driver = self.driver
        start = self.events.emit(STARTED, self.id, component=None, via="notify")
        before = len(self.platform.reports)
        self.in_flight += 1
        try:
            await self.enter(driver, driver.notify)
        except DriverError as e:
            self._finished(start, None, FAILED, before, errno=errno.errorcode.get(e.errno, str(e.errno)))
            raise
        finally:
            self.in_flight -= 1
        reports = [r.to_dict() for r in self.platform.reports[before:]]
        kind = FAILED if any(r["status"] != 0 for r in reports) else SUCCEEDED
        self._finished(start, None, kind, before, components=[r["component"] for r in reports])
        return reports

    def _finished(self, start: dict, component: str | None, kind: str, before: int, **fields) -> None:
        reports = self.platform.reports[before:]
        if reports:
            r = reports[-1]
            fields.update(status=r.status, modelled_s=round(r.total_s, 6))
            if r.reason:
                fields["reason"] = r.reason
        self.last = self.events.emit(kind, self.id, component=component, via=start["via"], started=start["t"],
                                     start_seq=start["seq"], **fields)
        self._check_realm()

    def _check_realm(self) -> None:
        ok = not self.platform.realm_disabled() or self.platform.rmmd is None
        if ok != self._realm_ok:
            self._realm_ok = ok
            if ok:
                self.events.emit(RMM_RECOVERED, self.id)
            else:
                self.events.emit(RMM_FAILED, self.id, reason=self.platform.rmmd.failure)

    # -- what `fleet status` shows --------------------------------------------------------------

    def status(self) -> dict:
        p = self.platform
        out = {"node": self.id, "cohort": self.spec.cohort, "state": "up" if self.up else "down",
               "abi": self.spec.abi, "profile": p.profile.name,
               "versions": {c.name: _v(c.version) for c in p.components},
               "staged": {c.name: _v(c.staged_version) for c in p.components if c.staged_version},
               "realm": "enabled" if self._realm_ok else "disabled",
               "in_flight": self.in_flight}
        off = [i for i, on in enumerate(p.cpu_on) if not on]
        if off:
            out["cpus_off"] = off
        if self.last is not None:
            out["last"] = {k: self.last[k] for k in ("kind", "component", "t", "errno") if k in self.last}
        return out
