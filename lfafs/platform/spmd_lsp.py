"""The SPMD logical SP's live activation of a Secure Partition: the ``sp`` activator with an SPMC behind it.

TF-A plat/arm/board/fvp/fvp_spmd_logical_sp.c, lfa_sp_activate(): look the
SP up with PARTITION_INFO_GET_REGS (by the image UUID, which is the LFA
component's GUID), check its id, its single execution context and its
properties, send the SPMC a START request (the SPMC stops the SP, takes its
live state and loads the new image), then a FINISH request (the new image
boots). The SPMC's FF-A error becomes an LFA status through
spmd_logical_sp.c convert_ffa_error_code_to_lfa(); any FINISH failure is
LFA_CRITICAL_ERROR because the old image is already overwritten.

There is no CPU rendezvous (flags 0xB): in a round where every CPU calls
ACTIVATE, every CPU runs this activator, as TF-A's lfa_main.c does, and the
SPMC answers a START for an SP already being activated with DENIED (Hafnium
src/ffa/spmc/lifecycle_msg.c), which is LFA_COMPONENT_WRONG_STATE (-9).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from lfafs.platform.activators import Collaborators, SpActivator
from lfafs.platform.agent import WarmReset
from lfafs.platform.ffa import FfaError, PartitionProps
from lfafs.platform.plat_lfa import Component
from lfafs.platform.spmc import Spmc
from lfafs.smccc import Errno, LfaStatus

# spmd_logical_sp.c convert_ffa_error_code_to_lfa()
_FFA_TO_LFA = {
    FfaError.NOT_SUPPORTED: LfaStatus.NOT_SUPPORTED,
    FfaError.INVALID_PARAMETERS: LfaStatus.INVALID_PARAMETERS,
    FfaError.NO_MEMORY: LfaStatus.NO_MEMORY,
    FfaError.DENIED: LfaStatus.COMPONENT_WRONG_STATE,
    FfaError.BUSY: LfaStatus.BUSY,
    FfaError.INTERRUPTED: LfaStatus.BUSY,
    FfaError.RETRY: LfaStatus.BUSY,
    FfaError.ABORTED: LfaStatus.CRITICAL_ERROR,
}


def ffa_to_lfa(code: int) -> int:
    try:
        return int(_FFA_TO_LFA.get(FfaError(code), LfaStatus.ACTIVATION_FAILED))
    except ValueError:
        return int(LfaStatus.ACTIVATION_FAILED)


class SpmdLspActivator(SpActivator):
    """Live activation of the variable SP through the SPMC (no holding pen, no reset)."""

    def __init__(self, component: Component, co: Collaborators, spmc: Spmc, sp_id: int,
                 note: Callable[[int, str, int], None]) -> None:
        super().__init__(component, co)
        self.spmc = spmc
        self.sp_id = sp_id
        self.note = note  # (cpu, text, status): a line in the SMC trace for an EL3-to-SPMC exchange

    async def activate(self, cpu: int, cid: int, entry_point: int, context_id: int) -> int | WarmReset:
        return await self._work(cpu, cid)  # x3/x4 are ignored; no rendezvous

    async def _work(self, cpu: int, cid: int) -> int:
        fault = await self.co.faults.hit(cid, "activate")
        if fault is not None and fault.call_again:
            return -Errno.EAGAIN
        if fault is not None and fault.status is not None:
            return int(fault.status)
        found = self.spmc.partition_info_regs(self.component.spec.guid)
        if not found:
            self.note(cpu, f"PARTITION_INFO_GET_REGS uuid {self.component.guid} -> FFA_ERROR INVALID_PARAMETERS",
                      FfaError.INVALID_PARAMETERS)
            return ffa_to_lfa(FfaError.INVALID_PARAMETERS)
        part = found[0]
        self.note(cpu, f"PARTITION_INFO_GET_REGS uuid {self.component.guid} -> SUCCESS id {part.id:#06x} "
                       f"contexts {part.contexts} properties {int(part.props):#x}", 0)
        if part.id != self.sp_id:
            return LfaStatus.COMPONENT_WRONG_STATE
        if part.contexts != 1 or not part.props & PartitionProps.LIVE_ACTIVATION \
                or part.props & PartitionProps.CPU_RENDEZVOUS:
            return LfaStatus.NOT_SUPPORTED
        status, why = self.spmc.live_activation_start(self.sp_id)
        self.note(cpu, f"live activation START sp {self.sp_id:#06x} -> "
                       f"{'SUCCESS' if status == 0 else 'FFA_ERROR ' + FfaError(status).name} ({why})", status)
        if status:
            self.co.recorder.reason(f"the SPMC refused START: {FfaError(status).name} ({why})")
            return ffa_to_lfa(status)
        await trio.sleep(self.component.spec.latencies.activate)  # the new image is copied and validated
        boot = await self.co.faults.hit(cid, "boot")
        image = self.component.loaded
        version = tuple(image.version) if image is not None else tuple(self.component.version)
        status, why = self.spmc.live_activation_finish(self.sp_id, version,
                                                       boot_fails=boot is not None and boot.status is not None)
        self.note(cpu, f"live activation FINISH sp {self.sp_id:#06x} -> "
                       f"{'SUCCESS' if status == 0 else 'FFA_ERROR ' + FfaError(status).name} ({why})", status)
        if status:
            self.co.recorder.reason(f"the new SP image did not start: {why}")
            return LfaStatus.CRITICAL_ERROR
        self.co.commit(cid)
        return 0
