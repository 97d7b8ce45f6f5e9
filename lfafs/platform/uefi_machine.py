"""The machine's FF-A and UEFI side: SMCs with eight registers, the SPMD entry, and the UEFI stack's power-on.

A mixin of :class:`lfafs.platform.machine.Platform`, kept apart so machine.py
stays the LFA machine. It uses the Platform's CPUs (``_cpu_lock``,
``cpu_on``), its trace, its dispatch and its component table; at every
power-on it builds the UEFI side (uefi_stack.py), and it chooses the variable SP's
activator: the SPMD logical SP's (spmd_lsp.py).

Firmware SMCs at power-on run on CPU 0 with no clock and go to the trace's
``boot_records``; runtime services run on a CPU held for the whole call,
as Linux's efi_rts_wq runs one EFI call on one CPU with preemption off.
"""

from __future__ import annotations

from typing import NamedTuple

import trio

from lfafs.platform import uefi_stack
from lfafs.platform.activators import GenericActivator, make_activator
from lfafs.platform.ffa import FfaFn, fid32, fid64, is_ffa_fid
from lfafs.platform.plat_lfa import Component
from lfafs.platform.spmd_lsp import SpmdLspActivator
from lfafs.platform.trace import TraceText
from lfafs.platform.uboot import run_async
from lfafs.smccc import SMC_UNK, u64


class Regs8(NamedTuple):
    """x0..x7 of an SMC that uses them all (FF-A)."""

    x0: int
    x1: int
    x2: int
    x3: int
    x4: int
    x5: int
    x6: int
    x7: int


class UefiMachine:
    """SMCs with x0..x7, the SPMD's FF-A entry, and the UEFI stack of each boot."""

    async def smc8(self, fid: int, x1: int = 0, x2: int = 0, x3: int = 0, x4: int = 0, x5: int = 0, x6: int = 0,
                   x7: int = 0, *, cpu: int = 0, world: str = "ns") -> Regs8:
        """An SMC with x0..x7 in and out (SMCCC v1.2, as FF-A uses them); otherwise as :meth:`smc`."""
        return Regs8(*await self._smc_entry(cpu, world, [fid, x1, x2, x3, x4, x5, x6, x7]))

    # -- UEFI over FF-A (uefi_stack.py): the SPMD/SPMC, the variable SP, U-Boot ----------------------

    def _power_on_uefi(self) -> None:
        """Boot the UEFI side: the SP from the secure flash, then U-Boot up to ExitBootServices."""
        self.uefi: uefi_stack.UefiStack | None = None
        self.trace.boot_records = []
        if self.profile.uefi.enabled:
            self.uefi = uefi_stack.UefiStack(self.profile, self.secure_flash, self.components, self._boot_smc,
                                             self._runtime_call)
            self.uefi.boot()

    def _activator_for(self, c: Component) -> GenericActivator | None:
        """The variable SP's component is activated through the SPMD logical SP and the SPMC of this
        boot; every other component as its kind says (activators.make_activator)."""
        if self.uefi is not None and c.spec.guid == self.uefi.sp_component_guid and c.spec.activation_capable:
            return SpmdLspActivator(c, self._collaborators, self.uefi.spmc, self.uefi.sp_id, self._note_el3)
        return make_activator(c, self._collaborators)

    async def _ffa(self, world: str, x: list[int]) -> str | TraceText:
        """FF-A through the SPMD to the SPMC; a direct request waits while its SP works on it."""
        if self.uefi is None:
            x[:] = [fid32(FfaFn.ERROR), 0, 0xFFFF_FFFF, 0, 0, 0, 0, 0]  # NOT_SUPPORTED: no SPMC
            return "FF-A with no SPMC -> FFA_ERROR NOT_SUPPORTED"
        text, pending = self.uefi.spmc.handle(world, x)
        if pending is not None:
            if pending.partition.latency:
                await trio.sleep(pending.partition.latency)
            text += self.uefi.spmc.deliver(pending)
        return text

    def _boot_smc(self, regs: list[int]) -> list[int]:
        """An SMC of the firmware at power-on on CPU 0: no other CPU runs, no time passes."""
        x = [u64(r) for r in regs]
        fid, args = x[0], tuple(x[1:5])
        text, pending = self.uefi.spmc.handle("ns", x) if is_ffa_fid(fid) else ("", None)
        if not is_ffa_fid(fid):
            x[0] = SMC_UNK
        if pending is not None:
            text += self.uefi.spmc.deliver(pending)
        self.trace.add(0, "ns", fid, args, tuple(x[:6]), 0.0, 0.0, decoded=text, boot=True)
        return x

    async def _runtime_call(self, gen):
        """Run a UEFI runtime service for the OS on one CPU, held for the whole call (efi_rts_wq)."""
        online = [c for c in range(self.ncpus) if self.cpu_on[c]]
        for cpu in online:
            try:
                self._cpu_lock[cpu].acquire_nowait()
                break
            except trio.WouldBlock:
                continue
        else:
            cpu = online[0]
            await self._cpu_lock[cpu].acquire()
        try:
            async def smc(regs: list[int]) -> list[int]:
                x = [u64(r) for r in regs]
                await self._smc_on_cpu(cpu, "ns", x)
                # Other CPUs run between two SMCs of one call; when no other task is ready to run,
                # a scheduling point would only cost time (an I/O-woken task runs after the call,
                # as if it had come a little later).
                if trio.lowlevel.current_statistics().tasks_runnable:
                    await trio.lowlevel.checkpoint()
                return x
            return await run_async(gen, smc)
        finally:
            self._cpu_lock[cpu].release()

    def _note_el3(self, cpu: int, text: str, status: int) -> None:
        """An EL3-to-SPMC exchange of the SPMD logical SP, in the trace as a decoded line."""
        now = trio.current_time()
        self.trace.add(cpu, "el3", fid64(FfaFn.MSG_SEND_DIRECT_REQ), (0, 0, 0, 0), (u64(status), 0, 0, 0, 0, 0),
                       now, 0.0, decoded=text)


__all__ = ["Regs8", "UefiMachine"]
