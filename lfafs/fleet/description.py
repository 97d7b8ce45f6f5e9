"""The fleet description: a TOML file saying which nodes exist and what happens to them.

::

    [fleet]
    name = "lab"
    seed = 42                      # every random choice follows from the file and this seed
    shards = 2                     # how many processes serve the nodes (lfafs fleet up may override)

    [[cohort]]
    name = "vera"
    count = 600
    profile = "fvp-den0147"        # an embedded profile, or a TOML file relative to this one
    kernel_abi = "nvidia-v3"       # or weights: { "nvidia-v3" = 0.9, "nvidia-v1" = 0.1 }
    cpus = 4                       # optional: the profile's count otherwise
    id = "vera-{index:04d}"        # optional: node ids, index 0..count-1 (default "{cohort}-{index:04d}")
    labels = { vendor = "nvidia", model = "vera", rack = ["r1", "r2"] }   # a list is dealt round-robin
    versions = { rmm = "0.9" }     # starting versions; weights skew them: { rmm = { "0.9" = 0.95, "0.8" = 0.05 } }

    [[cohort.update]]              # delivered out of band when the fleet comes up
    component = "rmm"
    version = "1.0"
    image = "signed"               # or "bad-signature" (fails authentication at PRIME) or "incompatible"
                                   # (an RMM whose glob_data version the running one cannot hand over to)
    ratio = 1.0                    # optional, or count = N: only part of the cohort gets it

    [[fault]]
    select = "model=vera, rack in (r1)"     # a label selector (selector.py); empty: every node
    component = "rmm"
    at = "prime"                   # load, prime, notify, activate, boot
    status = "LFA_AUTH_ERROR"      # or call_again = N, or neither: only a latency (modelled time)
    latency = { median = 2, p99 = 30 }       # latency.py: fixed, jittered or long-tailed
    ratio = 0.02                   # or count = N; the nodes are drawn with the seed
    seed = 7                       # optional: the fleet seed otherwise
    once = false
    beyond_tf_a = false

Every error names the file, the field and what is wrong. This module only
reads and checks; roster.py turns a description into nodes.
"""

from __future__ import annotations

import json
import pathlib
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs

from lfafs.driver.abi import ABIS
from lfafs.fleet import latency as _latency
from lfafs.fleet import selector as _selector
from lfafs.platform import STAGES, ProfileError, embedded_names, load_profile
from lfafs.platform.profile import Profile
from lfafs.smccc import LfaStatus, Version

MAX_NODES = 100_000
IMAGE_KINDS = ("signed", "bad-signature", "incompatible")
DEFAULT_ID = "{cohort}-{index:04d}"
_NODE_ID = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")  # a DNS label: usable as a path, a host name


class DescriptionError(ValueError):
    """A fleet description that cannot be used: ``source``, ``field`` and what is wrong."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


Weighted = tuple[tuple[str, float], ...]  # (value, weight) pairs; one pair means "always"


@attrs.frozen
class Update:
    """An image delivered to (part of) a cohort when the fleet comes up."""

    component: str
    version: str
    image: str = attrs.field(default="signed", validator=attrs.validators.in_(IMAGE_KINDS))
    ratio: float | None = None
    count: int | None = None
    seed: int | None = None


@attrs.frozen
class Cohort:
    name: str
    count: int
    profile: str  # an embedded name or an absolute path
    kernel_abi: Weighted
    cpus: int | None
    id: str
    labels: tuple[tuple[str, tuple[str, ...]], ...]  # key -> values dealt round-robin
    versions: tuple[tuple[str, Weighted], ...]  # component -> weighted versions
    updates: tuple[Update, ...] = ()


@attrs.frozen
class FaultRule:
    """A fault or a modelled latency armed on the nodes the rule draws."""

    index: int
    select: _selector.Selector
    component: str
    at: str
    status: str | None = None
    call_again: int = 0
    latency: _latency.Latency | None = None
    ratio: float | None = None
    count: int | None = None
    seed: int | None = None
    once: bool = False
    beyond_tf_a: bool = False

    @property
    def field(self) -> str:
        return f"fault[{self.index}]"


@attrs.frozen
class Description:
    source: str
    name: str
    seed: int
    shards: int
    cohorts: tuple[Cohort, ...]
    faults: tuple[FaultRule, ...]
    profiles: Mapping[str, Profile] = attrs.field(eq=False, repr=False, factory=dict)  # loaded once each

    @property
    def total(self) -> int:
        return sum(c.count for c in self.cohorts)


# -- reading ---------------------------------------------------------------------------------------


def load(path: str | pathlib.Path) -> Description:
    """Read and check a fleet description file (TOML; a ``.json`` file of the same shape also works)."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f) if source.endswith(".json") else tomllib.load(f)
    except OSError as e:
        raise DescriptionError(source, "(file)", f"cannot read it: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise DescriptionError(source, "(syntax)", str(e)) from None
    if not isinstance(data, dict):
        raise DescriptionError(source, "(syntax)", "the file is not a table")
    return from_dict(data, source, base_dir=pathlib.Path(path).resolve().parent)


def from_dict(data: Mapping[str, Any], source: str = "<fleet>", *, base_dir: pathlib.Path | None = None) -> Description:
    """Check a description given as a dict (as TOML would give it)."""
    r = _Reader(source, base_dir or pathlib.Path.cwd())
    r.only(data, "", ("fleet", "cohort", "fault"))
    fleet = r.table(data, "fleet", "fleet", default={})
    r.only(fleet, "fleet", ("name", "seed", "shards"))
    name = r.get(fleet, "name", "fleet.name", str, "fleet")
    seed = r.get(fleet, "seed", "fleet.seed", int, 0)
    shards = r.get(fleet, "shards", "fleet.shards", int, 1)
    if not 1 <= shards <= 1024:
        r.fail("fleet.shards", f"expected 1..1024, got {shards}")
    raw_cohorts = r.get(data, "cohort", "cohort", list, None)
    if not raw_cohorts:
        r.fail("cohort", "a fleet needs at least one [[cohort]]")
    cohorts = tuple(r.cohort(raw, i) for i, raw in enumerate(raw_cohorts))
    names = [c.name for c in cohorts]
    for i, n in enumerate(names):
        if n in names[:i]:
            r.fail(f"cohort[{i}].name", f"{n!r} is already the name of cohort[{names.index(n)}]")
    total = sum(c.count for c in cohorts)
    if total > MAX_NODES:
        r.fail("cohort", f"{total:,} nodes in all; at most {MAX_NODES:,}")
    faults = tuple(r.fault(raw, i) for i, raw in enumerate(r.get(data, "fault", "fault", list, [])))
    return Description(source, name, seed, shards, cohorts, faults, profiles=r.profiles)


class _Reader:
    def __init__(self, source: str, base_dir: pathlib.Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.profiles: dict[str, Profile] = {}

    def fail(self, field: str, problem: str):
        raise DescriptionError(self.source, field, problem)

    def only(self, table: Mapping[str, Any], where: str, known: tuple[str, ...]) -> None:
        for key in table:
            if key not in known:
                self.fail(f"{where}.{key}" if where else key, f"unknown field; known: {', '.join(known)}")

    def get(self, table: Mapping[str, Any], key: str, field: str, kind: type | tuple, default: Any = attrs.NOTHING):
        if key not in table:
            if default is attrs.NOTHING:
                self.fail(field, "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            self.fail(field, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kinds):
            self.fail(field, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        return value

    def table(self, data: Mapping[str, Any], key: str, field: str, default: Any = attrs.NOTHING) -> Mapping[str, Any]:
        return self.get(data, key, field, dict, default)

    # -- cohorts ---------------------------------------------------------------------------------

    def profile(self, value: str, field: str) -> tuple[str, Profile]:
        if value in embedded_names():
            key = value
        else:
            path = pathlib.Path(value)
            key = str(path if path.is_absolute() else (self.base_dir / path).resolve())
        if key not in self.profiles:
            try:
                self.profiles[key] = load_profile(key)
            except ProfileError as e:
                self.fail(field, f"bad profile: {e}")
        return key, self.profiles[key]

    def weighted(self, value: Any, field: str, check) -> Weighted:
        if isinstance(value, str):
            check(value, field)
            return ((value, 1.0),)
        if not isinstance(value, Mapping) or not value:
            self.fail(field, f"expected a value or a table of weights, got {value!r}")
        out = []
        for choice, weight in value.items():
            check(choice, f"{field}.{choice}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                self.fail(f"{field}.{choice}", f"a weight is a number above 0, got {weight!r}")
            out.append((choice, float(weight)))
        return tuple(out)

    def cohort(self, raw: Any, i: int) -> Cohort:
        where = f"cohort[{i}]"
        if not isinstance(raw, Mapping):
            self.fail(where, "expected a table")
        self.only(raw, where, ("name", "count", "profile", "kernel_abi", "cpus", "id", "labels", "versions", "update"))
        name = self.get(raw, "name", f"{where}.name", str)
        if not _NODE_ID.fullmatch(name):
            self.fail(f"{where}.name", f"{name!r}: lower-case letters, digits, '-' and '.'")
        count = self.get(raw, "count", f"{where}.count", int)
        if not 1 <= count <= MAX_NODES:
            self.fail(f"{where}.count", f"expected 1..{MAX_NODES:,}, got {count}")
        profile_key, profile = self.profile(self.get(raw, "profile", f"{where}.profile", str, "fvp-den0147"),
                                            f"{where}.profile")

        def check_abi(value: str, field: str) -> None:
            if value not in ABIS:
                self.fail(field, f"unknown kernel ABI {value!r}; choose one of {', '.join(ABIS)}")

        abi = self.weighted(raw.get("kernel_abi", "v3"), f"{where}.kernel_abi", check_abi)
        cpus = self.get(raw, "cpus", f"{where}.cpus", int, None)
        if cpus is not None and not 1 <= cpus <= 512:
            self.fail(f"{where}.cpus", f"expected 1..512, got {cpus}")
        template = self.get(raw, "id", f"{where}.id", str, DEFAULT_ID)
        for probe in (0, count - 1):
            try:
                node = template.format(cohort=name, index=probe)
            except (KeyError, IndexError, ValueError) as e:
                self.fail(f"{where}.id", f"{template!r} cannot be formatted ({e}); use {{cohort}} and {{index}}")
            if not _NODE_ID.fullmatch(node):
                self.fail(f"{where}.id", f"gives {node!r}: a node id is lower-case letters, digits, '-' and '.'")
        if count > 1 and template.format(cohort=name, index=0) == template.format(cohort=name, index=1):
            self.fail(f"{where}.id", f"{template!r} gives every node the same id: use {{index}}")
        labels = []
        for key, value in self.table(raw, "labels", f"{where}.labels", {}).items():
            field = f"{where}.labels.{key}"
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                self.fail(field, f"a label is a string or a list of strings, got {value!r}")
            if key in ("node", "cohort", "shard", "profile", "abi"):
                self.fail(field, "this label is set by lfafs for every node")
            if not _selector.valid_key(key) or not all(_selector.valid_value(v) for v in values):
                self.fail(field, "keys and values as Kubernetes labels: letters, digits, '-', '_', '.'")
            labels.append((key, tuple(values)))
        components = {c.name for c in profile.components}

        def check_component(value: str, field: str) -> None:
            if value not in components:
                self.fail(field, f"no component {value!r} in the {profile.name} profile "
                                 f"({', '.join(sorted(components))})")

        def check_version(value: str, field: str) -> None:
            try:
                Version.parse(value)
            except ValueError as e:
                self.fail(field, str(e))

        versions = []
        for comp, value in self.table(raw, "versions", f"{where}.versions", {}).items():
            check_component(comp, f"{where}.versions.{comp}")
            versions.append((comp, self.weighted(value, f"{where}.versions.{comp}", check_version)))
        updates = []
        for j, u in enumerate(self.get(raw, "update", f"{where}.update", list, [])):
            field = f"{where}.update[{j}]"
            if not isinstance(u, Mapping):
                self.fail(field, "expected a table")
            self.only(u, field, ("component", "version", "image", "ratio", "count", "seed"))
            comp = self.get(u, "component", f"{field}.component", str)
            check_component(comp, f"{field}.component")
            version = self.get(u, "version", f"{field}.version", str)
            check_version(version, f"{field}.version")
            image = self.get(u, "image", f"{field}.image", str, "signed")
            if image not in IMAGE_KINDS:
                self.fail(f"{field}.image", f"expected one of {', '.join(IMAGE_KINDS)}, got {image!r}")
            if image == "incompatible" and profile.component(comp).activator != "rmm":
                self.fail(f"{field}.image", "an incompatible image is an RMM image (its glob_data version)")
            ratio, n = self.share(u, field)
            updates.append(Update(comp, version, image, ratio, n, self.get(u, "seed", f"{field}.seed", int, None)))
        return Cohort(name, count, profile_key, abi, cpus, template, tuple(labels), tuple(versions), tuple(updates))

    def share(self, raw: Mapping[str, Any], field: str) -> tuple[float | None, int | None]:
        ratio = self.get(raw, "ratio", f"{field}.ratio", float, None)
        count = self.get(raw, "count", f"{field}.count", int, None)
        if ratio is not None and count is not None:
            self.fail(field, "give ratio or count, not both")
        if ratio is not None and not 0 <= ratio <= 1:
            self.fail(f"{field}.ratio", f"expected 0..1, got {ratio:g}")
        if count is not None and count < 0:
            self.fail(f"{field}.count", f"expected 0 or more, got {count}")
        return ratio, count

    # -- faults ----------------------------------------------------------------------------------

    def fault(self, raw: Any, i: int) -> FaultRule:
        where = f"fault[{i}]"
        if not isinstance(raw, Mapping):
            self.fail(where, "expected a table")
        self.only(raw, where, ("select", "component", "at", "status", "call_again", "latency", "ratio", "count",
                               "seed", "once", "beyond_tf_a"))
        try:
            select = _selector.parse(self.get(raw, "select", f"{where}.select", str, ""))
        except _selector.SelectorError as e:
            self.fail(f"{where}.select", str(e))
        component = self.get(raw, "component", f"{where}.component", str)
        at = self.get(raw, "at", f"{where}.at", str)
        if at not in STAGES:
            self.fail(f"{where}.at", f"unknown stage {at!r}; stages are {', '.join(STAGES)}")
        status = self.get(raw, "status", f"{where}.status", str, None)
        if status is not None:
            try:
                LfaStatus.parse(status)
            except ValueError as e:
                self.fail(f"{where}.status", str(e))
        call_again = self.get(raw, "call_again", f"{where}.call_again", int, 0)
        if call_again < 0:
            self.fail(f"{where}.call_again", f"expected 0 or more, got {call_again}")
        if status is not None and call_again:
            self.fail(where, "a fault is a status or call-again, not both")
        lat = None
        if "latency" in raw:
            try:
                lat = _latency.parse(raw["latency"])
            except (ValueError, TypeError) as e:
                self.fail(f"{where}.latency", str(e))
        if status is None and not call_again and lat is None:
            self.fail(where, "a rule needs a status, a call_again count or a latency")
        ratio, count = self.share(raw, where)
        return FaultRule(i, select, component, at, status, call_again, lat, ratio, count,
                         self.get(raw, "seed", f"{where}.seed", int, None),
                         self.get(raw, "once", f"{where}.once", bool, False),
                         self.get(raw, "beyond_tf_a", f"{where}.beyond_tf_a", bool, False))
