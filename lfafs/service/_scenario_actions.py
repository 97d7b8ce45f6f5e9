"""What a scenario is made of, and how each part acts on a platform (scenario.py loads them).

An ``Action`` is one control command with checked arguments and where it
was written; an ``Event`` is an action with its trigger. ``check_action``
asks whether a platform would accept an action without changing it;
``apply_action`` applies it through the Platform's public API;
``ScenarioRun`` runs a scenario's events on a running platform: the
``before_prime`` ones from the driver's conduit, the ``after`` ones on the
Trio clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from lfafs.platform import FaultError, Platform, PlatformError, uefi_setup
from lfafs.platform.faults import make_fault
from lfafs.smccc import Fid, LfaStatus, Version


class ScenarioError(ValueError):
    """A scenario that cannot be used: where (file:line: field, or the flag) and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@attrs.frozen
class Where:
    """Where an entry came from, for error messages: a file, line and field, or a flag."""

    source: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line else self.source
        return f"{at}: {self.field}" if self.field else at

    def error(self, problem: str, field: str | None = None, line: int | None = None) -> ScenarioError:
        name = f"{self.field}.{field}" if field and self.field else field or self.field
        sub = Where(self.source, line or self.line, name)
        return ScenarioError(str(sub), problem)


@attrs.frozen
class Action:
    """One control command with checked arguments (``image`` holds bytes, read from its file)."""

    command: str
    args: dict[str, Any]
    where: Where
    fields: dict[str, Where] = attrs.field(factory=dict)  # where each argument was given

    def error(self, problem: str, field: str | None = None) -> ScenarioError:
        if field in self.fields:
            return ScenarioError(str(self.fields[field]), problem)
        return self.where.error(problem, field)

    def describe(self) -> str:
        shown = {k: ("<image>" if k == "image" else v) for k, v in self.args.items()}
        return " ".join([self.command, *(f"{k}={v}" for k, v in shown.items())])


@attrs.frozen
class Event:
    """An action at ``after`` seconds from the mount's start, or before the ``before_prime``-th PRIME."""

    action: Action
    after: float | None = None
    before_prime: int | None = None

    @property
    def component(self) -> str | None:
        return self.action.args.get("component")


def _guard(action: Action, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except (PlatformError, FaultError, ValueError) as e:
        if isinstance(e, ScenarioError):
            raise
        raise action.where.error(str(e)) from None


def _version(action: Action) -> Version | None:
    text = action.args.get("version")
    if text is None:
        return None
    try:
        return Version.parse(text)
    except ValueError as e:
        raise action.error(str(e), "version") from None


def _fault_args(action: Action) -> dict:
    a = action.args
    status = a.get("status")
    try:
        parsed = LfaStatus.parse(status) if status is not None else None
    except ValueError as e:
        raise action.error(str(e), "status") from None
    return {"status": parsed, "call_again": a.get("call_again", 0), "latency": float(a.get("latency", 0.0)),
            "once": a.get("once", False), "beyond_tf_a": a.get("beyond_tf_a", False)}


def check_action(platform: Platform, action: Action) -> None:
    """Would ``action`` be accepted by ``platform``? Checked without changing it."""
    a = action.args
    if "component" in a:
        try:
            c = platform.component(a["component"])
        except PlatformError as e:
            raise action.error(str(e), "component") from None
    if action.command == "stage":
        _version(action)
    elif action.command == "fail":
        try:
            make_fault(a["at"], kind=c.kind, **_fault_args(action))
        except FaultError as e:
            field = next((k for k in ("status", "call_again", "latency") if k in a), "at")
            raise action.error(str(e), field) from None
    elif action.command == "cpu" and not 0 <= a["cpu"] < platform.ncpus:
        raise action.error(f"no CPU {a['cpu']}: this platform has CPUs 0..{platform.ncpus - 1}", "cpu")
    elif action.command in ("var-set", "var-delete"):
        for field, parse in (("guid", uefi_setup.parse_guid), ("attributes", uefi_setup.parse_attributes),
                             ("data", uefi_setup.parse_data)):
            if field in a:
                try:
                    parse(a[field])
                except PlatformError as e:
                    raise action.error(str(e), field) from None
        if getattr(platform, "uefi", None) is None:
            raise action.error("this platform boots without UEFI ([uefi] configuration = \"none\"): no variables")


def _set_variable(platform: Platform, a: dict) -> None:
    """A ``var-set`` entry (scenario [[variable]]): SetVariable as the firmware makes it (uefi_setup.py)."""
    uefi_setup.set_variable(platform, a["name"], uefi_setup.parse_guid(a.get("guid")),
                            uefi_setup.parse_attributes(a.get("attributes")), uefi_setup.parse_data(a["data"]))


def apply_action(platform: Platform, action: Action) -> None:
    """The synchronous actions, through the Platform's public API."""
    a = action.args
    if action.command == "stage":
        platform.stage(a["component"], _version(action), a.get("image"))
    elif action.command == "unstage":
        platform.unstage(a["component"])
    elif action.command == "fail":
        check_action(platform, action)
        platform.inject(a["component"], a["at"], **_fault_args(action))
    elif action.command == "clear-faults":
        platform.clear_faults(a.get("component"), a.get("at"))
    elif action.command == "cpu":
        platform.power(a["cpu"], a["on"])
    elif action.command == "reset":
        platform.reset()
    elif action.command == "var-set":
        _set_variable(platform, a)
    elif action.command == "var-delete":
        uefi_setup.delete(platform, a["name"], uefi_setup.parse_guid(a.get("guid")))
    elif action.command == "efi-fail":
        uefi_setup.inject(platform, a["fault"], count=a.get("count"), ffa_error=a.get("ffa_error", "BUSY"),
                          mm_return=a.get("mm_return", "NO_MEMORY"))
    elif action.command == "efi-clear-faults":
        uefi_setup.clear(platform)
    else:
        raise AssertionError(action.command)


class ScenarioRun:
    """A scenario's events on a running platform: PRIME-counted ones and timed ones."""

    def __init__(self, events: Sequence[Event], platform: Platform, log: Callable[[str], None]) -> None:
        self.events = tuple(events)
        self.platform = platform
        self.log = log
        self.primes: dict[str, int] = {}  # LFA_PRIME calls seen, per component name and "*" for all
        self._waiting = [e for e in self.events if e.before_prime is not None]

    def watch(self, conduit):
        """The driver's conduit, counting its LFA_PRIME calls to run ``before_prime`` events."""
        run = self

        class _Counting:
            async def smc(self, cpu: int, fid: int, x1: int = 0, x2: int = 0, x3: int = 0,
                          x4: int = 0) -> Sequence[int]:
                if fid == Fid.LFA_PRIME:
                    run._before_prime(x1)
                return await conduit.smc(cpu, fid, x1, x2, x3, x4)

            def online_cpus(self) -> list[int]:
                return conduit.online_cpus()

            def hold(self, cpu: int):
                return conduit.hold(cpu)  # stop_machine's ACTIVATEs: no PRIME goes through a held CPU

        return _Counting() if self._waiting else conduit

    def _before_prime(self, index: int) -> None:
        name = self.platform.components[index].name if 0 <= index < len(self.platform.components) else None
        for key in ("*", name):
            self.primes[key] = self.primes.get(key, 0) + 1
        for event in list(self._waiting):
            c = event.component
            seen = self.primes.get("*") if c is None else self._primes_of(c)
            if seen == event.before_prime:
                self._waiting.remove(event)
                self._run_sync(event, f"before PRIME #{event.before_prime}")

    def _primes_of(self, component: str) -> int:
        try:
            return self.primes.get(self.platform.component(component).name, 0)
        except PlatformError:
            return 0

    def _run_sync(self, event: Event, when: str) -> None:
        try:
            apply_action(self.platform, event.action)
        except (PlatformError, FaultError, ValueError) as e:
            self.log(f"scenario {event.action.where}: {when}: {event.action.describe()} failed: {e}")
        else:
            self.log(f"scenario {event.action.where}: {when}: {event.action.describe()}")

    async def timed(self, driver, efi=None) -> None:
        """Run the ``after`` events in time order, on the Trio clock from now.

        ``efi`` (service/efi_boot.EfiKernel) boots the kernel's EFI side again after a ``reset``.
        """
        t0 = trio.current_time()
        for event in sorted((e for e in self.events if e.after is not None), key=lambda e: e.after):
            await trio.sleep_until(t0 + event.after)
            when = f"t={event.after:g}s"
            if event.action.command == "notify":
                before = len(self.platform.reports)
                await driver.notify()
                done = ", ".join(f"{r.component} -> {r.to_version} status {r.status}"
                                 for r in self.platform.reports[before:]) or "nothing activated"
                self.log(f"scenario {event.action.where}: {when}: notify: {done}")
                continue
            self._run_sync(event, when)
            if event.action.command == "reset":
                await driver.update_fw_images_tree()
                if efi is not None:
                    await efi.reboot()
