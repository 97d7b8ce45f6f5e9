"""The emulated machine: CPUs and their power, DRAM, SMC entry and dispatch, and the wiring.

Owned by one Trio run. Every SMC is awaited by the task that issues it, so
CPUs issuing SMCs from their own tasks (as the Linux driver's stop_machine
does for ACTIVATE) meet in the holding pen concurrently. A CPU executes one
SMC at a time; a second caller on the same CPU waits its turn.

The parts of an activation live in their own modules and talk to each
other directly, as TF-A's do: the agent (agent.py) asks the platform port
(plat_lfa.py) and the activators (activators.py); the activators use the
holding pen, the RMMD (rmmd.py) and the recorder (trace.py). This module
builds them at each power-on and passes SMCs in; its other public methods
are the platform's façade for the layers above.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import NamedTuple

import trio

from lfafs.platform import images
from lfafs.platform.activators import Collaborators
from lfafs.platform.agent import Agent, WarmReset
from lfafs.platform.faults import Fault, FaultTable, make_fault
from lfafs.platform.ffa import is_ffa_fid
from lfafs.platform.holding_pen import HoldingPen
from lfafs.platform.memory import make_dram
from lfafs.platform.plat_lfa import Component, FlashWrite, PlatformError, PlatLfa, uuid_regs
from lfafs.platform.profile import DEFAULT_PROFILE, ComponentSpec, Profile, load_profile
from lfafs.platform.psci import PSCI_FIDS, PSCI_VERSION_1_1, AffinityState, PsciFid, PsciStatus
from lfafs.platform.rmmd import RMM_FIDS, Rmmd
from lfafs.platform.topology import MAX_CPUS, Topology
from lfafs.platform.trace import ActivationReport, Recorder, SmcTrace
from lfafs.platform.uefi_machine import Regs8, UefiMachine
from lfafs.platform.uefi_stack import flash_from_state, flash_to_state
from lfafs.platform.variable_store import SecureStorage
from lfafs.smccc import INVALID_COMPONENT, SMC_UNK, WORLDS, Fid, RmmBootStatus, Version, u64


class Regs(NamedTuple):
    x0: int
    x1: int
    x2: int
    x3: int
    x4: int
    x5: int


class HeldCpu:
    """A CPU its holder keeps (Platform.hold_cpu, an async context); SMCs made through it run on it at once."""

    def __init__(self, platform: Platform, cpu: int) -> None:
        self._platform, self.cpu = platform, cpu

    async def __aenter__(self) -> HeldCpu:
        await self._platform._take_cpu(self.cpu)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._platform._cpu_lock[self.cpu].release()

    async def smc(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0) -> Regs:
        x = [u64(r) for r in (fid, x1, x2, x3, x4, 0, 0, 0)]
        await self._platform._smc_on_cpu(self.cpu, "ns", x)
        return Regs(*x[:6])


class Platform(UefiMachine):
    """An emulated Arm platform with an EL3 LFA agent, an RMM and (uefi_machine.py) UEFI over FF-A."""

    @classmethod
    def from_profile(cls, name_or_path: str | pathlib.Path = DEFAULT_PROFILE, *, cpus: int | None = None) -> Platform:
        return cls(load_profile(name_or_path), cpus=cpus)

    def __init__(self, profile: Profile, *, cpus: int | None = None) -> None:
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS):
            raise PlatformError(f"cpus must be between 1 and {MAX_CPUS}, got {cpus!r}")
        self.profile = profile
        self.ncpus = cpus or profile.cpus
        if profile.topology is not None and profile.topology.cpus == self.ncpus:
            self.topology = profile.topology
        else:
            self.topology = Topology.flat(self.ncpus)
        self.faults = FaultTable()
        self.trace = SmcTrace(mpidr_of=self.topology.mpidr)
        self.recorder = Recorder()
        self.port = PlatLfa(profile, self.faults, self.recorder)
        self.port.flash_changed = self._flash_changed
        self.flash_changed: Callable[[Platform, FlashWrite], None] | None = None  # the service persists the flash
        self.secure_flash = SecureStorage(changed=self._secure_flash_changed)  # the variable SP's NV store
        self._cold_reset()

    # -- power ---------------------------------------------------------------------------

    def _cold_reset(self) -> None:
        """Power-on: RAM is new, flash (versions, staged images) is kept."""
        self.cpu_on = [True] * self.ncpus
        self._cpu_lock = [trio.Lock() for _ in range(self.ncpus)]
        for c in self.components:
            c.loaded = None
        self.pen = HoldingPen()
        self.agent = Agent(self.port, self.running_cpus)
        self.dram = make_dram(self.profile.dram_base, self.profile.dram_size)
        self.rmmd: Rmmd | None = None
        rmm = self.port.rmm()
        if rmm is not None:
            self.rmmd = Rmmd(self.dram, self.profile.rmm, self.ncpus, self.profile.dram_base,
                             self.profile.dram_size, trace=self.trace, recorder=self.recorder)
            image = images.parse(self.port.image_for(rmm, rmm.version))
            result = self.rmmd.cold_boot(0, self.rmmd.new_image(image, self.rmmd.entry_pa))
            if result.status != RmmBootStatus.SUCCESS:
                raise PlatformError(f"the RMM did not boot: {result.status.name}: {result.reason}")
            for cpu in range(1, self.ncpus):
                self.rmmd.warm_boot(cpu)
        self._collaborators = Collaborators(
            pen=self.pen, running_cpus=self.running_cpus, faults=self.faults, recorder=self.recorder,
            commit=self.port.commit, reset_activation=self.agent.reset_activation,
            valid_ns_entry=self.valid_ns_entry, reset_latched=lambda: self.agent.current.reset, rmmd=self.rmmd)
        self._power_on_uefi()
        for c in self.components:
            c.activator = self._activator_for(c)

    def reset(self) -> None:
        """Platform cold reset: RMM memory and realms are gone, as on a real reboot."""
        if any(lock.locked() for lock in self._cpu_lock):
            raise PlatformError("a CPU is executing an SMC; reset when the platform is idle")
        self.recorder.forget_open()
        self._cold_reset()

    def online_cpus(self) -> list[int]:
        """The CPUs Linux sees online (PSCI ON): where the driver's stop_machine issues SMCs."""
        return [c for c in range(self.ncpus) if self.cpu_on[c]]

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
            self.rmmd.warm_boot(cpu)  # TF-A rmmd_main.c, rmmd_cpu_on_finish_handler()

    def _check_cpu(self, cpu: int, *, must_be_on: bool = True) -> None:
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < self.ncpus:
            raise PlatformError(f"no CPU {cpu!r}: this platform has CPUs 0..{self.ncpus - 1}")
        if must_be_on and not self.cpu_on[cpu]:
            raise PlatformError(f"CPU {cpu} is off; power it on first")

    def valid_ns_entry(self, ep: int) -> bool:
        """A Non-secure entry point for a warm reset, by TF-A's rules.

        TF-A plat/arm/common/arm_pm.c, arm_validate_ns_entrypoint(): inside DRAM1
        below its secure top (ARM_TZC_DRAM1_SIZE: secure, realm, GPT, shared
        page) or inside DRAM2; lib/psci/psci_common.c, psci_get_ns_ep_info(),
        refuses only an odd (Thumb) address. A profile without a secure top
        keeps at least the RMM carve-out out.
        """
        p, r = self.profile, self.profile.rmm
        if ep & 1:
            return False
        if p.dram2_size and p.dram2_base <= ep < p.dram2_base + p.dram2_size:
            return True
        ns_top = p.dram_base + p.dram_size - p.secure_dram_size
        if not p.dram_base <= ep < ns_top:
            return False
        return p.secure_dram_size > 0 or r is None or not r.base <= ep < r.limit + 4096

    # -- the component table and its flash (plat_lfa.py) ------------------------------------

    @property
    def components(self) -> list[Component]:
        return self.port.components

    def component(self, key: str | int) -> Component:
        """A component by GUID, name or index."""
        return self.port.component(key)

    def stage(self, component: str | int, version: tuple[int, int] | str | None = None,
              image: bytes | None = None) -> None:
        """Deliver a new image out of band (see PlatLfa.stage)."""
        self.port.stage(component, version, image)

    def unstage(self, component: str | int) -> None:
        self.port.unstage(component)

    def add_component(self, spec: ComponentSpec) -> Component:
        """A firmware update that adds a component to the LFA table (seen at the next scan)."""
        self._check_table_change()
        c = self.port.add(spec)
        c.activator = self._activator_for(c)
        self.agent.table_changed()
        self._flash_changed()
        return c

    def remove_component(self, component: str | int) -> None:
        """A firmware update that drops a component: later ones move down one seq id."""
        self.port.component(component)  # an unknown name is reported before a busy agent
        self._check_table_change()
        self.port.remove(component)
        self.agent.table_changed()
        self._flash_changed()

    def _check_table_change(self) -> None:
        if self.agent.current.component_id != INVALID_COMPONENT or self.agent.in_progress:
            raise PlatformError("an activation is prepared or running: cancel it before changing the component table")

    def _flash_changed(self, kind: FlashWrite = FlashWrite.OUT_OF_BAND) -> None:
        if self.flash_changed is not None:
            self.flash_changed(self, kind)

    def _secure_flash_changed(self) -> None:
        # A SetVariable's transaction can be refused (variable_store.SecureStorage.commit);
        # provisioning and setup-menu writes stand as the firmware's own.
        self._flash_changed(FlashWrite.VARIABLE if self.secure_flash.committing else FlashWrite.FIRMWARE)

    def flash_state(self) -> dict:
        """What survives a power cycle: the component table, versions and staged images.

        With UEFI, also "secure_flash": the variable SP's NV store (uefi_stack.flash_to_state);
        a saved state without it restores an empty store, provisioned from the profile.
        """
        state = self.port.flash_state()
        if self.uefi is not None:
            state["secure_flash"] = flash_to_state(self.secure_flash)
        return state

    def staged_images(self) -> dict[str, bytes]:
        return self.port.staged_images()

    def restore_flash(self, state: dict, images_by_guid: dict[str, bytes]) -> None:
        """Apply a saved flash before anything runs, then boot again with it."""
        objects = flash_from_state(state["secure_flash"]) if "secure_flash" in state else {}
        self.port.restore(state, images_by_guid)
        self.secure_flash.objects = objects
        self.agent.table_changed()
        self._cold_reset()

    # -- faults ------------------------------------------------------------------------------

    def inject(self, component: str | int, stage: str, *, status=None, call_again: int = 0,
               latency: float = 0.0, once: bool = False, beyond_tf_a: bool = False) -> Fault:
        """Arm a fault at ``stage`` of a component's activation (see faults.make_fault)."""
        c = self.component(component)
        fault = make_fault(stage, kind=c.kind, status=status, call_again=call_again, latency=latency,
                           once=once, beyond_tf_a=beyond_tf_a)
        self.faults.set(c.index, fault)
        return fault

    def clear_faults(self, component: str | int | None = None, stage: str | None = None) -> None:
        self.faults.clear(None if component is None else self.component(component).index, stage)

    # -- observability -----------------------------------------------------------------------

    @property
    def reports(self) -> list[ActivationReport]:
        return self.recorder.reports

    @property
    def current_report(self) -> ActivationReport | None:
        """The report of the activation being prepared or run (filed ones are in ``reports``)."""
        return self.recorder.current

    @property
    def last_report(self) -> ActivationReport | None:
        return self.recorder.last

    def realm_disabled(self) -> bool:
        return self.rmmd is None or self.rmmd.boot_failed

    # -- SMC entry -----------------------------------------------------------------------------

    async def smc(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0, *,
                  cpu: int = 0, world: str = "ns") -> Regs:
        """Issue an SMC on ``cpu``; returns x0..x5 as unsigned 64-bit values.

        Registers a reply does not write keep the values the caller passed
        (x5 is passed as 0).
        """
        return Regs(*(await self._smc_entry(cpu, world, [fid, x1, x2, x3, x4, 0, 0, 0]))[:6])

    def hold_cpu(self, cpu: int) -> HeldCpu:
        """``async with platform.hold_cpu(cpu) as held``: keep ``cpu`` for the caller until the block
        ends, as a kernel thread that does not let go of it (stop_machine's stopper): no other SMC
        and no EFI runtime call runs on it meanwhile. SMCs on it go through ``held.smc``."""
        self._check_cpu(cpu)
        return HeldCpu(self, cpu)

    async def _take_cpu(self, cpu: int) -> None:
        """Wait for ``cpu`` and keep it. A free CPU is taken without a scheduling point: a fleet
        wave is hundreds of thousands of SMCs, and each would otherwise cost a pass of the
        scheduler; a busy one is queued for in order, as trio.Lock does."""
        lock = self._cpu_lock[cpu]
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()

    async def _smc_entry(self, cpu: int, world: str, regs: list[int]) -> list[int]:
        """x0..x7 of an SMC made on ``cpu``, once the CPU is free; the registers after it."""
        self._check_cpu(cpu)
        if world not in WORLDS:
            raise PlatformError(f"world must be one of {', '.join(WORLDS)}")
        x = [u64(r) for r in regs]
        await self._take_cpu(cpu)
        try:
            await self._smc_on_cpu(cpu, world, x)
        finally:
            self._cpu_lock[cpu].release()
        return x

    async def _smc_on_cpu(self, cpu: int, world: str, x: list[int]) -> None:
        """One SMC on a CPU the caller holds: dispatched, answered in ``x``, recorded in the trace."""
        fid, args = x[0], tuple(x[1:5])
        start = trio.current_time()
        decoded = await self._dispatch(cpu, world, x)
        self.trace.add(cpu, world, fid, args, tuple(x[:6]), start, trio.current_time() - start,
                       decoded=decoded or "")

    async def _dispatch(self, cpu: int, world: str, x: list[int]) -> str | None:
        """Handle the SMC in ``x`` (x0..x7, answered in place); FF-A calls return their decoded trace text."""
        fid = x[0] & 0xFFFF_FFFF  # the generic entry reads only w0 (TF-A common/runtime_svc.c)
        fast = bool(fid & (1 << 31))
        if fast and fid & (0x7F << 17):
            x[0] = SMC_UNK
            return None
        fid &= ~(1 << 16)  # the SVE hint bit is cleared before dispatch
        x[0] = fid
        if is_ffa_fid(fid):
            return await self._ffa(world, x)
        if Fid.LFA_VERSION <= fid <= Fid.LFA_CANCEL:
            await self._lfa(cpu, x)
        elif fid in PSCI_FIDS:
            self._psci(cpu, world, fid, x)
        elif fid in RMM_FIDS:
            if self.rmmd is None:
                x[0] = SMC_UNK
            else:
                self.rmmd.handle_smc(world, fid, x)
        else:
            x[0] = SMC_UNK  # SMC32 LFA forms, 0xC40002E7, anything else
        return None

    def _psci(self, cpu: int, world: str, fid: int, x: list[int]) -> None:
        """PSCI from the Normal world (TF-A lib/psci/psci_main.c, the handlers LFA tests use)."""
        if world != "ns":
            x[0] = u64(PsciStatus.NOT_SUPPORTED)
        elif fid == PsciFid.VERSION:
            x[0] = PSCI_VERSION_1_1
        elif fid == PsciFid.FEATURES:
            x[0] = 0 if (x[1] & 0xFFFF_FFFF) in PSCI_FIDS else u64(PsciStatus.NOT_SUPPORTED)
        elif fid == PsciFid.AFFINITY_INFO:
            target = self.topology.cpu_of(x[1])
            if target is None or x[2] != 0:
                x[0] = u64(PsciStatus.INVALID_PARAMETERS)
            else:
                x[0] = AffinityState.ON if self.cpu_on[target] else AffinityState.OFF
        elif fid == PsciFid.CPU_ON:
            target = self.topology.cpu_of(x[1])
            if target is None:
                x[0] = u64(PsciStatus.INVALID_PARAMETERS)
            elif self.cpu_on[target]:
                x[0] = u64(PsciStatus.ALREADY_ON)
            else:
                self.power(target, True)
                x[0] = PsciStatus.SUCCESS
        elif fid == PsciFid.CPU_OFF:
            # On hardware CPU_OFF does not return; here the issuing task gets DENIED
            # when it is the last CPU running, SUCCESS once the CPU is off.
            if self.running_cpus() == 1:
                x[0] = u64(PsciStatus.DENIED)
            else:
                self.cpu_on[cpu] = False
                x[0] = PsciStatus.SUCCESS

    async def _lfa(self, cpu: int, x: list[int]) -> None:
        fid = x[0]
        if fid != Fid.LFA_ACTIVATE:
            await self.agent.handle(cpu, x)
            if fid == Fid.LFA_PRIME:
                self.recorder.prime_returned()
            return
        cid = x[1] & 0xFFFF_FFFF
        retry = None
        if cid < len(self.components) and cid == self.agent.current.component_id and not self.agent.in_progress:
            c = self.components[cid]
            retry = (c.version, Version(*c.loaded.version) if c.loaded is not None else c.version)
        name = self.components[cid].name if cid < len(self.components) else ""
        report = self.recorder.enter_activate(name, retry)
        await self.agent.handle(cpu, x)
        warm_reset = self.agent.resumed.pop(cpu, None) is not None
        self.recorder.leave_activate(report, x[0], x[1], warm_reset)


__all__ = ["MAX_CPUS", "Platform", "PlatformError", "Regs", "Regs8", "WarmReset", "uuid_regs"]
