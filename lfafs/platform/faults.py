"""Fault injection: make a component's activation fail, call again, or take time.

Faults act where the real platform or activator can: a platform hook
returns an error, an activator op returns a status, something is slow.
Stages, in the order an activation meets them:

    load      plat_lfa_load_auth_image at PRIME   (TF-A maps -EAUTH, -ENOMEM, other)
    prime     the activator's prime op            (status returned as is)
    notify    plat_lfa_notify_activate            (any failure -> LFA_ACTIVATION_FAILED)
    activate  the activator's activate op         (status returned as is)
    boot      the new image boots                 (failure -> LFA_ACTIVATION_FAILED)

A status a real TF-A cannot return at a stage, or that the TF-A activator
of the component cannot return, is refused, so a test never sees
behaviour hardware cannot produce; a fault explicitly "beyond TF-A" may
use whatever DEN0147 allows, and says so.
"""

from __future__ import annotations

import attrs
import trio

from lfafs.smccc import LfaStatus

STAGES = ("load", "prime", "notify", "activate", "boot")

_ALL = frozenset(LfaStatus) - {LfaStatus.SUCCESS}

# What TF-A can report from each stage (docs/smc-abi.md, 'Fault injection').
_ALLOWED = {
    "load": {LfaStatus.AUTH_ERROR, LfaStatus.NO_MEMORY, LfaStatus.DEVICE_ERROR},
    "prime": _ALL,
    "notify": {LfaStatus.ACTIVATION_FAILED},
    "activate": _ALL,
    "boot": {LfaStatus.ACTIVATION_FAILED},
}
# What each of TF-A's activators can return from ACTIVATE: TF-A
# services/std_svc/rmmd/rmmd_rmm_lfa.c maps every failure to -11;
# services/std_svc/lfa/bl31_lfa.c returns -5 or -11; an SP's activation
# (plat/arm/board/fvp/fvp_spmd_logical_sp.c through spmd_logical_sp.c,
# convert_ffa_error_code_to_lfa()) returns the FF-A error converted, and a
# new SP image that fails (Hafnium src/ffa/spmc/lifecycle_msg.c answers
# FFA_ABORTED) gives -5. None of them asks to call again.
_BY_KIND = {
    "rmm": {"activate": {LfaStatus.ACTIVATION_FAILED}, "boot": {LfaStatus.ACTIVATION_FAILED}},
    "bl31": {"activate": {LfaStatus.CRITICAL_ERROR, LfaStatus.ACTIVATION_FAILED},
             "boot": {LfaStatus.ACTIVATION_FAILED}},
    "sp": {"activate": {LfaStatus.NOT_SUPPORTED, LfaStatus.BUSY, LfaStatus.NO_MEMORY, LfaStatus.CRITICAL_ERROR,
                        LfaStatus.DEVICE_ERROR, LfaStatus.INVALID_PARAMETERS, LfaStatus.COMPONENT_WRONG_STATE,
                        LfaStatus.ACTIVATION_FAILED},
           "boot": {LfaStatus.CRITICAL_ERROR}},
}
_CALL_AGAIN = ("load", "activate")  # the agent's only call-again paths (TF-A lfa_main.c)
BEYOND_TF_A = "beyond TF-A"


class FaultError(ValueError):
    """A fault that cannot be injected, with what to do instead."""


@attrs.define
class Fault:
    stage: str
    status: LfaStatus | None = None
    call_again: int = 0  # remaining "call again" replies
    latency: float = 0.0
    once: bool = False
    beyond_tf_a: bool = False  # what DEN0147 allows but TF-A's activator for this kind cannot return

    def describe(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"LFA_{self.status.name}")
        if self.call_again:
            parts.append(f"call again x{self.call_again}")
        if self.latency:
            parts.append(f"+{self.latency:g}s")
        if self.beyond_tf_a:
            parts.append(BEYOND_TF_A)
        return f"{self.stage}: {', '.join(parts) or 'nothing'}{' (once)' if self.once else ''}"


def allowed(stage: str, kind: str = "generic") -> frozenset[LfaStatus]:
    """The statuses TF-A can report from ``stage`` of a component whose activator is ``kind``."""
    return frozenset(_BY_KIND.get(kind, {}).get(stage, _ALLOWED[stage]))


def may_call_again(stage: str, kind: str = "generic") -> bool:
    """Whether TF-A can answer call-again from ``stage``: the load hook, and no TF-A activator."""
    return stage == "load" or (stage == "activate" and kind not in _BY_KIND)


def make_fault(stage: str, *, kind: str = "generic", status: LfaStatus | str | int | None = None,
               call_again: int = 0, latency: float = 0.0, once: bool = False, beyond_tf_a: bool = False) -> Fault:
    """A fault at ``stage`` of a component whose activator is ``kind``.

    Refused unless TF-A's code for that component could produce it;
    ``beyond_tf_a`` lifts the activator's limits to what DEN0147 allows
    (any status, call-again at ACTIVATE), and the fault says so. The
    ``generic`` kind is not a TF-A activator: it answers what DEN0147 allows.
    """
    if stage not in STAGES:
        raise FaultError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if status is not None and not isinstance(status, LfaStatus):
        try:
            status = LfaStatus.parse(str(status)) if isinstance(status, str) else LfaStatus(status)
        except ValueError as e:
            raise FaultError(str(e)) from None
    tf_a = _ALLOWED[stage] if beyond_tf_a else allowed(stage, kind)
    if status is not None and status not in tf_a:
        names = ", ".join(f"LFA_{s.name}" for s in sorted(tf_a))
        hint = "" if beyond_tf_a or stage in ("load", "notify") else " (or ask for a fault beyond TF-A)"
        raise FaultError(f"TF-A cannot return LFA_{status.name} from the {stage} stage of a {kind} component; "
                         f"it can return {names}{hint}")
    if isinstance(call_again, bool) or not isinstance(call_again, int) or call_again < 0:
        raise FaultError(f"call_again must be a count >= 0, got {call_again!r}")
    if call_again and stage not in _CALL_AGAIN:
        raise FaultError(f"only the {' and '.join(_CALL_AGAIN)} stages can ask to call again (TF-A)")
    if call_again and not beyond_tf_a and not may_call_again(stage, kind):
        raise FaultError(f"TF-A's {kind} activator never asks to call again (ask for a fault beyond TF-A)")
    if call_again and status is not None:
        raise FaultError("a fault is either a status or call-again, not both")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 3600:
        raise FaultError(f"latency must be seconds in [0, 3600], got {latency!r}")
    if status is None and not call_again and not latency:
        raise FaultError("a fault needs a status, a call-again count or a latency")
    return Fault(stage=stage, status=status, call_again=call_again, latency=float(latency), once=once,
                 beyond_tf_a=bool(beyond_tf_a))


@attrs.define
class FaultTable:
    """At most one fault per (component, stage)."""

    _faults: dict[tuple[int, str], Fault] = attrs.field(factory=dict)

    def set(self, component: int, fault: Fault) -> None:
        self._faults[(component, fault.stage)] = fault

    def clear(self, component: int | None = None, stage: str | None = None) -> None:
        for key in list(self._faults):
            if (component is None or key[0] == component) and (stage is None or key[1] == stage):
                del self._faults[key]

    def get(self, component: int, stage: str) -> Fault | None:
        return self._faults.get((component, stage))

    def listing(self, component: int) -> list[Fault]:
        return [f for (c, _), f in sorted(self._faults.items()) if c == component]

    def trigger(self, component: int, stage: str) -> Fault | None:
        """The fault to apply now at ``stage``, consuming it as its kind says."""
        fault = self._faults.get((component, stage))
        if fault is None:
            return None
        if fault.call_again:
            fault.call_again -= 1
            if fault.call_again == 0:
                del self._faults[(component, stage)]
            return Fault(stage=stage, call_again=1, latency=fault.latency)
        if fault.once:
            del self._faults[(component, stage)]
        return fault

    async def hit(self, component: int, stage: str) -> Fault | None:
        """An activation reaches ``stage``: the fault that applies, after its latency."""
        fault = self.trigger(component, stage)
        if fault is not None and fault.latency:
            await trio.sleep(fault.latency)
        return fault
