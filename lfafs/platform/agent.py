"""The EL3 LFA agent: SMC handlers and the activation state machine.

A model of TF-A tip's services/std_svc/lfa/lfa_main.c (docs/smc-abi.md,
"The SMC ABI"). One global activation slot; PRIME, ACTIVATE and CANCEL
serialised by one lock (try-lock -> LFA_BUSY, except the blocking lock of a
normal ACTIVATE); the rendezvous policy latched by the first CPU of a round;
the cancel lock; pending cleared only by a successful round.

Each reply writes only the registers TF-A's SMC_RETn writes; the rest keep
the caller's values.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from lfafs.smccc import (
    INVALID_COMPONENT,
    LFA_CALL_AGAIN,
    LFA_FID_FIRST,
    LFA_FID_LAST,
    LFA_VERSION_1_0,
    ActivateFlags,
    Errno,
    Fid,
    InventoryFlags,
    LfaStatus,
    u64,
)


class PrimeStatus(enum.IntEnum):
    NONE = 0
    STARTED = 1
    COMPLETE = 2


@attrs.frozen
class WarmReset:
    """An activator's answer when every CPU resumes in NS instead of returning (BL31)."""

    entry_point: int
    context_id: int


class Activator(Protocol):
    """One component's activator ops (TF-A struct lfa_component_ops)."""

    may_reset_cpu: bool
    cpu_rendezvous_required: bool

    async def prime(self, component: int) -> int: ...

    async def activate(self, cpu: int, component: int, entry_point: int, context_id: int) -> int | WarmReset: ...

    def cancel(self, component: int) -> int | None: ...


class PlatformHooks(Protocol):
    """TF-A's plat_lfa_* hooks (include/plat/common/plat_lfa.h)."""

    def num_components(self) -> int: ...

    def uuid_regs(self, component: int) -> tuple[int, int]: ...

    def activator(self, component: int) -> Activator | None: ...

    def is_activation_pending(self, component: int) -> bool: ...

    def versions(self, component: int) -> tuple[int, int] | None: ...

    async def load_auth_image(self, component: int) -> int: ...

    async def notify_activate(self, component: int) -> int: ...

    def cancel(self, component: int) -> int: ...


@attrs.define
class CurrentActivation:
    """TF-A's current_activation."""

    component_id: int = INVALID_COMPONENT
    prime_status: PrimeStatus = PrimeStatus.NONE
    cpu_rendezvous: bool = False
    reset: bool = False


class Agent:
    """Dispatch of LFA SMCs for one platform."""

    def __init__(self, plat: PlatformHooks, running_cpus: Callable[[], int]) -> None:
        self.plat = plat
        self.running_cpus = running_cpus
        self.n = plat.num_components()
        self.pending = [False] * self.n
        self.current = CurrentActivation()
        self._lfa_lock = trio.Lock()
        self.in_progress = False
        self.skip_cpu_rendezvous = False
        self.users = 0
        self.failed = False
        self.cancel_locked = False
        self.resumed: dict[int, WarmReset] = {}  # CPUs that left ACTIVATE by a warm reset

    def table_changed(self) -> None:
        """The platform's component table changed (idle only): pending flags follow their index."""
        self.n = self.plat.num_components()
        self.pending = [False] * self.n

    def reset_activation(self) -> None:
        """lfa_reset_activation(): pending flags and the holding pen are untouched."""
        self.current = CurrentActivation()
        self.in_progress = False
        self.skip_cpu_rendezvous = False
        self.users = 0
        self.failed = False
        self.cancel_locked = False

    def _try_lock(self, x: list[int]) -> bool:
        """spin_trylock(lfa_lock): on contention the reply is LFA_BUSY in x0 only."""
        try:
            self._lfa_lock.acquire_nowait()
        except trio.WouldBlock:
            x[0] = u64(LfaStatus.BUSY)
            return False
        return True

    async def handle(self, cpu: int, x: list[int]) -> list[int]:
        """Handle one LFA SMC; ``x`` is x0..x5 as the caller set them, updated in place."""
        fid = x[0] & 0xFFFF_FFFF
        if fid == Fid.LFA_VERSION:
            x[0] = LFA_VERSION_1_0
        elif fid == Fid.LFA_FEATURES:
            # the whole 64-bit x1 must name an LFA call
            x[0] = 0 if LFA_FID_FIRST <= x[1] <= LFA_FID_LAST else u64(LfaStatus.NOT_SUPPORTED)
        elif fid == Fid.LFA_GET_INFO:
            self._get_info(x)
        elif fid == Fid.LFA_GET_INVENTORY:
            self._get_inventory(x)
        elif fid == Fid.LFA_PRIME:
            await self._prime(x)
        elif fid == Fid.LFA_ACTIVATE:
            await self._activate(cpu, x)
        elif fid == Fid.LFA_CANCEL:
            self._cancel(x)
        return x

    # -- discovery -------------------------------------------------------------

    def _get_info(self, x: list[int]) -> None:
        if x[1] != 0:  # "spec v1.0 limits it to zero": the whole 64 bits
            x[0] = u64(LfaStatus.INVALID_PARAMETERS)
            return
        x[0], x[1], x[2] = 0, self.n, 0

    def _get_inventory(self, x: list[int]) -> None:
        cid = x[1] & 0xFFFF_FFFF  # TF-A truncates fw_seq_id to 32 bits
        if cid >= self.n:
            x[0] = u64(LfaStatus.INVALID_PARAMETERS)
            return
        # The only place the agent sets a component pending (TF-A lfa_main.c).
        self.pending[cid] = self.plat.is_activation_pending(cid)
        act = self.plat.activator(cid)
        flags = InventoryFlags(0)
        if act is not None:
            flags |= InventoryFlags.ACTIVATION_CAPABLE
            if act.may_reset_cpu:
                flags |= InventoryFlags.MAY_RESET_CPU
            if not act.cpu_rendezvous_required:
                flags |= InventoryFlags.CPU_RENDEZVOUS_OPTIONAL
        if self.pending[cid]:
            flags |= InventoryFlags.ACTIVATION_PENDING
        x[0] = 0
        x[1], x[2] = self.plat.uuid_regs(cid)
        x[3] = int(flags)
        versions = self.plat.versions(cid)
        if versions is not None:  # lfafs addition, off with inventory_versions = false
            x[4], x[5] = versions

    # -- PRIME -----------------------------------------------------------------

    async def _prime(self, x: list[int]) -> None:
        if not self._try_lock(x):
            return
        try:
            status, call_again = await self._prime_locked(x[1] & 0xFFFF_FFFF)
        finally:
            self._lfa_lock.release()
        x[0] = u64(status)
        if status == LfaStatus.SUCCESS:
            x[1] = call_again  # on error only x0 is written

    async def _prime_locked(self, cid: int) -> tuple[int, int]:
        if cid >= self.n:
            return LfaStatus.INVALID_PARAMETERS, 0
        if not self.pending[cid]:
            return LfaStatus.WRONG_STATE, 0
        act = self.plat.activator(cid)
        if act is None:
            return LfaStatus.NOT_SUPPORTED, 0
        cur = self.current
        if cur.prime_status == PrimeStatus.STARTED and cur.component_id != cid:
            return LfaStatus.WRONG_STATE, 0
        if cur.prime_status == PrimeStatus.NONE:
            cur.component_id = cid
            cur.prime_status = PrimeStatus.STARTED
        rc = await self.plat.load_auth_image(cid)
        if rc == -Errno.EAGAIN:
            return LfaStatus.SUCCESS, LFA_CALL_AGAIN
        if rc == -Errno.EAUTH:
            return LfaStatus.AUTH_ERROR, 0
        if rc == -Errno.ENOMEM:
            return LfaStatus.NO_MEMORY, 0
        if rc != 0:
            return LfaStatus.DEVICE_ERROR, 0
        rc = await act.prime(cid)
        if rc != 0:
            return rc, 0  # returned as is, not translated
        # Latched only by a successful PRIME (TF-A lfa_main.c, lfa_prime()): reset is the
        # primed component's may_reset_cpu even when PRIME(d) runs over a COMPLETE c, so
        # PRIME(bl31), PRIME(rmm), ACTIVATE(bl31) activates BL31 without a warm reset.
        cur.cpu_rendezvous = True
        cur.prime_status = PrimeStatus.COMPLETE
        cur.reset = act.may_reset_cpu
        return LfaStatus.SUCCESS, 0

    # -- ACTIVATE ----------------------------------------------------------------

    async def _activate(self, cpu: int, x: list[int]) -> None:
        cid = x[1] & 0xFFFF_FFFF
        skip = bool(x[2] & ActivateFlags.SKIP_CPU_RENDEZVOUS)
        entry_point, context_id = x[3], x[4]
        if skip:
            if not self._try_lock(x):
                return
        else:
            await self._lfa_lock.acquire()
            if self.skip_cpu_rendezvous:
                self._lfa_lock.release()
                x[0] = u64(LfaStatus.BUSY)
                return
        locked = True
        try:
            status, call_again, locked = await self._activate_locked(cpu, cid, skip, entry_point, context_id)
        finally:
            if locked:
                self._lfa_lock.release()
        if isinstance(status, WarmReset):
            self.resumed[cpu] = status
            x[0] = status.context_id  # the CPU resumes in NS at entry_point with x0 = context id
            return
        x[0], x[1] = u64(status), call_again

    async def _activate_locked(self, cpu: int, cid: int, skip: bool, ep: int, ctx: int):
        """Returns (status, call_again, lock still held)."""
        if cid >= self.n or cid != self.current.component_id:
            return LfaStatus.INVALID_PARAMETERS, 0, True
        if not self.pending[cid] or self.current.prime_status != PrimeStatus.COMPLETE:
            return LfaStatus.COMPONENT_WRONG_STATE, 0, True
        act = self.plat.activator(cid)
        if act is None:
            return LfaStatus.NOT_SUPPORTED, 0, True
        first = not self.in_progress
        if first:
            self.failed = False
            self.current.cpu_rendezvous = act.cpu_rendezvous_required or not skip
            self.skip_cpu_rendezvous = False
            self.cancel_locked = False
        if skip:
            if act.cpu_rendezvous_required:
                return LfaStatus.INVALID_PARAMETERS, 0, True
            if not first and not self.skip_cpu_rendezvous:
                return LfaStatus.BUSY, 0, True
            self.skip_cpu_rendezvous = True
            self.current.cpu_rendezvous = False
        if first:
            if await self.plat.notify_activate(cid) != 0:
                return LfaStatus.ACTIVATION_FAILED, 0, True
            self.in_progress = True
        self.users += 1
        if self.users >= self.running_cpus():
            self.cancel_locked = True

        skip_round = self.skip_cpu_rendezvous
        if not skip_round:
            self._lfa_lock.release()  # a skip round keeps the lock for the whole activation
        try:
            rc = await act.activate(cpu, cid, ep, ctx)
        finally:
            if not skip_round:
                # Retake the lock even when the caller is being cancelled, so
                # that the caller's release always matches an acquire.
                with trio.CancelScope(shield=True):
                    await self._lfa_lock.acquire()
        if isinstance(rc, WarmReset):
            # The SMC never returns through the handler: nothing is unwound (TF-A).
            return rc, 0, True

        call_again = 0
        if rc == -Errno.EAGAIN:
            rc, call_again = LfaStatus.SUCCESS, LFA_CALL_AGAIN
        elif rc != 0:
            self.failed = True
        if self.users > 0:
            self.users -= 1
        if not call_again and self.users == 0:
            self.in_progress = False
            self.skip_cpu_rendezvous = False
            self.cancel_locked = False
            if not self.failed:
                self.pending[cid] = False
        return rc, call_again, True

    # -- CANCEL --------------------------------------------------------------------

    def _cancel(self, x: list[int]) -> None:
        if not self._try_lock(x):
            return
        try:
            x[0] = u64(self._cancel_locked(x[1] & 0xFFFF_FFFF))
        finally:
            self._lfa_lock.release()

    def _cancel_locked(self, cid: int) -> int:
        if cid >= self.n or cid != self.current.component_id:
            return LfaStatus.INVALID_PARAMETERS
        if self.in_progress and (self.cancel_locked or self.skip_cpu_rendezvous):
            return LfaStatus.BUSY
        act = self.plat.activator(cid)
        if act is not None and act.cancel(cid) not in (None, 0):
            return LfaStatus.BUSY
        if self.plat.cancel(cid) != 0:
            return LfaStatus.BUSY
        self.reset_activation()
        return LfaStatus.SUCCESS
