"""A firmware component as a profile, a saved flash or ``lfafs ctl component add`` describes it.

``ComponentSpec``'s validators and :func:`component_spec` are the one
definition of a valid component: the TOML loader (profile.py), the flash
restore (plat_lfa.py) and the control command all go through them, so they
accept exactly the same things. Errors are ``SpecError(field, problem)``;
callers add where the component came from.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from lfafs.smccc import ActivatorKind, Version

ACTIVATORS = ("none", *(k.value for k in ActivatorKind))
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class SpecError(ValueError):
    """A component description that cannot be used: ``field`` and what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# Defaults per activator kind: (may_reset_cpu, cpu_rendezvous required), as TF-A's activators
# declare them (docs/smc-abi.md, 'Activators').
_KIND_DEFAULTS = {
    "none": (False, False),
    "generic": (False, True),
    "bl31": (True, True),
    "rmm": (False, True),
    "sp": (False, False),
}


def _seconds(field: str):
    def check(_inst, _attr, value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
            raise SpecError(f"latency.{field}", f"expected seconds in [0, 3600], got {value!r}")
    return check


@attrs.frozen
class Latencies:
    """Modelled time, in seconds, of the slow parts of an activation."""

    load: float = attrs.field(default=0.0, validator=_seconds("load"))  # platform load and auth at PRIME
    prime: float = attrs.field(default=0.0, validator=_seconds("prime"))
    activate: float = attrs.field(default=0.0, validator=_seconds("activate"))


def _check_name(_inst, _attr, name) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError("name", f"{name!r} must be 1-32 of a-z 0-9 _ -, starting with a letter or digit")


def _check_activator(_inst, _attr, activator) -> None:
    if activator not in ACTIVATORS:
        raise SpecError("activator", f"{activator!r} is not one of {', '.join(ACTIVATORS)}")


def _check_bool(field: str):
    def check(_inst, _attr, value) -> None:
        if not isinstance(value, bool):
            raise SpecError(field, f"expected true or false, got {value!r}")
    return check


def _to_version(value: object) -> Version:
    try:
        return Version.parse(value)
    except ValueError as e:
        raise SpecError("version", str(e)) from None


def _to_guid(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise SpecError("guid", f"expected a GUID string, got {value!r}")
    try:
        return uuid.UUID(value)
    except ValueError as e:
        raise SpecError("guid", f"{value!r}: {e}") from None


@attrs.frozen
class ComponentSpec:
    """One LFA component as a profile, a saved flash or ``ctl component add`` describes it.

    The validators are the single definition of a valid component: the
    TOML loader, the flash restore and the control command all build one
    through them (or through :func:`component_spec`).
    """

    name: str = attrs.field(validator=_check_name)
    guid: uuid.UUID = attrs.field(converter=_to_guid)
    activator: str = attrs.field(validator=_check_activator)
    version: Version = attrs.field(converter=_to_version)
    may_reset_cpu: bool = attrs.field(validator=_check_bool("may_reset_cpu"))
    cpu_rendezvous_required: bool = attrs.field(validator=_check_bool("cpu_rendezvous"))
    latencies: Latencies = Latencies()

    def __attrs_post_init__(self) -> None:
        if self.activator == "none" and self.may_reset_cpu:
            raise SpecError("activator", "a component without an activator has no may_reset_cpu or cpu_rendezvous")
        if self.activator in (ActivatorKind.RMM, ActivatorKind.BL31) and not self.cpu_rendezvous_required:
            raise SpecError("cpu_rendezvous", f"the {self.activator} activator needs the CPU rendezvous")

    @property
    def activation_capable(self) -> bool:
        return self.activator != "none"


COMPONENT_FIELDS = ("name", "guid", "activator", "version", "may_reset_cpu", "cpu_rendezvous", "latency")


def component_spec(raw: Mapping[str, Any]) -> ComponentSpec:
    """A component from a table of the profile's ``[[component]]`` form; SpecError names the field."""
    if not isinstance(raw, Mapping):
        raise SpecError("component", "expected a table")
    for key in raw:
        if key not in COMPONENT_FIELDS:
            raise SpecError(str(key), f"unknown field (known: {', '.join(sorted(COMPONENT_FIELDS))})")
    for key in ("name", "guid", "version"):
        if key not in raw:
            raise SpecError(key, "is required")
        if not isinstance(raw[key], str):
            raise SpecError(key, f"expected a string, got {raw[key]!r}")
    activator = raw.get("activator", "generic")
    if not isinstance(activator, str):
        raise SpecError("activator", f"expected a string, got {activator!r}")
    _check_activator(None, None, activator)
    reset_default, rendezvous_default = _KIND_DEFAULTS[activator]
    rendezvous = raw.get("cpu_rendezvous", "required" if rendezvous_default else "optional")
    if rendezvous not in ("required", "optional"):
        raise SpecError("cpu_rendezvous", f"{rendezvous!r} is not 'required' or 'optional'")
    if activator == "none" and "cpu_rendezvous" in raw:
        raise SpecError("activator", "a component without an activator has no may_reset_cpu or cpu_rendezvous")
    latency = raw.get("latency", {})
    if not isinstance(latency, Mapping):
        raise SpecError("latency", f"expected a table, got {latency!r}")
    for key in latency:
        if key not in ("load", "prime", "activate"):
            raise SpecError(f"latency.{key}", "unknown stage (load, prime, activate)")
    lat = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in latency.items()}
    return ComponentSpec(name=raw["name"], guid=raw["guid"], activator=activator, version=raw["version"],
                         may_reset_cpu=raw.get("may_reset_cpu", reset_default),
                         cpu_rendezvous_required=rendezvous == "required", latencies=Latencies(**lat))
