"""Component activators: what ACTIVATE does for each kind of component.

One activator per kind, as TF-A has one file per activator, each talking
to its collaborators directly (TF-A struct lfa_component_ops):

- ``generic``: swaps in the primed image; rendezvous as the profile says.
- ``sp``: a Secure Partition, no rendezvous needed (TF-A
  plat/arm/board/fvp/fvp_spmd_logical_sp.c, flags 0xB).
- ``bl31``: BL31 patches itself in the holding pen and every CPU
  warm-resets into NS at x3 with x0 = x4 (TF-A
  services/std_svc/lfa/bl31_lfa.c, flags 0x7).
- ``rmm``: the holding pen, then the leader boots the new RMM image from
  the activation token and the others take the warm path (TF-A
  services/std_svc/rmmd/rmmd_rmm_lfa.c, flags 0x3).

An activator is built once per boot with :class:`Collaborators`; it never
sees the machine.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from lfafs.platform.agent import WarmReset
from lfafs.platform.faults import FaultTable
from lfafs.platform.holding_pen import HoldingPen
from lfafs.platform.plat_lfa import Component
from lfafs.platform.rmmd import Rmmd
from lfafs.platform.trace import Recorder
from lfafs.smccc import ActivatorKind, Errno, LfaStatus


@attrs.frozen
class Collaborators:
    """What the activators of one boot share."""

    pen: HoldingPen
    running_cpus: Callable[[], int]  # PSCI: CPUs ON or ON_PENDING
    faults: FaultTable
    recorder: Recorder
    commit: Callable[[int], None]  # the component now runs its primed image (plat_lfa.PlatLfa.commit)
    reset_activation: Callable[[], None]  # TF-A lfa_reset_activation()
    valid_ns_entry: Callable[[int], bool]  # BL31's check of a warm-reset entry point
    reset_latched: Callable[[], bool]  # current_activation.reset, set by the last successful PRIME
    rmmd: Rmmd | None


class GenericActivator:
    """Activates by swapping in the image PRIME loaded and authenticated."""

    def __init__(self, component: Component, co: Collaborators) -> None:
        self.component = component
        self.co = co
        self.may_reset_cpu = component.spec.may_reset_cpu
        self.cpu_rendezvous_required = component.spec.cpu_rendezvous_required

    async def prime(self, cid: int) -> int:
        fault = await self.co.faults.hit(cid, "prime")
        if fault is not None and fault.status is not None:
            return int(fault.status)
        await trio.sleep(self.component.spec.latencies.prime)
        return 0

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        if not self.cpu_rendezvous_required:
            return await self._work(cpu, cid)
        pen = self.co.pen
        if not pen.arrive(self.co.running_cpus()):
            return await pen.wait()
        self.co.recorder.leader(cpu)
        status = await self._work(cpu, cid)
        pen.release(status)
        return status

    async def _faults_then_latency(self, cid: int) -> int | None:
        """The activate stage's fault, then the modelled time; a status ends the activation."""
        fault = await self.co.faults.hit(cid, "activate")
        if fault is not None:
            if fault.call_again:
                return -Errno.EAGAIN
            if fault.status is not None:
                return int(fault.status)
        await trio.sleep(self.component.spec.latencies.activate)
        return None

    async def _work(self, cpu: int, cid: int) -> int:
        early = await self._faults_then_latency(cid)
        if early is not None:
            return early
        fault = await self.co.faults.hit(cid, "boot")
        if fault is not None and fault.status is not None:
            # -11 for most; an SP's failed image is -5 (faults.py says which can be injected)
            self.co.recorder.reason(f"the new image failed to boot (injected {fault.status.name})")
            return int(fault.status)
        self.co.commit(cid)
        return 0

    def cancel(self, cid: int) -> int | None:
        return None


class SpActivator(GenericActivator):
    """FVP Secure Partitions: rendezvous optional, no reset."""


class Bl31Activator(GenericActivator):
    """BL31 self-activation: pen, patch, warm reset of every CPU (TF-A bl31_lfa.c)."""

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        status = await super().activate(cpu, cid, entry_point, context_id)
        # TF-A bl31_lfa.c, lfa_bl31_image_activation(): the warm reset happens only if the
        # last successful PRIME latched `reset` (a PRIME of the RMM after BL31's clears it).
        if status != 0 or not self.co.reset_latched():
            return status
        # Each CPU checks its own x3 after the rendezvous (the leader after patching, the
        # others after lfa_holding_wait), so one bad entry point fails only its CPU
        # (TF-A services/std_svc/lfa/lfa_reset.c, prepare_warm_reset()).
        if not self.co.valid_ns_entry(entry_point):
            return LfaStatus.CRITICAL_ERROR  # -5, never LFA_INVALID_ADDRESS
        return WarmReset(entry_point=entry_point, context_id=context_id)

    def cancel(self, cid: int) -> int | None:
        # The cancel op releases every CPU waiting in the pen with -11 (TF-A bl31_lfa.c,
        # tf-a-tests "BL31 Late Cancel").
        if self.co.pen.count:
            self.co.pen.release(LfaStatus.ACTIVATION_FAILED)
        return 0


class RmmActivator(GenericActivator):
    """LFA of the RMM at EL3 (TF-A services/std_svc/rmmd/rmmd_rmm_lfa.c)."""

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        rmmd = self.co.rmmd
        assert rmmd is not None, "an RMM component boots an RMMD"
        pen = self.co.pen
        if not pen.arrive(self.co.running_cpus()):
            status = await pen.wait()
            if status == 0:
                await rmmd.secondary_activate(cpu)  # always 0 (TF-A)
            return status
        self.co.recorder.leader(cpu)
        status = await self._faults_then_latency(cid)
        if status is None:
            t0 = trio.current_time()
            fault = await self.co.faults.hit(cid, "boot")
            injected = fault.status if fault is not None else None
            image = self.component.loaded
            assert image is not None, "ACTIVATE runs only after a complete PRIME"
            status = await rmmd.primary_activate(cpu, image, injected=injected, since=t0)
            if status == 0:
                self.co.commit(cid)
        pen.release(status)
        if status != -Errno.EAGAIN:
            # Success or failure, the leader resets the activation state (TF-A).
            self.co.reset_activation()
        return status


ACTIVATORS: dict[str, type[GenericActivator]] = {
    ActivatorKind.GENERIC: GenericActivator, ActivatorKind.SP: SpActivator,
    ActivatorKind.BL31: Bl31Activator, ActivatorKind.RMM: RmmActivator,
}


def make_activator(component: Component, co: Collaborators) -> GenericActivator | None:
    """The activator of ``component``'s kind, or None for a component without one."""
    if not component.spec.activation_capable:
        return None
    return ACTIVATORS[ActivatorKind(component.kind)](component, co)
