"""Fault injection: make a component's activation fail, call again, or take time.

Faults act where the real platform or activator can: a platform hook
returns an error, an activator op returns a status, something is slow.
Stages, in the order an activation meets them:

    load      plat_lfa_load_auth_image at PRIME   (TF-A maps -EAUTH, -ENOMEM, other)
    prime     the activator's prime op            (status returned as is)
    notify    plat_lfa_notify_activate            (any failure -> LFA_ACTIVATION_FAILED)
    activate  the activator's activate op         (status returned as is)
    boot      the new image boots                 (failure -> LFA_ACTIVATION_FAILED)

A status a real TF-A cannot return at a stage is refused, so a test never
sees behaviour hardware cannot produce.
"""

from __future__ import annotations

import attrs
import trio

from lfafs.smccc import LfaStatus

STAGES = ("load", "prime", "notify", "activate", "boot")

# What TF-A can report from each stage (docs/smc-abi.md, 'Fault injection').
_ALLOWED = {
    "load": {LfaStatus.AUTH_ERROR, LfaStatus.NO_MEMORY, LfaStatus.DEVICE_ERROR},
    "prime": set(LfaStatus) - {LfaStatus.SUCCESS},
    "notify": {LfaStatus.ACTIVATION_FAILED},
    "activate": set(LfaStatus) - {LfaStatus.SUCCESS},
    "boot": {LfaStatus.ACTIVATION_FAILED},
}
_CALL_AGAIN = ("load", "activate")  # TF-A's only call-again paths


class FaultError(ValueError):
    """A fault that cannot be injected, with what to do instead."""


@attrs.define
class Fault:
    stage: str
    status: LfaStatus | None = None
    call_again: int = 0  # remaining "call again" replies
    latency: float = 0.0
    once: bool = False

    def describe(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"LFA_{self.status.name}")
        if self.call_again:
            parts.append(f"call again x{self.call_again}")
        if self.latency:
            parts.append(f"+{self.latency:g}s")
        return f"{self.stage}: {', '.join(parts) or 'nothing'}{' (once)' if self.once else ''}"


def make_fault(stage: str, *, status: LfaStatus | str | int | None = None, call_again: int = 0,
               latency: float = 0.0, once: bool = False) -> Fault:
    if stage not in STAGES:
        raise FaultError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if status is not None and not isinstance(status, LfaStatus):
        status = LfaStatus.parse(str(status)) if isinstance(status, str) else LfaStatus(status)
    if status is not None and status not in _ALLOWED[stage]:
        allowed = ", ".join(f"LFA_{s.name}" for s in sorted(_ALLOWED[stage]))
        raise FaultError(f"TF-A cannot return LFA_{status.name} from the {stage} stage; it can return {allowed}")
    if isinstance(call_again, bool) or not isinstance(call_again, int) or call_again < 0:
        raise FaultError(f"call_again must be a count >= 0, got {call_again!r}")
    if call_again and stage not in _CALL_AGAIN:
        raise FaultError(f"only the {' and '.join(_CALL_AGAIN)} stages can ask to call again (TF-A)")
    if call_again and status is not None:
        raise FaultError("a fault is either a status or call-again, not both")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 3600:
        raise FaultError(f"latency must be seconds in [0, 3600], got {latency!r}")
    if status is None and not call_again and not latency:
        raise FaultError("a fault needs a status, a call-again count or a latency")
    return Fault(stage=stage, status=status, call_again=call_again, latency=float(latency), once=once)


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
