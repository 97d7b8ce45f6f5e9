"""What each control-plane command does to a running mount (docs/control-protocol.md)."""

from __future__ import annotations

import uuid
from typing import Any

import trio

from lfafs.control import ControlError, decode_image
from lfafs.daemon import Mount
from lfafs.platform import FaultError, PlatformError
from lfafs.platform.profile import ComponentSpec, ProfileError, parse_version
from lfafs.smccc import LfaStatus


def _component(mount: Mount, key: str):
    try:
        return mount.platform.component(key)
    except PlatformError as e:
        raise ControlError("unknown-component", str(e)) from None


def _version(text: str) -> tuple[int, int]:
    try:
        return parse_version(text)
    except ValueError as e:
        raise ControlError("bad-request", str(e)) from None


def status(mount: Mount) -> dict:
    p, agent = mount.platform, mount.platform.agent
    comps = []
    for c in p.components:
        comps.append({
            "index": c.index, "name": c.name, "guid": c.guid, "activator": c.spec.activator,
            "version": "{}.{}".format(*c.version),
            "staged_version": "{}.{}".format(*c.staged_version) if c.staged_version else None,
            "agent_pending": bool(agent.pending[c.index]) if c.index < len(agent.pending) else False,
            "faults": [f.describe() for f in p.faults.listing(c.index)],
        })
    cur = agent.current
    last = p.last_report
    return {
        "profile": p.profile.name, "kernel_abi": mount.driver.abi.name, "mountpoint": mount.mountpoint,
        "cpus": [{"cpu": i, "on": on} for i, on in enumerate(p.cpu_on)],
        "components": comps,
        "agent": {"component": None if cur.component_id == 0xFFFF_FFFF else p.components[cur.component_id].name
                  if cur.component_id < len(p.components) else cur.component_id,
                  "prime": cur.prime_status.name, "activation_in_progress": agent.in_progress},
        "realm": {"enabled": not p.realm_disabled(), "failure": p.rmmd.failure if p.rmmd else ""},
        "last_report": last.to_dict() if last else None,
        "images": list(mount.driver.images),
    }


async def handle(mount: Mount, cmd: str, args: dict, event) -> Any:
    p = mount.platform
    if cmd == "ping":
        return {"pong": True}
    if cmd == "status":
        return status(mount)
    if cmd == "stage":
        c = _component(mount, args["component"])
        version = _version(args["version"]) if "version" in args else None
        image = decode_image(args["image"]) if "image" in args else None
        if version is None and image is None:
            raise ControlError("bad-request", "stage: give a version, an image, or both")
        try:
            p.stage(c.index, version, image)
        except PlatformError as e:
            raise ControlError("bad-request", str(e)) from None
        return {"component": c.name, "staged_version": "{}.{}".format(*c.staged_version)}
    if cmd == "unstage":
        c = _component(mount, args["component"])
        p.unstage(c.index)
        return {"component": c.name}
    if cmd == "fail":
        c = _component(mount, args["component"])
        try:
            status_ = LfaStatus.parse(args["status"]) if "status" in args else None
            fault = p.inject(c.index, args["at"], status=status_, call_again=args.get("call_again", 0),
                             latency=args.get("latency", 0.0), once=args.get("once", False))
        except (FaultError, ValueError) as e:
            raise ControlError("bad-request", str(e)) from None
        return {"component": c.name, "fault": fault.describe()}
    if cmd == "clear-faults":
        index = _component(mount, args["component"]).index if "component" in args else None
        if "at" in args and args["at"] not in ("load", "prime", "notify", "activate", "boot"):
            raise ControlError("bad-request", f"unknown stage {args['at']!r}")
        p.clear_faults(index, args.get("at"))
        return {}
    if cmd == "notify":
        before = len(p.reports)
        await mount.driver.notify()
        return {"activations": [r.to_dict() for r in p.reports[before:]]}
    if cmd == "cpu":
        try:
            p.power(args["cpu"], args["on"])
        except PlatformError as e:
            raise ControlError("bad-request", str(e)) from None
        return {"cpus": [{"cpu": i, "on": on} for i, on in enumerate(p.cpu_on)]}
    if cmd == "trace":
        if not args.get("follow"):
            limit = args.get("limit", 100)
            return [r.to_dict() for r in p.trace.records()[-limit:]] if limit > 0 else []
        seen = p.trace.last_seq
        while True:
            for r in p.trace.records(since=seen):
                seen = r.seq
                if not await event(r.to_dict()):
                    return None
            await trio.sleep(0.05)
    if cmd == "dmesg":
        klog = mount.driver.klog
        if not args.get("follow"):
            return klog.text()
        sent = 0
        while True:
            lines = klog.text()
            for line in lines[sent:]:
                if not await event({"line": line}):
                    return None
            sent = len(lines)
            await klog.changed.wait()
    if cmd == "reset":
        try:
            p.reset()
        except PlatformError as e:
            raise ControlError("busy", str(e)) from None
        await mount.driver.update_fw_images_tree()
        return {"reset": True}
    if cmd == "component-add":
        try:
            spec = ComponentSpec(name=args["name"], guid=uuid.UUID(args["guid"]),
                                 activator=args.get("activator", "generic"), version=_version(args["version"]),
                                 may_reset_cpu=args.get("may_reset_cpu", False),
                                 cpu_rendezvous_required=args.get("cpu_rendezvous", "required") == "required")
        except (ValueError, ProfileError) as e:
            raise ControlError("bad-request", str(e)) from None
        if spec.activator not in ("none", "generic", "sp"):
            raise ControlError("bad-request", "added components use the none, generic or sp activator")
        try:
            c = p.add_component(spec)
        except PlatformError as e:
            raise ControlError("bad-request", str(e)) from None
        return {"component": c.name, "index": c.index}
    if cmd == "component-remove":
        c = _component(mount, args["component"])
        try:
            p.remove_component(c.index)
        except PlatformError as e:
            raise ControlError("bad-request", str(e)) from None
        return {"component": c.name}
    raise ControlError("unknown-command", cmd)
