"""Firmware components and their activators.

One activator per kind, as TF-A has one file per activator (bl31_lfa.c,
rmmd_rmm_lfa.c, fvp_spmd_logical_sp.c):

- ``generic``: swaps in the primed image; rendezvous as the profile says.
- ``sp``: a Secure Partition, no rendezvous needed (TF-A flags 0xB).
- ``bl31``: BL31 patches itself in the holding pen and every CPU
  warm-resets into NS at x3 with x0 = x4 (may_reset_cpu, flags 0x7).
- ``rmm``: the holding pen, then the leader boots the new RMM image from
  the activation token and the others take the warm path (flags 0x3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from lfafs.platform.agent import WarmReset
from lfafs.platform.images import Image
from lfafs.platform.profile import ComponentSpec
from lfafs.smccc import Errno, LfaStatus

if TYPE_CHECKING:
    from lfafs.platform.machine import Platform


@attrs.define
class Component:
    """A component's flash (version, staged image) and what PRIME loaded."""

    index: int
    spec: ComponentSpec
    version: tuple[int, int]
    staged: bytes | None = None
    staged_version: tuple[int, int] | None = None
    loaded: Image | None = None  # authenticated at PRIME, activated by ACTIVATE

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def guid(self) -> str:
        return str(self.spec.guid)


class GenericActivator:
    """Activates by swapping in the image PRIME loaded and authenticated."""

    def __init__(self, platform: Platform, component: Component) -> None:
        self.platform = platform
        self.component = component
        self.may_reset_cpu = component.spec.may_reset_cpu
        self.cpu_rendezvous_required = component.spec.cpu_rendezvous_required

    async def prime(self, cid: int) -> int:
        fault = await self.platform.apply_fault(cid, "prime")
        if fault is not None and fault.status is not None:
            return int(fault.status)
        await trio.sleep(self.component.spec.latencies.prime)
        return 0

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        if not self.cpu_rendezvous_required:
            return await self._work(cpu, cid)
        pen = self.platform.pen
        if not pen.arrive(self.platform.running_cpus()):
            return await pen.wait()
        self.platform.report_leader(cpu)
        status = await self._work(cpu, cid)
        pen.release(status)
        return status

    async def _faults_then_latency(self, cid: int) -> int | None:
        """The activate stage's fault, then the modelled time; a status ends the activation."""
        fault = await self.platform.apply_fault(cid, "activate")
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
        fault = await self.platform.apply_fault(cid, "boot")
        if fault is not None and fault.status is not None:
            self.platform.report_reason(f"the new image failed to boot (injected {fault.status.name})")
            return LfaStatus.ACTIVATION_FAILED
        self.platform.commit_activation(cid)
        return 0

    def cancel(self, cid: int) -> int | None:
        return None


class SpActivator(GenericActivator):
    """FVP Secure Partitions: rendezvous optional, no reset."""


class Bl31Activator(GenericActivator):
    """BL31 self-activation: pen, patch, warm reset of every CPU (TF-A bl31_lfa.c)."""

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        if not self.platform.valid_ns_entry(entry_point):
            return LfaStatus.CRITICAL_ERROR  # TF-A returns -5 here, never LFA_INVALID_ADDRESS
        status = await super().activate(cpu, cid, entry_point, context_id)
        if status == 0:
            return WarmReset(entry_point=entry_point, context_id=context_id)
        return status

    def cancel(self, cid: int) -> int | None:
        # The cancel op releases every CPU waiting in the pen with -11 (TF-A "BL31 Late Cancel").
        if self.platform.pen.count:
            self.platform.pen.release(LfaStatus.ACTIVATION_FAILED)
        return 0


class RmmActivator(GenericActivator):
    """LFA of the RMM at EL3 (TF-A services/std_svc/rmmd/rmmd_rmm_lfa.c)."""

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        pen = self.platform.pen
        if not pen.arrive(self.platform.running_cpus()):
            status = await pen.wait()
            if status == 0:
                await self.platform.rmmd_secondary_activate(cpu)  # always 0 (TF-A)
            return status
        self.platform.report_leader(cpu)
        status = await self._faults_then_latency(cid)
        if status is None:
            status = await self.platform.rmmd_primary_activate(cpu, cid)
        pen.release(status)
        if status != -Errno.EAGAIN:
            # Success or failure, the leader resets the activation state (TF-A).
            self.platform.agent.reset_activation()
        return status


ACTIVATORS = {"generic": GenericActivator, "sp": SpActivator, "bl31": Bl31Activator, "rmm": RmmActivator}
