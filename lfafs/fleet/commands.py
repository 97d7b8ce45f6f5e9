"""The fleet control commands, each declared once (lfafs.service.registry), acting on one shard.

Every command takes ``select``, a label selector (selector.py): it acts on
the shard's nodes that match, and answers for those. ``lfafs fleet ctl``
sends the same request to every shard and adds the answers up; the socket
checks each request against these declarations before anything changes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from lfafs.fleet import faults as _faults
from lfafs.fleet import latency as _latency
from lfafs.fleet.description import IMAGE_KINDS
from lfafs.fleet.node import Node, NodeDown
from lfafs.fleet.selector import Selector, SelectorError, parse
from lfafs.fleet.shard import Shard
from lfafs.platform import STAGES, FaultError, PlatformError
from lfafs.service.control import ControlError
from lfafs.service.registry import Arg, Registry

FLEET_COMMANDS = Registry()
command = FLEET_COMMANDS.command

SELECT = Arg("select", help="a label selector, e.g. 'model=vera,rack in (r1,r2)' (default: every node)")
COMPONENT = Arg("component", required=True, positional=True, help="a component name, e.g. rmm")
MAX_ERRORS = 100  # per-node errors returned per shard


def _selector(text: str) -> Selector:
    try:
        return parse(text)
    except SelectorError as e:
        raise ControlError("bad-request", str(e)) from None


def _ready(s: Shard) -> None:
    if not s.ready.is_set():
        raise ControlError("booting", f"shard {s.index} is still booting its nodes ({len(s.nodes)}/{len(s.specs)})")


async def _each(s: Shard, select: str, action) -> dict:
    """Run ``action(node)`` on every selected node of the shard at once; count and collect errors."""
    _ready(s)
    nodes = s.local(_selector(select))
    errors: list[dict] = []

    async def one(node: Node) -> None:
        try:
            result = action(node)
            if hasattr(result, "__await__"):
                await result
        except (NodeDown, PlatformError, FaultError, ValueError, KeyError) as e:
            errors.append({"node": node.id, "message": str(e).strip("'\"")})

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(one, node)
    return {"shard": s.index, "matched": len(nodes), "changed": len(nodes) - len(errors),
            "errors": sorted(errors, key=lambda e: e["node"])[:MAX_ERRORS], "error_count": len(errors)}


@command("ping", help="check that the shard answers; how far its boot has got", args=(SELECT,))
async def ping(s: Shard, select: str = "") -> dict:
    return {"shard": s.index, "shards": s.roster.shards, "ready": s.ready.is_set(), "booted": len(s.nodes),
            "total": len(s.specs), "pid": os.getpid(), "clock": s.clock}


@command("status", help="every selected node: state, versions, staged images, realm, last activation",
         args=(SELECT,))
async def status(s: Shard, select: str = "") -> dict:
    return s.status(_selector(select))


@command("stage", help="deliver an image out of band to the selected nodes",
         args=(SELECT, COMPONENT, Arg("version", required=True, help="MAJOR.MINOR"),
               Arg("image", choices=IMAGE_KINDS, help="signed (default), bad-signature or incompatible")))
async def stage(s: Shard, component: str, version: str, select: str = "", image: str = "signed") -> dict:
    return await _each(s, select, lambda n: n.stage(component, version, image))


@command("unstage", help="withdraw a staged image", args=(SELECT, COMPONENT))
async def unstage(s: Shard, component: str, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.platform.unstage(component))


def _latency_arg(text: str | None) -> _latency.Latency | None:
    if text is None:
        return None
    try:
        return _latency.parse_text(text)
    except ValueError as e:
        raise ControlError("bad-request", str(e)) from None


@command("fail", help="arm a fault on the selected nodes, or on a ratio or count of them drawn with a seed",
         args=(SELECT, COMPONENT, Arg("at", required=True, choices=STAGES),
               Arg("status", help="an LFA status, e.g. LFA_AUTH_ERROR"),
               Arg("call_again", int, metavar="N", help="answer 'call again' N times"),
               Arg("latency", help="modelled time: 10 (fixed), 8..12 (jittered), median=2,p99=30 (long-tailed)"),
               Arg("ratio", float, help="the share of the selected nodes to hit, drawn with the seed"),
               Arg("count", int, help="how many of the selected nodes to hit, drawn with the seed"),
               Arg("seed", int, help="the draw's seed (default: the fleet's)"),
               Arg("once", bool, help="only the next time"),
               Arg("beyond_tf_a", bool, help="a status DEN0147 allows but TF-A's activator cannot return")),
         exclusive=("ratio", "count"))
async def fail(s: Shard, component: str, at: str, select: str = "", status: str | None = None, call_again: int = 0,
               latency: str | None = None, ratio: float | None = None, count: int | None = None,
               seed: int | None = None, once: bool = False, beyond_tf_a: bool = False) -> dict:
    _ready(s)
    if ratio is not None and not 0 <= ratio <= 1:
        raise ControlError("bad-request", f"fail: ratio must be in [0, 1], got {ratio:g}")
    if count is not None and count < 0:
        raise ControlError("bad-request", f"fail: count must be 0 or more, got {count}")
    if status is not None and call_again:
        raise ControlError("bad-request", "fail: give a status or a call-again count, not both")
    lat = _latency_arg(latency)
    if status is None and not call_again and lat is None:
        raise ControlError("bad-request", "fail: give a status, a call-again count or a latency")
    rule = _faults.Rule("ctl fail", _selector(select), component, at, status, call_again, lat, ratio, count,
                        (s.description.seed if seed is None else seed, "ctl fail"), once, beyond_tf_a)
    try:
        hit = _faults.targets(s.roster, rule)
        _faults.check(s.roster, rule, hit)
    except _faults.RuleError as e:
        raise ControlError("bad-request", str(e)) from None
    armed = _faults.arm(s.roster, [rule], only={n for n in s.nodes})
    result = await _each(s, select, lambda n: [n.arm(f) for f in armed.get(n.id, ())])
    result["armed"] = sum(len(v) for v in armed.values())
    result["targets"] = len(hit)
    return result


@command("clear-faults", help="remove the faults of the selected nodes",
         args=(SELECT, Arg("component", positional=True), Arg("at", choices=STAGES)))
async def clear_faults(s: Shard, select: str = "", component: str | None = None, at: str | None = None) -> dict:
    return await _each(s, select, lambda n: n.clear_faults(component, at))


@command("notify", help="the platform notification on the selected nodes (auto_activate's path)", args=(SELECT,))
async def notify(s: Shard, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.notify())


@command("down", help="the selected nodes lose power: their files answer EHOSTDOWN", args=(SELECT,))
async def down(s: Shard, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.power_off(reason="ctl"))


@command("up", help="power the selected nodes on: a cold boot with the flash kept", args=(SELECT,))
async def up(s: Shard, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.boot(s.nursery, s.token, reason="ctl", passthrough=s.passthrough))


@command("reset", help="reset the selected nodes: activations in flight are cut, RAM is lost, flash kept",
         args=(SELECT,))
async def reset(s: Shard, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.reset(s.nursery, s.token, passthrough=s.passthrough))


@command("cpu", help="power a CPU of each selected node on or off (PSCI)",
         args=(SELECT, Arg("cpu", int, required=True, positional=True),
               Arg("on", bool, required=True, positional=True)))
async def cpu(s: Shard, cpu: int, on: bool, select: str = "") -> dict:
    return await _each(s, select, lambda n: n.power(cpu, on))


@command("events", help="the shard's events (JSON lines with --follow)", streams=True,
         args=(SELECT, Arg("since", int, help="only events after this sequence number"),
               Arg("limit", int, help="at most this many")))
async def events(s: Shard, event, select: str = "", since: int = 0, limit: int | None = None,
                 follow: bool = False) -> Any:
    sel = _selector(select)
    wanted = None if not sel.requirements else {spec.id for spec in s.specs if sel.matches(spec.labels)}

    def keep(ev: dict) -> bool:
        return wanted is None or ev.get("node") in wanted

    if not follow:
        return [ev for ev in s.events.since(since) if keep(ev)][:limit]
    seen = since
    while True:
        for ev in s.events.since(seen):
            seen = ev["seq"]
            if keep(ev) and not await event(ev):
                return None
        await s.events.wait_after(seen)


@command("shutdown", help="stop the shard: unmount and exit 0 (an Indexed Job's pod completes)")
async def shutdown(s: Shard) -> dict:
    s.stopping.set()
    return {"shard": s.index, "stopping": True}


@command("crash", help="kill the shard processes that serve a selected node at once (a daemon crash; "
                      "a supervisor or an orchestrator restarts it)", args=(SELECT,))
async def crash(s: Shard, select: str = "") -> dict:
    if select and not s.local(_selector(select)):
        return {"shard": s.index, "pid": os.getpid(), "crashing": False}

    async def die() -> None:
        await trio.to_thread.run_sync(time.sleep, 0.2)  # real time: the reply goes out first
        os._exit(70)

    s.nursery.start_soon(die)
    return {"shard": s.index, "pid": os.getpid(), "crashing": True}
