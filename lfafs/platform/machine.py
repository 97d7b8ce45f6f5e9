"""The emulated machine: CPUs, DRAM, SMC dispatch, components, faults, the RMM.

Owned by one Trio run. Every SMC is awaited by the task that issues it, so
CPUs issuing SMCs from their own tasks (as the Linux driver's stop_machine
does for ACTIVATE) meet in the holding pen concurrently. A CPU executes one
SMC at a time; a second caller on the same CPU waits its turn.
"""

from __future__ import annotations

import pathlib
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple

import trio

from lfafs.platform import images
from lfafs.platform.agent import Agent, WarmReset
from lfafs.platform.components import ACTIVATORS, Component
from lfafs.platform.faults import Fault, FaultTable, make_fault
from lfafs.platform.holding_pen import HoldingPen
from lfafs.platform.memory import make_dram
from lfafs.platform.profile import Profile, load_profile
from lfafs.platform.rmm.boot import BootResult
from lfafs.platform.rmmd import Rmmd
from lfafs.platform.trace import ActivationReport, SmcTrace
from lfafs.smccc import (
    SMC_UNK,
    Errno,
    Fid,
    LfaStatus,
    RmmBootStatus,
    u64,
    version_reg,
)

WORLDS = ("ns", "secure", "realm")


class PlatformError(RuntimeError):
    """A request the emulated machine cannot honour, with what to do instead."""


class Regs(NamedTuple):
    x0: int
    x1: int
    x2: int
    x3: int
    x4: int
    x5: int


def uuid_regs(guid: uuid.UUID) -> tuple[int, int]:
    """x1/x2 of GET_INVENTORY: little-endian copies of UUID bytes 0-7 and 8-15 (TF-A memcpy)."""
    b = guid.bytes
    return int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")


class Platform:
    """An emulated Arm platform with an EL3 LFA agent and an RMM."""

    @classmethod
    def from_profile(cls, name_or_path: str | pathlib.Path = "fvp", *, cpus: int | None = None) -> Platform:
        return cls(load_profile(name_or_path), cpus=cpus)

    def __init__(self, profile: Profile, *, cpus: int | None = None) -> None:
        if cpus is not None and not 1 <= cpus <= 64:
            raise PlatformError(f"cpus must be between 1 and 64, got {cpus}")
        self.profile = profile
        self.ncpus = cpus or profile.cpus
        self.components = [Component(index=i, spec=spec, version=spec.version)
                           for i, spec in enumerate(profile.components)]
        self.faults = FaultTable()
        self.trace = SmcTrace()
        self.flash_changed: Callable[[Platform], None] | None = None  # the service persists the flash
        self.reports: list[ActivationReport] = []
        self._report: ActivationReport | None = None
        self._cold_reset()

    # -- power -------------------------------------------------------------------------

    def _cold_reset(self) -> None:
        """Power-on: RAM is new, flash (versions, staged images) is kept."""
        self.cpu_on = [True] * self.ncpus
        self._cpu_lock = [trio.Lock() for _ in range(self.ncpus)]
        self._activators = [ACTIVATORS[c.spec.activator](self, c) if c.spec.activation_capable else None
                            for c in self.components]
        for c in self.components:
            c.loaded = None
        self.pen = HoldingPen()
        self.agent = Agent(self, self.running_cpus)
        self.dram = make_dram(self.profile.dram_base, self.profile.dram_size)
        self.rmmd: Rmmd | None = None
        rmm = self._rmm_component()
        if rmm is not None:
            self.rmmd = Rmmd(self.dram, self.profile.rmm, self.ncpus, self.profile.dram_base, self.profile.dram_size)
            image = images.parse(self._image_for(rmm, rmm.version))
            result = self.rmmd.cold_boot(0, self.rmmd.new_image(image, self.rmmd.entry_pa))
            if result.status != RmmBootStatus.SUCCESS:
                raise PlatformError(f"the RMM did not boot: {result.status.name}: {result.reason}")
            for cpu in range(1, self.ncpus):
                self.rmmd.warm_boot(cpu)

    def reset(self) -> None:
        """Platform cold reset: RMM memory and realms are gone, as on a real reboot."""
        if any(lock.locked() for lock in self._cpu_lock):
            raise PlatformError("a CPU is executing an SMC; reset when the platform is idle")
        self._report = None
        self._cold_reset()

    def running_cpus(self) -> int:
        """PSCI: CPUs whose affinity state is ON or ON_PENDING."""
        return sum(self.cpu_on)

    def power(self, cpu: int, on: bool) -> None:
        """PSCI CPU_OFF / CPU_ON of one CPU; CPU_ON runs the RMM's warm boot on it."""
        self._check_cpu(cpu, must_be_on=False)
        if self.cpu_on[cpu] == on:
            return
        if self._cpu_lock[cpu].locked():
            raise PlatformError(f"CPU {cpu} is executing an SMC; power it off when it is idle")
        if not on and self.running_cpus() == 1:
            raise PlatformError(f"CPU {cpu} is the last one running")
        self.cpu_on[cpu] = on
        if on and self.rmmd is not None and not self.rmmd.boot_failed:
            self.rmmd.warm_boot(cpu)  # rmmd_cpu_on_finish_handler

    def _check_cpu(self, cpu: int, *, must_be_on: bool = True) -> None:
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < self.ncpus:
            raise PlatformError(f"no CPU {cpu!r}: this platform has CPUs 0..{self.ncpus - 1}")
        if must_be_on and not self.cpu_on[cpu]:
            raise PlatformError(f"CPU {cpu} is off; power it on first")

    # -- components ----------------------------------------------------------------------

    def component(self, key: str | int) -> Component:
        """A component by GUID, name or index."""
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < len(self.components):
                return self.components[key]
        elif isinstance(key, str):
            k = key.strip().lower()
            for c in self.components:
                if k in (c.name, c.guid):
                    return c
        names = ", ".join(c.name for c in self.components)
        raise PlatformError(f"unknown component {key!r}; this platform has {names} (or their GUIDs)")

    def _rmm_component(self) -> Component | None:
        return next((c for c in self.components if c.spec.activator == "rmm"), None)

    def _image_for(self, c: Component, version: tuple[int, int]) -> bytes:
        rmm = c.spec.activator == "rmm"
        return images.build(c.spec.guid, version, self.profile.auth_key, rmm=rmm,
                            compat=rmm and self.profile.rmm.compat_reserve_mem)

    def stage(self, component: str | int, version: tuple[int, int] | None = None,
              image: bytes | None = None) -> None:
        """Deliver a new image out of band: the component reports activation pending.

        With no ``image``, lfafs builds one signed with the platform key. An
        image that fails authentication is staged anyway: PRIME rejects it
        with LFA_AUTH_ERROR, as a real platform would.
        """
        c = self.component(component)
        if image is None:
            if version is None:
                raise PlatformError("stage needs a version or an image")
            image = self._image_for(c, _version(version))
            staged_version = _version(version)
        else:
            if not isinstance(image, (bytes, bytearray)) or len(image) > images.MAX_PAYLOAD + 4096:
                raise PlatformError("an image must be bytes, at most 16 MB")
            try:
                header = images.parse(image)
            except images.ImageError:
                header = None
            if header is not None and version is not None and header.version != _version(version):
                raise PlatformError(f"the image says version {header.version[0]}.{header.version[1]}, "
                                    f"not {version[0]}.{version[1]}")
            if header is None and version is None:
                raise PlatformError("the image has no readable header: give its version")
            staged_version = _version(version) if version is not None else header.version
        c.staged = bytes(image)
        c.staged_version = staged_version
        self._flash_changed()

    def add_component(self, spec) -> Component:
        """A firmware update that adds a component to the LFA table (seen at the next scan)."""
        self._check_table_change()
        if any(c.name == spec.name or c.spec.guid == spec.guid for c in self.components):
            raise PlatformError(f"a component named {spec.name} or with GUID {spec.guid} already exists")
        c = Component(index=len(self.components), spec=spec, version=spec.version)
        self.components.append(c)
        self._activators.append(ACTIVATORS[spec.activator](self, c) if spec.activation_capable else None)
        self.agent.table_changed()
        self._flash_changed()
        return c

    def remove_component(self, component: str | int) -> None:
        """A firmware update that drops a component: later ones move down one seq id."""
        c = self.component(component)
        if c.spec.activator == "rmm":
            raise PlatformError("the RMM component cannot be removed from a running platform")
        if len(self.components) == 1:
            raise PlatformError("the last component cannot be removed (TF-A needs at least one)")
        self._check_table_change()
        del self.components[c.index]
        del self._activators[c.index]
        for i, other in enumerate(self.components):
            other.index = i
        self.agent.table_changed()
        self._flash_changed()

    def _check_table_change(self) -> None:
        if self.agent.current.component_id != 0xFFFF_FFFF or self.agent.in_progress:
            raise PlatformError("an activation is prepared or running: cancel it before changing the component table")

    def unstage(self, component: str | int) -> None:
        c = self.component(component)
        c.staged = None
        c.staged_version = None
        self._flash_changed()

    def commit_activation(self, cid: int) -> None:
        """The component now runs what PRIME loaded: its version becomes current."""
        c = self.components[cid]
        if c.loaded is not None:
            c.version = c.loaded.version
        if c.staged is not None and c.loaded is not None and c.staged_version == c.loaded.version:
            c.staged = None
            c.staged_version = None
        if self._report is not None:
            self._report.to_version = c.version
        self._flash_changed()

    # -- flash ------------------------------------------------------------------------------

    def _flash_changed(self) -> None:
        if self.flash_changed is not None:
            self.flash_changed(self)

    def flash_state(self) -> dict:
        """What survives a power cycle: the component table, versions and staged images."""
        return {
            "profile": self.profile.name,
            "components": [{
                "name": c.name, "guid": c.guid, "activator": c.spec.activator,
                "version": list(c.version), "may_reset_cpu": c.spec.may_reset_cpu,
                "cpu_rendezvous_required": c.spec.cpu_rendezvous_required,
                "staged_version": list(c.staged_version) if c.staged_version else None,
            } for c in self.components],
        }

    def restore_flash(self, state: dict, images_by_guid: dict[str, bytes]) -> None:
        """Apply a saved flash before anything runs: the table, versions, staged images."""
        from lfafs.platform.profile import ComponentSpec

        if state.get("profile") != self.profile.name:
            raise PlatformError(f"the saved state is of the {state.get('profile')!r} platform, not "
                                f"{self.profile.name!r}: use that profile or another state directory")
        saved = {c["guid"]: c for c in state["components"]}
        for c in list(self.components):
            if c.guid not in saved and c.spec.activator != "rmm":
                self.remove_component(c.index)
        for entry in state["components"]:
            if not any(c.guid == entry["guid"] for c in self.components):
                self.add_component(ComponentSpec(
                    name=entry["name"], guid=uuid.UUID(entry["guid"]), activator=entry["activator"],
                    version=tuple(entry["version"]), may_reset_cpu=entry["may_reset_cpu"],
                    cpu_rendezvous_required=entry["cpu_rendezvous_required"]))
            c = self.component(entry["guid"])
            c.version = tuple(entry["version"])
            if entry["staged_version"] and entry["guid"] in images_by_guid:
                c.staged = images_by_guid[entry["guid"]]
                c.staged_version = tuple(entry["staged_version"])
        self._cold_reset()  # boot again with the restored flash (the RMM version, the table)

    def staged_images(self) -> dict[str, bytes]:
        return {c.guid: c.staged for c in self.components if c.staged is not None}

    # -- faults ---------------------------------------------------------------------------

    def inject(self, component: str | int, stage: str, *, status=None, call_again: int = 0,
               latency: float = 0.0, once: bool = False) -> Fault:
        c = self.component(component)
        fault = make_fault(stage, status=status, call_again=call_again, latency=latency, once=once)
        self.faults.set(c.index, fault)
        return fault

    def clear_faults(self, component: str | int | None = None, stage: str | None = None) -> None:
        self.faults.clear(None if component is None else self.component(component).index, stage)

    async def apply_fault(self, cid: int, stage: str) -> Fault | None:
        fault = self.faults.trigger(cid, stage)
        if fault is not None and fault.latency:
            await trio.sleep(fault.latency)
        return fault

    # -- platform hooks (plat_lfa_*) -----------------------------------------------------------

    def num_components(self) -> int:
        return len(self.components)

    def uuid_regs(self, cid: int) -> tuple[int, int]:
        return uuid_regs(self.components[cid].spec.guid)

    def activator(self, cid: int):
        return self._activators[cid]

    def is_activation_pending(self, cid: int) -> bool:
        return self.components[cid].staged is not None

    def versions(self, cid: int) -> tuple[int, int] | None:
        if not self.profile.inventory_versions:
            return None
        c = self.components[cid]
        pending = version_reg(*c.staged_version) if c.staged_version is not None else 0
        return version_reg(*c.version), pending

    async def load_auth_image(self, cid: int) -> int:
        """plat_lfa_load_auth_image: 0, -EAGAIN (call again), -EAUTH, -ENOMEM or another error."""
        c = self.components[cid]
        self._prime_started(c)
        fault = await self.apply_fault(cid, "load")
        if fault is not None:
            if fault.call_again:
                return -Errno.EAGAIN
            if fault.status == LfaStatus.AUTH_ERROR:
                return -Errno.EAUTH
            if fault.status == LfaStatus.NO_MEMORY:
                return -Errno.ENOMEM
            if fault.status is not None:
                return -Errno.EINVAL
        await trio.sleep(c.spec.latencies.load)
        if c.staged is None:
            return -Errno.EINVAL
        try:
            img = images.authenticate(c.staged, self.profile.auth_key, c.spec.guid)
        except images.ImageError as e:
            self.report_reason(f"PRIME: the staged image does not authenticate: {e}")
            return -Errno.EAUTH
        if c.spec.activator == "rmm" and not img.rmm_ifc:
            self.report_reason("PRIME: not an RMM image (no RMM-EL3 interface version)")
            return -Errno.EAUTH
        c.loaded = img
        return 0

    async def notify_activate(self, cid: int) -> int:
        fault = await self.apply_fault(cid, "notify")
        return -Errno.EINVAL if fault is not None and fault.status is not None else 0

    def cancel(self, cid: int) -> int:
        return 0

    def valid_ns_entry(self, ep: int) -> bool:
        """A BL31 warm-reset entry point: aligned, in DRAM, outside the RMM carve-out."""
        p, r = self.profile, self.profile.rmm
        return (ep % 4 == 0 and p.dram_base <= ep < p.dram_base + p.dram_size
                and not r.base <= ep < r.limit + 4096)

    # -- the RMM at EL3 ---------------------------------------------------------------------------

    async def rmmd_primary_activate(self, cpu: int, cid: int) -> int:
        c = self.components[cid]
        assert self.rmmd is not None and c.loaded is not None
        report = self._report
        t0 = trio.current_time()
        fault = await self.apply_fault(cid, "boot")
        waited = trio.current_time() - t0  # modelled boot latency, if any
        if fault is not None and fault.status is not None:
            result = BootResult(RmmBootStatus.UNKNOWN_ERROR, 0, f"injected boot failure ({fault.status.name})")
            self.rmmd.boot_complete(cpu, result)
        else:
            tlbi_before = self.dram.tlbi.pages
            result = self.rmmd.primary_activate(cpu, c.loaded)
            if report is not None:
                report.tlb_invalidations = self.dram.tlbi.pages - tlbi_before
        self._realm_trace(cpu, Fid.RMM_BOOT_COMPLETE, (int(result.status), result.token), t0)
        if report is not None:
            report.boot_phases = result.phases
            report.leader_boot_s = waited + sum(result.phases.values())
        if result.status != RmmBootStatus.SUCCESS:
            self.report_reason(f"the new RMM failed to boot: {result.status.name}: {result.reason}")
            return LfaStatus.ACTIVATION_FAILED
        self.commit_activation(cid)
        if report is not None and self.rmmd.rmm is not None:
            rmm = self.rmmd.rmm
            assert rmm.dyn is not None
            report.dynamic_pages_preserved = rmm.dyn.alloc_pages - rmm.dyn.free_pages
            report.fw_img_sequence = rmm.glob_data().fw_img_sequence
        return 0

    async def rmmd_secondary_activate(self, cpu: int) -> int:
        """The warm path of the new image; TF-A returns 0 whatever happens."""
        assert self.rmmd is not None
        t0 = time.perf_counter()
        result = self.rmmd.warm_boot(cpu)
        self._realm_trace(cpu, Fid.RMM_BOOT_COMPLETE, (int(result.status), result.token), trio.current_time())
        if self._report is not None:
            self._report.warm_boots_s += time.perf_counter() - t0
        return 0

    def _realm_trace(self, cpu: int, fid: int, args: tuple[int, ...], start: float) -> None:
        self.trace.add(cpu, "realm", fid, tuple(u64(a) for a in args), (0,) * 6, start, trio.current_time() - start)

    def realm_disabled(self) -> bool:
        return self.rmmd is None or self.rmmd.boot_failed

    # -- activation reports ----------------------------------------------------------------------

    def _prime_started(self, c: Component) -> None:
        if self._report is None or self._report.filed or self._report.component != c.name:
            self._report = ActivationReport(component=c.name, from_version=c.version,
                                            to_version=c.staged_version or c.version)
            self._report.started_at = trio.current_time()

    def report_leader(self, cpu: int) -> None:
        if self._report is not None:
            self._report.leader_cpu = cpu
            self._report.leader_at = trio.current_time()

    def report_reason(self, reason: str) -> None:
        if self._report is not None:
            self._report.reason = reason

    @property
    def current_report(self) -> ActivationReport | None:
        """The report of the activation being prepared or run (filed ones are in ``reports``)."""
        return self._report if self._report is not None and not self._report.filed else None

    @property
    def last_report(self) -> ActivationReport | None:
        return self.reports[-1] if self.reports else None

    # -- SMC entry -----------------------------------------------------------------------------------

    async def smc(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0, *,
                  cpu: int = 0, world: str = "ns") -> Regs:
        """Issue an SMC on ``cpu``; returns x0..x5 as unsigned 64-bit values.

        Registers a reply does not write keep the values the caller passed
        (x5 is passed as 0).
        """
        self._check_cpu(cpu)
        if world not in WORLDS:
            raise PlatformError(f"world must be one of {', '.join(WORLDS)}")
        x = [u64(fid), u64(x1), u64(x2), u64(x3), u64(x4), 0]
        args = tuple(x[1:5])
        async with self._cpu_lock[cpu]:
            start = trio.current_time()
            await self._dispatch(cpu, world, x)
            result = Regs(*x)
            self.trace.add(cpu, world, u64(fid), args, tuple(result), start, trio.current_time() - start)
        return result

    async def _dispatch(self, cpu: int, world: str, x: list[int]) -> None:
        fid = x[0] & 0xFFFF_FFFF  # the generic entry reads only w0 (TF-A runtime_svc.c)
        fast = bool(fid & (1 << 31))
        if fast and fid & (0x7F << 17):
            x[0] = SMC_UNK
            return
        fid &= ~(1 << 16)  # the SVE hint bit is cleared before dispatch
        x[0] = fid
        if Fid.LFA_VERSION <= fid <= Fid.LFA_CANCEL:
            await self._lfa(cpu, x)
        elif fid in (Fid.RMI_VERSION, Fid.RMI_GRANULE_DELEGATE, Fid.RMI_GRANULE_UNDELEGATE):
            self._rmi(world, fid, x)
        elif fid == Fid.RMM_RESERVE_MEMORY:
            self._reserve_memory(world, x)
        else:
            x[0] = SMC_UNK  # SMC32 LFA forms, 0xC40002E7, anything else

    async def _lfa(self, cpu: int, x: list[int]) -> None:
        fid = x[0]
        if fid == Fid.LFA_ACTIVATE:
            await self._activate_with_report(cpu, x)
        else:
            await self.agent.handle(cpu, x)
            if fid == Fid.LFA_PRIME and self._report is not None:
                self._report.prime_s = trio.current_time() - self._report.started_at

    async def _activate_with_report(self, cpu: int, x: list[int]) -> None:
        cid = x[1] & 0xFFFF_FFFF
        report = self._report
        if report is not None and not report.filed and report.component != self._name(cid):
            report = None
        elif (report is None or report.filed) and cid == self.agent.current.component_id \
                and not self.agent.in_progress:
            # A new round without a new PRIME (a retry after a failure): a report of its own.
            c = self.components[cid]
            report = self._report = ActivationReport(
                component=c.name, from_version=c.version,
                to_version=c.loaded.version if c.loaded is not None else c.version)
            report.started_at = trio.current_time()
        elif report is not None and report.filed:
            report = None
        if report is not None and report.cpus == 0:
            report.round_started_at = trio.current_time()
        if report is not None:
            report.cpus += 1
        await self.agent.handle(cpu, x)
        if report is None or report.filed:
            return
        status = _signed(x[0])
        if x[1] == 1 and status == 0:  # call again: the round stays open
            return
        if status in _PRE_ROUND:
            report.cpus -= 1  # refused before the round: not part of it
            return
        if report.leader_at:
            report.rendezvous_s = report.leader_at - report.round_started_at
        # A CPU that warm-reset into NS got x0 = its context id, not a status.
        report.status = 0 if self.agent.resumed.pop(cpu, None) is not None else status
        report.total_s = trio.current_time() - report.started_at
        report.filed = True
        self.reports.append(report)

    def _name(self, cid: int) -> str:
        return self.components[cid].name if cid < len(self.components) else ""

    def _rmi(self, world: str, fid: int, x: list[int]) -> None:
        if world != "ns" or self.realm_disabled():
            x[0] = SMC_UNK
            return
        assert self.rmmd is not None and self.rmmd.rmm is not None
        x[0], x[1] = (u64(v) for v in self.rmmd.rmm.rmi(Fid(fid).name, x[1]))

    def _reserve_memory(self, world: str, x: list[int]) -> None:
        if world != "realm" or self.realm_disabled():
            x[0] = SMC_UNK
            return
        assert self.rmmd is not None
        status, pa = self.rmmd.reserve(x[1], x[2])
        x[0] = u64(status)
        if status == 0:
            x[1] = pa  # on failure x1 keeps the caller's value


def _version(v) -> tuple[int, int]:
    from lfafs.platform.profile import parse_version

    try:
        return parse_version(v)
    except ValueError as e:
        raise PlatformError(str(e)) from None


_PRE_ROUND = {LfaStatus.BUSY, LfaStatus.INVALID_PARAMETERS, LfaStatus.COMPONENT_WRONG_STATE,
              LfaStatus.NOT_SUPPORTED}


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


__all__ = ["Platform", "PlatformError", "Regs", "WarmReset", "uuid_regs"]
