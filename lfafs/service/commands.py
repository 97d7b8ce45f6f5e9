"""The control commands, each declared once: arguments, handler, help, and how ``lfafs ctl`` prints it.

docs/control-protocol.md, 'Commands' describes them for clients; registry.py
says what is derived from these declarations. A handler gets the Session of
one mount and its checked arguments as keywords; a ControlError it raises
is the error reply, and it raises before changing anything.
"""

from __future__ import annotations

import argparse
import base64
import json
import uuid
from typing import Any

import trio

from lfafs.platform import STAGES, FaultError, PlatformError, SpecError, component_spec, uefi_setup
from lfafs.service.control import ControlError, decode_image
from lfafs.service.registry import Arg, Registry
from lfafs.service.session import Session
from lfafs.smccc import LfaStatus, Version
from lfafs.uefi import EFI_GLOBAL_VARIABLE

COMMANDS = Registry(groups={"component": "add or remove a component of the LFA table",
                            "var": "UEFI variables out of band, as a firmware setup menu sees them",
                            "efi": "faults of the UEFI variable service (FF-A, MM, storage, the SP)"})
command = COMMANDS.command

ADDED_ACTIVATORS = ("none", "generic", "sp")
COMPONENT = Arg("component", required=True, positional=True)


def _component(s: Session, key: str):
    try:
        return s.platform.component(key)
    except PlatformError as e:
        raise ControlError("unknown-component", str(e)) from None


def _version(text: str) -> Version:
    try:
        return Version.parse(text)
    except ValueError as e:
        raise ControlError("bad-request", str(e)) from None


def _cpus(s: Session) -> list[dict]:
    return [{"cpu": i, "on": on} for i, on in enumerate(s.platform.cpu_on)]


@command("ping", help="check that the daemon answers", show=lambda r, o: print("pong"))
async def ping(s: Session) -> dict:
    return {"pong": True}


# -- status -------------------------------------------------------------------------------------------


def status_of(s: Session) -> dict:
    p, agent = s.platform, s.platform.agent
    comps = []
    for c in p.components:
        comps.append({
            "index": c.index, "name": c.name, "guid": c.guid, "activator": c.spec.activator,
            "version": str(Version(*c.version)),
            "staged_version": str(Version(*c.staged_version)) if c.staged_version else None,
            "agent_pending": bool(agent.pending[c.index]) if c.index < len(agent.pending) else False,
            "faults": [f.describe() for f in p.faults.listing(c.index)],
        })
    cur = agent.current
    last = p.last_report
    return {
        "profile": p.profile.name, "kernel_abi": s.abi, "mountpoint": s.mountpoint,
        "cpus": _cpus(s),
        "components": comps,
        "agent": {"component": None if cur.component_id == 0xFFFF_FFFF else p.components[cur.component_id].name
                  if cur.component_id < len(p.components) else cur.component_id,
                  "prime": cur.prime_status.name, "activation_in_progress": agent.in_progress},
        "realm": {"enabled": not p.realm_disabled(), "failure": p.rmmd.failure if p.rmmd else ""},
        "last_report": last.to_dict() if last else None,
        "images": list(s.driver.images),
        "uefi": _uefi_status(s),
    }


def _uefi_status(s: Session) -> dict | None:
    """The UEFI side: its configuration, the variable SP's state and how the kernel mounted efivarfs."""
    stack = getattr(s.platform, "uefi", None)
    if stack is None:
        return None
    fault = stack.partition.fault
    armed = fault is not None and (fault.remaining is None or fault.remaining > 0)  # a spent count no longer acts
    return {"configuration": stack.spec.configuration, "variable_sp": stack.partition.state.value,
            "efivarfs": None if s.efi is None else "read-only" if s.efi.read_only else "read-write",
            "faults": ([fault.describe()] if armed else []) + (["storage-full"] if s.platform.secure_flash.full
                                                              else [])}


def _print_status(st: dict, options: argparse.Namespace) -> None:
    if options.json:
        print(json.dumps(st, indent=2))
        return
    print(f"platform {st['profile']} at {st['mountpoint']} (kernel ABI {st['kernel_abi']})")
    print("cpus: " + " ".join(f"{c['cpu']}:{'on' if c['on'] else 'off'}" for c in st["cpus"]))
    print(f"{'component':<10} {'version':<9} {'staged':<9} {'activator':<9} guid")
    for c in st["components"]:
        print(f"{c['name']:<10} {c['version']:<9} {c['staged_version'] or '-':<9} {c['activator']:<9} {c['guid']}"
              + (f"  faults: {'; '.join(c['faults'])}" if c["faults"] else ""))
    u = st.get("uefi")
    if u:
        print(f"uefi: {u['configuration']}, variable SP {u['variable_sp']}, efivarfs {u['efivarfs'] or 'not mounted'}"
              + (f"; faults: {', '.join(u['faults'])}" if u["faults"] else ""))
    a = st["agent"]
    print(f"agent: {a['component'] or 'idle'} prime={a['prime']} in_progress={a['activation_in_progress']}")
    print(f"realm world: {'enabled' if st['realm']['enabled'] else 'DISABLED: ' + st['realm']['failure']}")
    r = st["last_report"]
    if r:
        print(f"last activation: {r['component']} {r['from_version']} -> {r['to_version']} status {r['status']}"
              f" on {r['cpus']} CPUs, {r['total_s'] * 1e3:.1f} ms"
              f" (prime {r['prime_s'] * 1e3:.1f}, rendezvous {r['rendezvous_s'] * 1e3:.1f},"
              f" boot {r['leader_boot_s'] * 1e3:.1f}), {r['dynamic_pages_preserved']} dynamic pages kept"
              + (f"; {r['reason']}" if r["reason"] else ""))


@command("status", help="components, versions, pending, agent state, last activation",
         cli_options=(Arg("json", bool, help="print the reply as JSON"),), show=_print_status)
async def status(s: Session) -> dict:
    return status_of(s)


# -- images and faults ----------------------------------------------------------------------------------


def _read_image(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None


@command("stage", help="deliver a new image: the component reports activation pending",
         args=(Arg("component", required=True, positional=True, help="GUID or name"),
               Arg("version", help="MAJOR.MINOR (a signed image is built when no --image is given)"),
               Arg("image", help="an image file to stage as is (authenticated at PRIME)", from_cli=_read_image)),
         show=lambda r, o: print(f"staged {r['component']} {r['staged_version']}: it reports activation pending"))
async def stage(s: Session, component: str, version: str | None = None, image: str | None = None) -> dict:
    c = _component(s, component)
    parsed = _version(version) if version is not None else None
    data = decode_image(image) if image is not None else None
    if parsed is None and data is None:
        raise ControlError("bad-request", "stage: give a version, an image, or both")
    try:
        s.platform.stage(c.index, parsed, data)
    except PlatformError as e:
        raise ControlError("bad-request", str(e)) from None
    return {"component": c.name, "staged_version": str(Version(*c.staged_version))}


@command("unstage", help="withdraw a staged image", args=(COMPONENT,))
async def unstage(s: Session, component: str) -> dict:
    c = _component(s, component)
    s.platform.unstage(c.index)
    return {"component": c.name}


@command("fail", help="inject a fault at a stage of a component's activation",
         args=(COMPONENT, Arg("at", required=True, choices=STAGES),
               Arg("status", help="an LFA status, e.g. LFA_AUTH_ERROR"),
               Arg("call_again", int, metavar="N", help="answer 'call again' N times"),
               Arg("latency", float, metavar="SECONDS", help="added time at that stage"),
               Arg("once", bool, help="only the next time (default: until cleared)"),
               Arg("beyond_tf_a", bool, help="a status DEN0147 allows but TF-A's activator for this component "
                                             "cannot return")),
         exclusive=("status", "call_again"),
         show=lambda r, o: print(f"{r['component']}: {r['fault']}"))
async def fail(s: Session, component: str, at: str, status: str | None = None, call_again: int = 0,
               latency: float = 0.0, once: bool = False, beyond_tf_a: bool = False) -> dict:
    c = _component(s, component)
    try:
        parsed = LfaStatus.parse(status) if status is not None else None
        fault = s.platform.inject(c.index, at, status=parsed, call_again=call_again, latency=latency, once=once,
                                  beyond_tf_a=beyond_tf_a)
    except (FaultError, ValueError) as e:
        raise ControlError("bad-request", str(e)) from None
    return {"component": c.name, "fault": fault.describe()}


@command("clear-faults", help="remove injected faults",
         args=(Arg("component", positional=True), Arg("at", choices=STAGES)))
async def clear_faults(s: Session, component: str | None = None, at: str | None = None) -> dict:
    index = _component(s, component).index if component is not None else None
    s.platform.clear_faults(index, at)
    return {}


# -- the platform ---------------------------------------------------------------------------------------


def _print_activations(r: dict, options: argparse.Namespace) -> None:
    for rep in r["activations"]:
        print(f"activated {rep['component']} {rep['from_version']} -> {rep['to_version']} status {rep['status']}")


@command("notify", help="the platform notification behind auto_activate (ACPI ARML0003 / arm,lfa IRQ)",
         show=_print_activations)
async def notify(s: Session) -> dict:
    before = len(s.platform.reports)
    await s.driver.notify()
    return {"activations": [r.to_dict() for r in s.platform.reports[before:]]}


@command("cpu", help="power a CPU on or off (PSCI)",
         args=(Arg("cpu", int, required=True, positional=True), Arg("on", bool, required=True, positional=True)))
async def cpu(s: Session, cpu: int, on: bool) -> dict:
    try:
        s.platform.power(cpu, on)
    except PlatformError as e:
        raise ControlError("bad-request", str(e)) from None
    return {"cpus": _cpus(s)}


def _trace_line(ev: dict) -> str:
    args = " ".join(f"{a:#x}" for a in ev["args"])
    res = " ".join(f"{r:#x}" for r in ev["result"])
    return (f"{ev['start']:12.6f} cpu{ev['cpu']} {ev['world']:<6} {ev['name']:<22} ({args}) -> ({res})"
            f" {ev['duration'] * 1e6:.0f}us")


def _print_lines(lines: list[str], options: argparse.Namespace) -> None:
    for line in lines:
        print(line)


@command("trace", help="the SMC trace", streams=True, args=(Arg("limit", int, cli_default=50),),
         show=lambda r, o: _print_lines([_trace_line(ev) for ev in r], o), show_event=_trace_line)
async def trace(s: Session, event, follow: bool = False, limit: int = 100) -> Any:
    records = s.platform.trace
    if not follow:
        return [r.to_dict() for r in records.records()[-limit:]] if limit > 0 else []
    seen = records.last_seq
    while True:
        for r in records.records(since=seen):
            seen = r.seq
            if not await event(r.to_dict()):
                return None
        await trio.sleep(0.05)


@command("dmesg", help="the driver's kernel log", streams=True, show=_print_lines,
         show_event=lambda ev: ev["line"])
async def dmesg(s: Session, event, follow: bool = False) -> Any:
    klog = s.driver.klog
    if not follow:
        return klog.text()
    sent = 0
    while True:
        lines = klog.text()
        for line in lines[sent:]:
            if not await event({"line": line}):
                return None
        sent = len(lines)
        await klog.changed.wait()


@command("reset", help="platform cold reset: RAM state is lost, flash is kept")
async def reset(s: Session) -> dict:
    try:
        s.platform.reset()
    except PlatformError as e:
        raise ControlError("busy", str(e)) from None
    await s.driver.update_fw_images_tree()
    if s.efi is not None:
        await s.efi.reboot()  # the firmware booted again: so does the kernel's EFI side (efi_boot.py)
    return {"reset": True}


# -- the component table ----------------------------------------------------------------------------------


@command("component-add", help="add a component (the driver sees it at its next rescan)", cli=("component", "add"),
         args=(Arg("name", required=True, positional=True), Arg("guid", required=True),
               Arg("version", required=True, cli_default="1.0"),
               Arg("activator", choices=ADDED_ACTIVATORS, cli_default="generic"),
               Arg("cpu_rendezvous", choices=("required", "optional"), cli_default="required"),
               Arg("may_reset_cpu", bool)),
         show=lambda r, o: print(f"added {r['component']} as seq id {r['index']} "
                                 "(seen by the driver at its next rescan)"))
async def component_add(s: Session, name: str, guid: str, version: str, activator: str = "generic",
                        cpu_rendezvous: str = "required", may_reset_cpu: bool = False) -> dict:
    raw = {"name": name, "guid": guid, "version": version, "activator": activator, "may_reset_cpu": may_reset_cpu}
    if activator != "none":
        raw["cpu_rendezvous"] = cpu_rendezvous
    try:
        spec = component_spec(raw)  # the rules of a profile's [[component]], exactly
    except SpecError as e:
        raise ControlError("bad-request", f"component {e.field}: {e.problem}") from None
    try:
        c = s.platform.add_component(spec)
    except PlatformError as e:
        raise ControlError("bad-request", str(e)) from None
    return {"component": c.name, "index": c.index}


@command("component-remove", help="remove a component (not the RMM, not during an activation)",
         cli=("component", "remove"), args=(COMPONENT,))
async def component_remove(s: Session, component: str) -> dict:
    c = _component(s, component)
    try:
        s.platform.remove_component(c.index)
    except PlatformError as e:
        raise ControlError("bad-request", str(e)) from None
    return {"component": c.name}


# -- UEFI variables out of band, and faults of the variable service (platform/uefi_setup.py) ----------------

VAR_NAME = Arg("name", required=True, positional=True, help="the variable's name, e.g. Boot0003")
VAR_GUID = Arg("guid", help=f"its vendor GUID (default: EFI_GLOBAL_VARIABLE {EFI_GLOBAL_VARIABLE})")


def _guid(text: str | None) -> uuid.UUID:
    return _setup(uefi_setup.parse_guid, text)


def _var(v: uefi_setup.Variable) -> dict:
    return {"name": v.name, "guid": str(v.guid), "attributes": v.attributes, "data": v.data.hex()}


def _setup(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except PlatformError as e:
        raise ControlError("bad-request", str(e)) from None


def _print_vars(r: list[dict], options: argparse.Namespace) -> None:
    for v in r:
        print(f"{v['name']}-{v['guid']}  attributes {v['attributes']:#x}  {len(v['data']) // 2} bytes")


@command("var-list", help="the variables in the store (every boot-time one, not only those the OS sees)",
         cli=("var", "list"), show=_print_vars)
async def var_list(s: Session) -> list[dict]:
    return [_var(v) for v in _setup(uefi_setup.variables, s.platform)]


@command("var-get", help="one variable: attributes and data (hex)", cli=("var", "get"), args=(VAR_NAME, VAR_GUID),
         show=lambda r, o: print(f"{r['name']}-{r['guid']} attributes {r['attributes']:#x}\n{r['data']}"))
async def var_get(s: Session, name: str, guid: str | None = None) -> dict:
    v = _setup(uefi_setup.get, s.platform, name, _guid(guid))
    if v is None:
        raise ControlError("bad-request", f"no variable {name}-{_guid(guid)}")
    return _var(v)


@command("var-set", help="SetVariable as the firmware makes it (a new name shows in efivars after a reset)",
         cli=("var", "set"),
         args=(VAR_NAME, VAR_GUID, Arg("data", required=True, help="the value as hex bytes, e.g. 0100"),
               Arg("attributes", help="nv,bs,rt,at,append or a number (default: nv,bs,rt)")),
         show=lambda r, o: print(f"set {r['name']}-{r['guid']} ({len(r['data']) // 2} bytes)"))
async def var_set(s: Session, name: str, data: str, guid: str | None = None, attributes: str | None = None) -> dict:
    value, vendor = _setup(uefi_setup.parse_data, data), _guid(guid)
    attrs_ = _setup(uefi_setup.parse_attributes, attributes)
    _setup(uefi_setup.set_variable, s.platform, name, vendor, attrs_, value)
    return {"name": name, "guid": str(vendor), "attributes": attrs_, "data": value.hex()}


@command("var-delete", help="delete a variable from the store", cli=("var", "delete"), args=(VAR_NAME, VAR_GUID),
         show=lambda r, o: print(f"deleted {r['name']}-{r['guid']}"))
async def var_delete(s: Session, name: str, guid: str | None = None) -> dict:
    vendor = _guid(guid)
    _setup(uefi_setup.delete, s.platform, name, vendor)
    return {"name": name, "guid": str(vendor)}


@command("var-fill", help="add NV variables until the store refuses one (a full index or storage)",
         cli=("var", "fill"), args=(Arg("size", int, cli_default=1024, help="bytes per variable"),),
         show=lambda r, o: print(f"added {r['added']} variables of {r['size']} bytes; the store is full"))
async def var_fill(s: Session, size: int = 1024) -> dict:
    return {"added": _setup(uefi_setup.fill, s.platform, size), "size": size}


@command("efi-fail", help="inject a fault into the UEFI variable service", cli=("efi", "fail"),
         args=(Arg("fault", required=True, positional=True, choices=uefi_setup.FAULTS),
               Arg("count", int, metavar="N", help="only the next N requests (default: until cleared)"),
               Arg("ffa_error", help="with ffa-error: the FF-A error, e.g. DENIED"),
               Arg("mm_return", help="with mm-error: the MM return code, e.g. DENIED (default NO_MEMORY)")),
         show=lambda r, o: print(r["fault"]))
async def efi_fail(s: Session, fault: str, count: int | None = None, ffa_error: str = "BUSY",
                   mm_return: str = "NO_MEMORY") -> dict:
    return {"fault": _setup(uefi_setup.inject, s.platform, fault, count=count, ffa_error=ffa_error,
                            mm_return=mm_return)}


@command("efi-clear-faults", help="remove the faults of the UEFI variable service (a failed SP needs a reset)",
         cli=("efi", "clear-faults"))
async def efi_clear_faults(s: Session) -> dict:
    _setup(uefi_setup.clear, s.platform)
    return {}
