"""Scenarios: a platform's starting state and what happens to it, declared in a TOML file.

A scenario names a profile (embedded, a file, or an inline ``[profile]``
table), images staged and faults armed before the driver probes, CPUs
powered off, and events: a control action at a time on the daemon's clock
(``after = 2.5``) or just before the Nth LFA_PRIME the kernel issues
(``before_prime = 3``)::

    profile = "fvp-den0147"
    cpus_off = [3]

    [[stage]]
    component = "rmm"
    version = "1.2"

    [[fault]]
    component = "rmm"
    at = "load"
    status = "LFA_AUTH_ERROR"
    once = true

    [[variable]]                       # UEFI: SetVariable as the firmware makes it (ctl var set)
    name = "Boot0003"
    data = "01000000..."               # hex
    attributes = "nv,bs,rt"            # the default

    [[event]]
    after = 1.0
    action = "notify"

Every entry is a control command (commands.py) and its arguments, so a
scenario says nothing ``lfafs ctl`` could not; the argument names, types
and allowed values are the registry's. ``load`` checks the whole file, then
applies it to a scratch platform, so a bad scenario is one error naming
file, line and field, before any daemon starts; nothing is half-applied.
``lfafs run --stage/--fail`` flags become entries of the same kind.
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from collections.abc import Callable
from typing import Any

import attrs

from lfafs.platform import DEFAULT_PROFILE, Platform, PlatformError, ProfileError, load_profile
from lfafs.platform.profile import Profile, profile_from_dict
from lfafs.service._scenario_actions import (
    Action,
    Event,
    ScenarioError,
    ScenarioRun,
    Where,
    _guard,
    apply_action,
    check_action,
)
from lfafs.service._toml_lines import Lines
from lfafs.service.commands import COMMANDS

TOP_FIELDS = ("description", "profile", "cpus_off", "stage", "fault", "variable", "event")
EVENT_ACTIONS = ("stage", "unstage", "fail", "clear-faults", "notify", "cpu", "reset", "var-set", "var-delete",
                 "efi-fail", "efi-clear-faults")
# Before a PRIME the kernel is inside an SMC: only what changes the flash or the fault table.
PRIME_ACTIONS = ("stage", "unstage", "fail", "clear-faults")
TRIGGERS = ("after", "before_prime")


@attrs.frozen
class Scenario:
    """A checked scenario; ``profile`` is resolved (the command line's, the file's or the default)."""

    source: str
    profile: Profile
    stage: tuple[Action, ...] = ()
    faults: tuple[Action, ...] = ()
    cpus_off: tuple[int, ...] = ()
    events: tuple[Event, ...] = ()
    variables: tuple[Action, ...] = ()  # [[variable]]: var-set before the kernel boots

    def new_platform(self, cpus: int | None = None) -> Platform:
        return Platform(self.profile, cpus=cpus)

    def apply(self, platform: Platform) -> None:
        """The starting state: staged images, armed faults, CPUs off (Platform's public API)."""
        for action in (*self.stage, *self.faults, *self.variables):
            apply_action(platform, action)
        for cpu in self.cpus_off:
            platform.power(cpu, False)

    def check(self, platform: Platform) -> None:
        """Apply to a scratch ``platform`` and check every event's arguments against it."""
        cpus_where = Where(self.source, None, "cpus_off")
        for action in (*self.stage, *self.faults, *self.variables):
            _guard(action, lambda a=action: check_action(platform, a))
            _guard(action, lambda a=action: apply_action(platform, a))
        for cpu in self.cpus_off:
            try:
                platform.power(cpu, False)
            except PlatformError as e:
                raise cpus_where.error(str(e)) from None
        for event in self.events:
            _guard(event.action, lambda e=event: check_action(platform, e.action))

    def start(self, platform: Platform, log: Callable[[str], None]) -> ScenarioRun:
        self.apply(platform)
        log(f"scenario {self.source}: applied {len(self.stage)} staged, {len(self.faults)} faults, "
            f"{len(self.variables)} variables, CPUs off {list(self.cpus_off)}, {len(self.events)} events")
        return ScenarioRun(self.events, platform, log)


# -- loading ----------------------------------------------------------------------------------------


@attrs.frozen
class Sources:
    """What a person asked for: a scenario file and/or ``--stage``/``--fail`` flags.

    The daemon gets them as the same options (``argv``) and loads them itself.
    """

    file: str | None = None
    stage: tuple[str, ...] = ()
    fail: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.file or self.stage or self.fail)

    def argv(self) -> list[str]:
        out = ["--scenario", os.path.abspath(self.file)] if self.file else []
        for s in self.stage:
            out += ["--stage", s]
        for f in self.fail:
            out += ["--fail", f]
        return out

    def load(self, profile: str | None = None) -> Scenario:
        """The scenario, its profile resolved: ``profile`` (the command line's) wins over the file's."""
        scenario = load(self.file, profile=profile) if self.file else Scenario(
            "<flags>", _resolve_profile(profile, None, Where("--profile")))
        extra_stage = tuple(parse_stage_flag(s) for s in self.stage)
        extra_fail = tuple(parse_fail_flag(f) for f in self.fail)
        return attrs.evolve(scenario, stage=(*scenario.stage, *extra_stage), faults=(*scenario.faults, *extra_fail))


def check(sources: Sources, *, profile: str | None = None, cpus: int | None = None,
          state_dir: str | None = None) -> str | None:
    """Why ``sources`` cannot start (one line), or None: loaded, applied to a scratch platform."""
    from lfafs.service.state import StateDir, StateError

    try:
        scenario = sources.load(profile)
        platform = scenario.new_platform(cpus)
        if state_dir:
            saved = StateDir(state_dir).load()
            if saved is not None:
                platform.restore_flash(*saved)
        scenario.check(platform)
    except ScenarioError as e:
        return str(e)
    except (PlatformError, StateError) as e:
        return f"{sources.file or 'lfafs'}: {e}"
    return None


def load(path: str | os.PathLike, *, profile: str | None = None) -> Scenario:
    """Read and check a scenario file (not yet against a platform: see ``check``)."""
    source = str(path)
    try:
        text = pathlib.Path(path).read_text()
    except OSError as e:
        raise ScenarioError(source, f"cannot be read: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(source, f"not valid TOML: {e}") from None
    lines = Lines(text)
    base = pathlib.Path(path).resolve().parent

    def where(*field) -> Where:
        name = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(field))
        return Where(source, lines.line(*field), name)

    for key in data:
        if key not in TOP_FIELDS:
            raise where(key).error(f"unknown field (known: {', '.join(TOP_FIELDS)})")
    if "description" in data and not isinstance(data["description"], str):
        raise where("description").error("expected a string")
    resolved = _resolve_profile(profile, data.get("profile"), where("profile"), base, lines)
    stage = tuple(_action("stage", raw, where("stage", i), base, where)
                  for i, raw in enumerate(_tables(data, "stage", where)))
    faults = tuple(_action("fail", raw, where("fault", i), base, where)
                   for i, raw in enumerate(_tables(data, "fault", where)))
    cpus_off = data.get("cpus_off", [])
    if not isinstance(cpus_off, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in cpus_off):
        raise where("cpus_off").error(f"expected a list of CPU numbers, got {cpus_off!r}")
    variables = tuple(_action("var-set", raw, where("variable", i), base, where)
                      for i, raw in enumerate(_tables(data, "variable", where)))
    events = tuple(_event(raw, i, base, where) for i, raw in enumerate(_tables(data, "event", where)))
    return Scenario(source, resolved, stage, faults, tuple(cpus_off), events, variables)


def _tables(data: dict, key: str, where) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise where(key).error(f"expected an array of tables: [[{key}]]")
    return value


def _resolve_profile(explicit: str | None, declared: Any, at: Where, base: pathlib.Path | None = None,
                     lines: Lines | None = None) -> Profile:
    """The command line's profile, else the scenario's (a name, a file beside it, or a table), else the default."""
    try:
        if explicit is not None:
            return load_profile(explicit)
        if declared is None:
            return load_profile(DEFAULT_PROFILE)
        if isinstance(declared, str):
            beside = base / declared if base is not None else pathlib.Path(declared)
            return load_profile(beside if beside.is_file() else declared)
        if isinstance(declared, dict):
            return profile_from_dict(declared, f"{at.source} [profile]")
    except ProfileError as e:
        if isinstance(declared, dict) and explicit is None and lines is not None:
            path = [p for p in e.field.replace("]", "").replace("[", ".").split(".") if p]
            field = tuple(int(p) if p.isdigit() else p for p in path)
            raise Where(at.source, lines.line("profile", *field), f"profile.{e.field}").error(e.problem) from None
        raise at.error(str(e)) from None
    raise at.error(f"expected a profile name, a file or a [profile] table, got {declared!r}")


def _spec(command: str) -> dict:
    """The arguments of a control command, as the registry declares them."""
    for c in COMMANDS:
        if c.name == command:
            return {a.name: a for a in c.args if a.name != "follow"}, c.exclusive
    raise KeyError(command)


def _action(command: str, raw: dict, at: Where, base: pathlib.Path | None, where=None) -> Action:
    """A control command's arguments, checked as the control socket checks them."""
    spec, exclusive = _spec(command)
    args = {}
    fields = {}
    for key, value in raw.items():
        field_at = where(*_path(at), key) if where else Where(at.source, at.line, key)
        fields[key] = field_at
        if key not in spec:
            raise field_at.error(f"unknown field for {command} (known: {', '.join(spec) or 'none'})")
        a = spec[key]
        if (isinstance(value, bool) and bool not in a.accepts) or not isinstance(value, a.accepts):
            raise field_at.error(f"expected {' or '.join(t.__name__ for t in a.accepts)}, got {value!r}")
        if a.choices is not None and value not in a.choices:
            raise field_at.error(f"{value!r} is not one of {', '.join(map(str, a.choices))}")
        args[key] = value
    for a in spec.values():
        if a.required and a.name not in args:
            raise at.error(f"{a.name} is required for {command}")
    given = [n for n in exclusive if n in args]
    if len(given) > 1:
        raise at.error(f"give {' or '.join(exclusive)}, not both")
    if command == "stage":
        if "version" not in args and "image" not in args:
            raise at.error("give a version, an image, or both")
        if "image" in args:
            image_at = fields["image"]
            path = pathlib.Path(args["image"])
            path = base / path if base is not None and not path.is_absolute() else path
            try:
                args["image"] = path.read_bytes()
            except OSError as e:
                raise image_at.error(f"cannot read {path}: {e.strerror}") from None
    return Action(command, args, at, fields)


def _path(at: Where) -> tuple:
    """The field path of a Where built by load(): 'event[2]' -> ('event', 2)."""
    out: list = []
    for part in (at.field or "").replace("]", "").split("."):
        name, _, index = part.partition("[")
        out.append(name)
        if index:
            out.append(int(index))
    return tuple(out)


def _event(raw: dict, i: int, base: pathlib.Path, where) -> Event:
    at = where("event", i)
    triggers = [t for t in TRIGGERS if t in raw]
    if len(triggers) != 1:
        raise at.error("give exactly one of after = SECONDS or before_prime = N")
    if "action" not in raw:
        raise at.error(f"action is required (one of {', '.join(EVENT_ACTIONS)})")
    action = raw["action"]
    if action not in EVENT_ACTIONS:
        raise where("event", i, "action").error(f"{action!r} is not one of {', '.join(EVENT_ACTIONS)}")
    rest = {k: v for k, v in raw.items() if k not in (*TRIGGERS, "action")}
    act = _action(action, rest, at, base, where)
    value = raw[triggers[0]]
    if triggers[0] == "after":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            raise where("event", i, "after").error(f"expected seconds in [0, 86400], got {value!r}")
        return Event(act, after=float(value))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where("event", i, "before_prime").error(f"expected a count >= 1, got {value!r}")
    if action not in PRIME_ACTIONS:
        raise where("event", i, "action").error(
            f"before a PRIME only {', '.join(PRIME_ACTIONS)} can run (the kernel is inside an SMC); use after = ...")
    return Event(act, before_prime=value)


# -- the command line's flags -------------------------------------------------------------------------


def parse_stage_flag(text: str) -> Action:
    """``--stage COMPONENT=VERSION``: rmm=1.2, or a GUID=1.2."""
    at = Where(f"--stage {text}")
    component, sep, version = text.partition("=")
    if not sep or not component or not version:
        raise at.error("expected COMPONENT=VERSION, e.g. --stage rmm=1.2")
    return _action("stage", {"component": component.strip(), "version": version.strip()}, at, None)


def parse_fail_flag(text: str) -> Action:
    """``--fail COMPONENT:AT[:STATUS][:call-again=N][:latency=S][:once][:beyond-tf-a]``."""
    at = Where(f"--fail {text}")
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise at.error("expected COMPONENT:STAGE[:STATUS][:once], e.g. --fail rmm:load:LFA_AUTH_ERROR:once")
    args: dict[str, Any] = {"component": parts[0], "at": parts[1]}
    for item in parts[2:]:
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        try:
            if key in ("once", "beyond_tf_a") and not sep:
                args[key] = True
            elif key == "call_again" and sep:
                args[key] = int(value)
            elif key == "latency" and sep:
                args[key] = float(value)
            elif not sep and item:
                args["status"] = item
            else:
                raise ValueError
        except ValueError:
            raise at.error(f"{item!r} is not a status, once, beyond-tf-a, call-again=N or latency=SECONDS") from None
    return _action("fail", args, at, None)


__all__ = ["Action", "Event", "Scenario", "ScenarioError", "ScenarioRun", "Sources", "Where", "check", "load",
           "parse_fail_flag", "parse_stage_flag"]
