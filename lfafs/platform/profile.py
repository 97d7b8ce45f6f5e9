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
from collections.abc import Mapping
from typing import Any

import attrs

from lfafs.platform.component_spec import (  # re-exported: the public names stay here too
    ComponentSpec,
    SpecError,
    component_spec,
)
from lfafs.platform.topology import MAX_CPUS, Topology
from lfafs.platform.uefi_profile import UefiSpec, UefiSpecError, uefi_spec
from lfafs.smccc import Version

GB = 1 << 30
MIN_DRAM = 64 << 20
MAX_DRAM = 4 << 40  # the largest node lfafs models; the sparse store (native/pmem.c) goes further
MAX_PA = 1 << 48
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ProfileError(ValueError):
    """A profile that cannot be used: ``source``, ``field`` and what is wrong."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


def parse_version(text: object) -> Version:
    """'1.2' or (1, 2) -> Version(1, 2); each part fits 32 bits."""
    return Version.parse(text)


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


RMM_FIELDS = ("va_pool_size", "compat_reserve_mem", "base", "payload_size", "limit", "version", "release")
RMM_RELEASES = ("main", "v0.9")  # TF-RMM main: a per-CPU region token per CPU; v0.9: glob_data's PA everywhere


@attrs.frozen
class RmmSpec:
    va_pool_size: int
    compat_reserve_mem: bool
    base: int
    payload_size: int
    limit: int
    version: tuple[int, int]
    release: str = "main"  # the TF-RMM release of the platform's RMM images (RMM_RELEASES)

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
    inventory_versions: bool  # GET_INVENTORY fills x4/x5 (DEN0147); TF-A leaves them as the caller set them
    auth_key: bytes
    rmm: RmmSpec | None  # None: no RMM component and no [rmm] table (a machine without RME)
    components: tuple[ComponentSpec, ...]
    topology: Topology | None = None  # None: Topology.flat(cpus)
    activation_pending: str = "staged"  # "hardwired": every capable component is pending (TF-A fvp_lfa.c)
    notification: str = "none"  # how the OS learns of a new image: "acpi", "dt" or "none"
    secure_dram_size: int = 0  # the top of DRAM that is not Non-secure (TF-A arm_def.h, ARM_TZC_DRAM1_SIZE)
    dram2_base: int = 0  # a second Non-secure DRAM bank: a valid warm-reset entry point, never emulated
    dram2_size: int = 0
    uefi: UefiSpec = UefiSpec()  # the [uefi] table (uefi_profile.py)

    def component(self, key: str) -> ComponentSpec:
        for c in self.components:
            if c.name == key or str(c.guid) == key.lower():
                return c
        raise KeyError(key)


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


DEFAULT_PROFILE = "fvp-den0147"
"""The profile ``lfafs mount``, ``make run`` and the fixtures serve unless told otherwise."""


def load_profile(name_or_path: str | pathlib.Path = DEFAULT_PROFILE) -> Profile:
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
    try:
        return component_spec(raw)
    except SpecError as e:
        field = where if e.field == "component" else f"{where}.{e.field}"
        raise ProfileError(source, field, e.problem) from None


TOP_FIELDS = ("name", "description", "base", "cpus", "topology", "dram_base", "dram_size", "secure_dram_size",
              "dram2_base", "dram2_size", "inventory_versions", "activation_pending", "notification",
              "auth_key", "rmm", "component", "uefi")
PENDING_POLICIES = ("staged", "hardwired")
NOTIFICATION_SOURCES = ("none", "acpi", "dt")


def _flatten(data: Mapping[str, Any], source: str, depth: int = 0) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """A profile with its ``base`` chain applied: (fields, [(source, raw component)])."""
    for key in data:
        if key not in TOP_FIELDS:
            raise ProfileError(source, key, f"unknown field (known: {', '.join(sorted(TOP_FIELDS))})")
    merged: dict[str, Any] = {}
    components: list[tuple[str, Any]] = []
    if "base" in data:
        base_name = _get(data, "base", source, "base", str)
        if base_name not in embedded_names():
            raise ProfileError(source, "base",
                           f"{base_name!r} is not an embedded profile ({', '.join(embedded_names())})")
        if depth > 4:
            raise ProfileError(source, "base", "profiles based on each other more than 4 deep")
        base_source, base_data = _read(base_name)
        merged, components = _flatten(base_data, base_source, depth + 1)
    rmm = {**merged.get("rmm", {}), **_get(data, "rmm", source, "rmm", dict, {})}
    if "cpus" in data and "topology" not in data:
        merged.pop("topology", None)  # a new CPU count without a layout: the default layout
    if "topology" in data and "cpus" not in data:
        merged.pop("cpus", None)  # a new layout: its CPU count
    uefi = {**merged.get("uefi", {}), **_get(data, "uefi", source, "uefi", dict, {})}
    merged.update({k: v for k, v in data.items() if k not in ("component", "rmm", "base", "uefi")})
    merged["rmm"], merged["uefi"] = rmm, uefi
    for raw in _get(data, "component", source, "component", list, []):
        name = raw.get("name") if isinstance(raw, dict) else None
        same = [i for i, (_, c) in enumerate(components) if isinstance(c, dict) and c.get("name") == name]
        if name is not None and same:
            components[same[0]] = (source, raw)
        else:
            components.append((source, raw))
    return merged, components


def _topology(merged: Mapping[str, Any], source: str) -> Topology | None:
    raw = _get(merged, "topology", source, "topology", dict, None)
    if raw is None:
        return None
    for key in raw:
        if key not in ("sockets", "clusters", "cores", "threads"):
            raise ProfileError(source, f"topology.{key}", "unknown field (known: sockets, clusters, cores, threads)")
    try:
        return Topology(**raw)
    except ValueError as e:
        field = next((f"topology.{k}" for k in raw if f"topology.{k} " in str(e)), "topology")
        raise ProfileError(source, field, str(e).removeprefix(f"{field} ")) from None


def _choice(merged: Mapping[str, Any], key: str, source: str, choices: tuple[str, ...], default: str) -> str:
    value = _get(merged, key, source, key, str, default)
    if value not in choices:
        raise ProfileError(source, key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _rmm_spec(r: Mapping[str, Any], source: str, dram_base: int, dram_size: int) -> RmmSpec:
    """The [rmm] table: TF-RMM's build options and the FVP-style carve-out the RMMD owns."""
    for key in r:
        if key not in RMM_FIELDS:
            raise ProfileError(source, f"rmm.{key}", f"unknown field (known: {', '.join(RMM_FIELDS)})")
    pool = _convert(source, "rmm.va_pool_size", parse_size,
                    _get(r, "va_pool_size", source, "rmm.va_pool_size", (int, str)))
    if pool <= 0 or pool % GB or pool >= 512 * GB:
        raise ProfileError(source, "rmm.va_pool_size",
                           f"must be a multiple of 1 GB below 512 GB (TF-RMM RMM_VA_POOL_SIZE), got {pool:#x}")
    rmm = RmmSpec(
        va_pool_size=pool,
        compat_reserve_mem=_get(r, "compat_reserve_mem", source, "rmm.compat_reserve_mem", bool, False),
        base=_get(r, "base", source, "rmm.base", int),
        payload_size=_get(r, "payload_size", source, "rmm.payload_size", int),
        limit=_get(r, "limit", source, "rmm.limit", int),
        version=_convert(source, "rmm.version", parse_version, _get(r, "version", source, "rmm.version", str)),
        release=_get(r, "release", source, "rmm.release", str, "main"),
    )
    if rmm.release not in RMM_RELEASES:
        raise ProfileError(source, "rmm.release", f"{rmm.release!r} is not one of {', '.join(RMM_RELEASES)} (TF-RMM)")
    if not (dram_base <= rmm.base and rmm.payload_limit < rmm.limit and rmm.limit + 4096 <= dram_base + dram_size):
        raise ProfileError(source, "rmm", f"the carve-out [{rmm.base:#x}, {rmm.limit + 4096:#x}) must lie in "
                                          f"DRAM [{dram_base:#x}, {dram_base + dram_size:#x}) with the payload "
                                          "below the limit")
    if rmm.base % 4096 or rmm.limit % 4096 or rmm.payload_size % (2 * 4096):
        raise ProfileError(source, "rmm", "base, limit and payload_size must be 4 KB aligned")
    return rmm


def profile_from_dict(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    merged, raw_components = _flatten(data, source)

    name = _get(merged, "name", source, "name", str)
    topology = _topology(merged, source)
    cpus = _get(merged, "cpus", source, "cpus", int, topology.cpus if topology else attrs.NOTHING)
    if not 1 <= cpus <= MAX_CPUS:
        raise ProfileError(source, "cpus", f"must be between 1 and {MAX_CPUS}, got {cpus}")
    if topology is not None and topology.cpus != cpus:
        raise ProfileError(source, "cpus", f"{cpus} CPUs, but the topology gives {topology.describe()}")
    dram_base = _get(merged, "dram_base", source, "dram_base", int)
    secure_dram = _convert(source, "secure_dram_size", parse_size,
                           _get(merged, "secure_dram_size", source, "secure_dram_size", (int, str), 0))
    dram2_base = _get(merged, "dram2_base", source, "dram2_base", int, 0)
    dram2_size = _convert(source, "dram2_size", parse_size,
                          _get(merged, "dram2_size", source, "dram2_size", (int, str), 0))
    dram_size = _convert(source, "dram_size", parse_size, _get(merged, "dram_size", source, "dram_size", (int, str)))
    if dram_base % (2 << 20) or dram_size % (2 << 20) or not MIN_DRAM <= dram_size <= MAX_DRAM:
        raise ProfileError(source, "dram_size", f"DRAM must be 2 MB aligned, 64 MB..4 TB "
                                                f"(base {dram_base:#x}, size {dram_size:#x})")
    if dram_base + dram_size > MAX_PA:
        raise ProfileError(source, "dram_base", f"DRAM must end below 2**48 (the FVP's PA size), "
                                                f"ends at {dram_base + dram_size:#x}")
    if not 0 <= secure_dram < dram_size or secure_dram % 4096:
        raise ProfileError(source, "secure_dram_size",
                           f"must be 4 KB aligned and below dram_size, got {secure_dram:#x}")
    if dram2_size < 0 or dram2_base < 0 or dram2_base + dram2_size > 1 << 48 or (
            dram2_size and dram2_base < dram_base + dram_size and dram_base < dram2_base + dram2_size):
        raise ProfileError(source, "dram2_base", "DRAM2 must lie below 2**48 and not overlap DRAM")
    auth_key = _get(merged, "auth_key", source, "auth_key", str)
    if not auth_key:
        raise ProfileError(source, "auth_key", "must not be empty")

    components: list[ComponentSpec] = []
    own = 0
    for i, (where, raw) in enumerate(raw_components):
        index = own if where == source else i
        own += where == source
        components.append(_component(raw, where, f"component[{index}]"))
    if not components:
        raise ProfileError(source, "component",
                           "at least one component is needed (TF-A refuses to start LFA with none)")
    names = [c.name for c in components]
    guids = [c.guid for c in components]
    for field, values in (("name", names), ("guid", guids)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            listed = ", ".join(sorted(map(str, dup)))
            raise ProfileError(source, f"component.{field}", f"duplicate {field}: {listed}")
    if sum(1 for c in components if c.activator == "rmm") > 1:
        raise ProfileError(source, "component", "at most one component can use the rmm activator")
    has_rmm = any(c.activator == "rmm" for c in components)
    rmm = _rmm_spec(merged["rmm"], source, dram_base, dram_size) if merged["rmm"] or has_rmm else None

    return Profile(
        name=name,
        source=source,
        description=_get(merged, "description", source, "description", str, ""),
        cpus=cpus,
        dram_base=dram_base,
        dram_size=dram_size,
        inventory_versions=_get(merged, "inventory_versions", source, "inventory_versions", bool, True),
        topology=topology,
        activation_pending=_choice(merged, "activation_pending", source, PENDING_POLICIES, "staged"),
        notification=_choice(merged, "notification", source, NOTIFICATION_SOURCES, "none"),
        secure_dram_size=secure_dram,
        dram2_base=dram2_base,
        dram2_size=dram2_size,
        auth_key=auth_key.encode(),
        rmm=rmm,
        components=tuple(components),
        uefi=_uefi(merged, source, components),
    )


def _uefi(merged: Mapping[str, Any], source: str, components: list[ComponentSpec]) -> UefiSpec:
    """The [uefi] table (its fields are uefi_profile.py's)."""
    try:
        return uefi_spec(merged.get("uefi"), {c.name: c.activator for c in components})
    except UefiSpecError as e:
        raise ProfileError(source, f"uefi.{e.field}".rstrip("."), e.problem) from None
