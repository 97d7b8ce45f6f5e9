"""Platform profiles: TOML files that describe an emulated machine.

A profile names its CPUs, DRAM, RMM configuration and LFA components. It may
start from another profile (``base = "fvp"``) and add or replace components
by name. Every error names the file, the field and what is wrong.
"""

from __future__ import annotations

import importlib.resources
import pathlib
import re
import tomllib
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

ACTIVATORS = ("none", "generic", "bl31", "rmm", "sp")
GB = 1 << 30
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ProfileError(ValueError):
    """A profile that cannot be used: ``source``, ``field`` and what is wrong."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


def parse_version(text: object) -> tuple[int, int]:
    """'1.2' or (1, 2) -> (1, 2); each part fits 32 bits."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        major, minor = text
    elif isinstance(text, str) and re.fullmatch(r"\d+\.\d+", text.strip()):
        major, minor = (int(p) for p in text.strip().split("."))
    else:
        raise ValueError(f"expected a version MAJOR.MINOR, got {text!r}")
    if not all(isinstance(p, int) and 0 <= p < 1 << 32 for p in (major, minor)):
        raise ValueError(f"version parts must be integers below 2**32, got {text!r}")
    return int(major), int(minor)


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError(f"expected a size in bytes or like '2G', got {value!r}")


@attrs.frozen
class Latencies:
    """Modelled time, in seconds, of the slow parts of an activation."""

    load: float = 0.0  # platform load and authentication at PRIME
    prime: float = 0.0
    activate: float = 0.0


@attrs.frozen
class ComponentSpec:
    name: str
    guid: uuid.UUID
    activator: str
    version: tuple[int, int]
    may_reset_cpu: bool
    cpu_rendezvous_required: bool
    latencies: Latencies = Latencies()

    @property
    def activation_capable(self) -> bool:
        return self.activator != "none"


@attrs.frozen
class RmmSpec:
    va_pool_size: int
    compat_reserve_mem: bool
    base: int
    payload_size: int
    limit: int
    version: tuple[int, int]

    @property
    def bank_size(self) -> int:
        return self.payload_size // 2

    @property
    def payload_limit(self) -> int:
        return self.base + self.payload_size


@attrs.frozen
class Profile:
    name: str
    source: str
    description: str
    cpus: int
    dram_base: int
    dram_size: int
    inventory_versions: bool
    auth_key: bytes
    rmm: RmmSpec
    components: tuple[ComponentSpec, ...]

    def component(self, key: str) -> ComponentSpec:
        for c in self.components:
            if c.name == key or str(c.guid) == key.lower():
                return c
        raise KeyError(key)


# Defaults per activator kind (TF-A activator ops, docs/smc-abi.md 3.3).
_KIND_DEFAULTS = {
    "none": (False, False),
    "generic": (False, True),
    "bl31": (True, True),
    "rmm": (False, True),
    "sp": (False, False),
}


def embedded_names() -> list[str]:
    files = importlib.resources.files("lfafs.platform.profiles")
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str | pathlib.Path) -> tuple[str, dict[str, Any]]:
    path = pathlib.Path(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in embedded_names():
        res = importlib.resources.files("lfafs.platform.profiles") / f"{name_or_path}.toml"
        source, text = f"<embedded {name_or_path}>", res.read_text()
    elif path.is_file():
        source = str(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ProfileError(source, "file", f"cannot be read: {e.strerror}") from None
    else:
        raise ProfileError(str(name_or_path), "profile",
                           f"no such file, and not an embedded profile ({', '.join(embedded_names())})")
    try:
        return source, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(source, "toml", str(e)) from None


def load_profile(name_or_path: str | pathlib.Path = "fvp") -> Profile:
    """Load an embedded profile by name, or a TOML file by path."""
    source, data = _read(name_or_path)
    return profile_from_dict(data, source)


def _get(data: Mapping[str, Any], key: str, source: str, field: str, kind: type | tuple, default=attrs.NOTHING):
    if key not in data:
        if default is attrs.NOTHING:
            raise ProfileError(source, field, "is required")
        return default
    value = data[key]
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProfileError(source, field, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProfileError(source, field, f"expected {name}, got {value!r}")
    return value


def _convert(source: str, field: str, fn, value):
    try:
        return fn(value)
    except ValueError as e:
        raise ProfileError(source, field, str(e)) from None


def _component(raw: Any, source: str, where: str) -> ComponentSpec:
    if not isinstance(raw, dict):
        raise ProfileError(source, where, "expected a table")
    known = {"name", "guid", "activator", "version", "may_reset_cpu", "cpu_rendezvous", "latency"}
    for key in raw:
        if key not in known:
            raise ProfileError(source, f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
    name = _get(raw, "name", source, f"{where}.name", str)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        raise ProfileError(source, f"{where}.name", f"{name!r} must be 1-32 of a-z 0-9 _ -, starting with a letter or digit")
    guid_text = _get(raw, "guid", source, f"{where}.guid", str)
    guid = _convert(source, f"{where}.guid", uuid.UUID, guid_text)
    activator = _get(raw, "activator", source, f"{where}.activator", str, "generic")
    if activator not in ACTIVATORS:
        raise ProfileError(source, f"{where}.activator", f"{activator!r} is not one of {', '.join(ACTIVATORS)}")
    version = _convert(source, f"{where}.version", parse_version, _get(raw, "version", source, f"{where}.version", str))
    reset_default, rendezvous_default = _KIND_DEFAULTS[activator]
    may_reset = _get(raw, "may_reset_cpu", source, f"{where}.may_reset_cpu", bool, reset_default)
    rendezvous = _get(raw, "cpu_rendezvous", source, f"{where}.cpu_rendezvous", str,
                      "required" if rendezvous_default else "optional")
    if rendezvous not in ("required", "optional"):
        raise ProfileError(source, f"{where}.cpu_rendezvous", f"{rendezvous!r} is not 'required' or 'optional'")
    if activator == "none" and (may_reset or "cpu_rendezvous" in raw):
        raise ProfileError(source, where, "a component without an activator has no may_reset_cpu or cpu_rendezvous")
    if activator in ("rmm", "bl31") and rendezvous != "required":
        raise ProfileError(source, f"{where}.cpu_rendezvous", f"the {activator} activator needs the CPU rendezvous")
    lat_raw = _get(raw, "latency", source, f"{where}.latency", dict, {})
    lat = {}
    for key, value in lat_raw.items():
        if key not in ("load", "prime", "activate"):
            raise ProfileError(source, f"{where}.latency.{key}", "unknown stage (load, prime, activate)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
            raise ProfileError(source, f"{where}.latency.{key}", f"expected seconds in [0, 3600], got {value!r}")
        lat[key] = float(value)
    return ComponentSpec(name=name, guid=guid, activator=activator, version=version, may_reset_cpu=may_reset,
                         cpu_rendezvous_required=rendezvous == "required", latencies=Latencies(**lat))


def profile_from_dict(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    known = {"name", "description", "base", "cpus", "dram_base", "dram_size", "inventory_versions",
             "auth_key", "rmm", "component"}
    for key in data:
        if key not in known:
            raise ProfileError(source, key, f"unknown field (known: {', '.join(sorted(known))})")
    base: dict[str, Any] = {}
    if "base" in data:
        base_name = _get(data, "base", source, "base", str)
        if base_name not in embedded_names():
            raise ProfileError(source, "base", f"{base_name!r} is not an embedded profile ({', '.join(embedded_names())})")
        base = dict(_read(base_name)[1])
    merged = {**base, **{k: v for k, v in data.items() if k not in ("component", "rmm", "base")}}
    merged["rmm"] = {**base.get("rmm", {}), **_get(data, "rmm", source, "rmm", dict, {})}
    base_components = base.get("component", [])
    own_components = _get(data, "component", source, "component", list, [])

    name = _get(merged, "name", source, "name", str)
    cpus = _get(merged, "cpus", source, "cpus", int)
    if not 1 <= cpus <= 64:
        raise ProfileError(source, "cpus", f"must be between 1 and 64, got {cpus}")
    dram_base = _get(merged, "dram_base", source, "dram_base", int)
    dram_size = _convert(source, "dram_size", parse_size, _get(merged, "dram_size", source, "dram_size", (int, str)))
    if dram_base % 4096 or dram_size % (2 << 20) or not (64 << 20) <= dram_size <= (16 << 30):
        raise ProfileError(source, "dram_size", f"DRAM must be 2 MB aligned, 64 MB..16 GB (base {dram_base:#x}, size {dram_size:#x})")
    auth_key = _get(merged, "auth_key", source, "auth_key", str)
    if not auth_key:
        raise ProfileError(source, "auth_key", "must not be empty")

    r = merged["rmm"]
    for key in r:
        if key not in ("va_pool_size", "compat_reserve_mem", "base", "payload_size", "limit", "version"):
            raise ProfileError(source, f"rmm.{key}", "unknown field")
    pool = _convert(source, "rmm.va_pool_size", parse_size, _get(r, "va_pool_size", source, "rmm.va_pool_size", (int, str)))
    if pool <= 0 or pool % GB or pool >= 512 * GB:
        raise ProfileError(source, "rmm.va_pool_size", f"must be a multiple of 1 GB below 512 GB (TF-RMM RMM_VA_POOL_SIZE), got {pool:#x}")
    rmm = RmmSpec(
        va_pool_size=pool,
        compat_reserve_mem=_get(r, "compat_reserve_mem", source, "rmm.compat_reserve_mem", bool, False),
        base=_get(r, "base", source, "rmm.base", int),
        payload_size=_get(r, "payload_size", source, "rmm.payload_size", int),
        limit=_get(r, "limit", source, "rmm.limit", int),
        version=_convert(source, "rmm.version", parse_version, _get(r, "version", source, "rmm.version", str)),
    )
    if not (dram_base <= rmm.base and rmm.payload_limit < rmm.limit and rmm.limit + 4096 <= dram_base + dram_size):
        raise ProfileError(source, "rmm", f"the carve-out [{rmm.base:#x}, {rmm.limit + 4096:#x}) must lie in DRAM "
                                          f"[{dram_base:#x}, {dram_base + dram_size:#x}) with the payload below the limit")
    if rmm.base % 4096 or rmm.limit % 4096 or rmm.payload_size % (2 * 4096):
        raise ProfileError(source, "rmm", "base, limit and payload_size must be 4 KB aligned")

    components: list[ComponentSpec] = [_component(c, f"<embedded {data.get('base')}>", f"component[{i}]")
                                       for i, c in enumerate(base_components)]
    for i, raw in enumerate(own_components):
        spec = _component(raw, source, f"component[{i}]")
        existing = [j for j, c in enumerate(components) if c.name == spec.name]
        if existing:
            components[existing[0]] = spec
        else:
            components.append(spec)
    if not components:
        raise ProfileError(source, "component", "at least one component is needed (TF-A refuses to start LFA with none)")
    names = [c.name for c in components]
    guids = [c.guid for c in components]
    for field, values in (("name", names), ("guid", guids)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            raise ProfileError(source, f"component.{field}", f"duplicate {field}: {', '.join(map(str, sorted(map(str, dup))))}")
    if sum(1 for c in components if c.activator == "rmm") > 1:
        raise ProfileError(source, "component", "at most one component can use the rmm activator")

    return Profile(
        name=name,
        source=source,
        description=_get(merged, "description", source, "description", str, ""),
        cpus=cpus,
        dram_base=dram_base,
        dram_size=dram_size,
        inventory_versions=_get(merged, "inventory_versions", source, "inventory_versions", bool, True),
        auth_key=auth_key.encode(),
        rmm=rmm,
        components=tuple(components),
    )
