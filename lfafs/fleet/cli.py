"""``lfafs fleet``: the command line of fleets (docs/fleet.md).

``add_parser(subparsers)`` adds ``fleet`` to the ``lfafs`` command line;
``python -m lfafs.fleet`` runs the same commands on their own. Each
handler returns an exit status; every error a person can cause is one
line on stderr naming the command, and status 1 (argparse's usage errors:
2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

from lfafs.fleet import cli_nodes
from lfafs.fleet import cli_support as support
from lfafs.fleet.cli_support import DEFAULT_ROOT, DEFAULT_THRESHOLD, CommandError, add_where, guarded

# -- up, down, shard, supervise ---------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from lfafs.fleet import supervisor

    options = dict(shards=args.shards, virtual_time=args.virtual_time, state_dir=args.state_dir,
                   passthrough=args.passthrough)
    root = args.root or DEFAULT_ROOT
    if args.foreground:
        layout, doc = supervisor.prepare(args.description, root, **options)
        try:
            return supervisor.supervise(layout.root, foreground=True)
        finally:
            supervisor.down(layout.root)
    doc = supervisor.up(args.description, root, **options)
    clock = "" if doc["virtual_time"] is None else " on a mock clock"
    print(f"lfafs fleet: {doc['nodes']:,} nodes in {doc['shards']} shards at {os.path.abspath(root)}{clock} "
          f"(supervisor pid {doc['supervisor']}); stop with: lfafs fleet down --root {os.path.abspath(root)}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from lfafs.fleet import supervisor

    supervisor.down(args.root or DEFAULT_ROOT)
    return 0


def _shard(args: argparse.Namespace) -> int:
    from lfafs.fleet import serve

    index = args.index if args.index is not None else _index_from_env()
    return serve.main(args.description, index, args.shards, root=args.root, listen=args.listen or [],
                      virtual_time=args.virtual_time, state_dir=args.state_dir, passthrough=args.passthrough,
                      announce=lambda line: print(line, flush=True))


def _index_from_env() -> int:
    """A StatefulSet pod's ordinal (its hostname's suffix or LFAFS_SHARD_INDEX) or an Indexed Job's index."""
    for var in ("LFAFS_SHARD_INDEX", "JOB_COMPLETION_INDEX"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    host = os.environ.get("HOSTNAME", "")
    tail = host.rsplit("-", 1)[-1]
    if tail.isdigit():
        return int(tail)
    raise CommandError("give --index, or run where LFAFS_SHARD_INDEX, JOB_COMPLETION_INDEX or a StatefulSet "
                       "hostname (NAME-ORDINAL) says it")


def _supervise(args: argparse.Namespace) -> int:
    from lfafs.fleet import supervisor

    return supervisor.supervise(args.root)


# -- status, ping, ctl, events ---------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    select = support.select(args.select)  # a bad selector before any shard is asked
    st = support.client(args).status(select)
    if args.json:
        json.dump(st, sys.stdout, separators=(",", ":"))
        print()
        return 0
    shards = st["shards"]
    print(f"{sum(s['booted'] for s in shards):,} of {sum(s['total'] for s in shards):,} nodes booted in "
          f"{len(shards)} shards ({shards[0]['clock']} clock, t={max(s['now'] for s in shards):.3f})")
    by_cohort: dict[str, list[dict]] = {}
    for n in st["nodes"]:
        by_cohort.setdefault(n["cohort"], []).append(n)
    for cohort, nodes in by_cohort.items():
        states = Counter(n["state"] for n in nodes)
        versions: dict[str, Counter] = {}
        for n in nodes:
            for comp, v in n["versions"].items():
                versions.setdefault(comp, Counter())[v] += 1
        shown = "; ".join(f"{comp} " + ", ".join(f"{v} x{c}" for v, c in sorted(cnt.items()))
                          for comp, cnt in versions.items() if len(cnt) > 1 or comp == "rmm")
        bad = sum(n["realm"] == "disabled" for n in nodes)
        staged = sum(bool(n["staged"]) for n in nodes)
        print(f"  {cohort:<14} {len(nodes):>6} nodes, {states['up']} up, {states['down']} down, {staged} with "
              f"staged images, {bad} with the Realm world disabled; {shown}")
    return 0


def _ping(args: argparse.Namespace) -> int:
    import time

    from lfafs.service.control import ControlError

    client = support.client(args)
    end = time.monotonic() + args.wait
    while True:
        try:
            pings = client.call_all("ping")
            if not args.partial:
                client.check_complete(pings)
            if all(p["ready"] for p in pings) or time.monotonic() >= end:
                break
        except ControlError:
            if time.monotonic() >= end:
                raise
        time.sleep(0.2)
    for p in sorted(pings, key=lambda p: p["shard"]):
        print(f"shard {p['shard']}/{p['shards']}: {'ready' if p['ready'] else 'booting'}, "
              f"{p['booted']}/{p['total']} nodes, pid {p['pid']}, {p['clock']} clock")
    return 0 if all(p["ready"] for p in pings) else 1


def _ctl(args: argparse.Namespace) -> int:
    command = args.ctl
    request = command.request(args)
    select = support.select(request.get("select") or args.fleet_select)
    if any(a.name == "select" for a in command.args):
        request["select"] = select
    elif select:
        raise CommandError(f"{' '.join(command.words)} acts on whole shards: it takes no selector")
    client = support.client(args)
    if command.streams and request.pop("follow", False):
        for ev in client.follow_events(request.get("select", "")):
            print(json.dumps(ev), flush=True)
        return 0
    results = client.call_all(command.name, **request)
    if not all(isinstance(r, dict) and "matched" in r for r in results):
        print(json.dumps(results if len(results) > 1 else results[0]))
        return 0
    matched = sum(r["matched"] for r in results)
    changed = sum(r["changed"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    line = f"{' '.join(command.words)}: {matched:,} nodes selected, {changed:,} done"
    if "armed" in results[0]:
        line += f", {sum(r['armed'] for r in results):,} faults armed ({results[0]['targets']:,} drawn)"
    print(line)
    for e in errors[:10]:
        print(f"  {e['node']}: {e['message']}", file=sys.stderr)
    failed = sum(r["error_count"] for r in results)
    if failed > 10:
        print(f"  ... and {failed - 10} more", file=sys.stderr)
    return 1 if failed else 0


def _events(args: argparse.Namespace) -> int:
    select = support.select(args.select)
    client = support.client(args)
    if args.follow:
        try:
            for ev in client.follow_events(select, args.since):
                print(json.dumps(ev), flush=True)
        except KeyboardInterrupt:
            pass
        return 0
    for ev in client.events(select, args.since):
        print(json.dumps(ev))
    return 0


# -- check, plan ---------------------------------------------------------------------------------------------------


def _ids(text: str) -> list[str]:
    if text.startswith("@"):
        with open(text[1:]) as f:
            return f.read().split()
    return [t for t in text.replace(",", " ").split() if t]


def _check(args: argparse.Namespace) -> int:
    from lfafs.fleet.checks import Invariants, evaluate
    from lfafs.fleet.events import read_lines

    if args.max_in_flight is None and args.stop_after_failures is None and not args.no_failed_rmm \
            and args.expect_failed is None:
        raise CommandError("give at least one invariant: --max-in-flight K, --stop-after-failures N, "
                           "--no-failed-rmm or --expect-failed NODES")
    inv = Invariants(args.max_in_flight, args.stop_after_failures, args.no_failed_rmm,
                     None if args.expect_failed is None else _ids(args.expect_failed))
    if args.events:
        try:
            if args.events == "-":
                events = read_lines(sys.stdin)
            else:
                with open(args.events) as f:
                    events = read_lines(f)
        except ValueError as e:
            raise CommandError(f"{args.events}: {e}") from None
    else:
        events = support.client(args).events(support.select(args.select))
    report = evaluate(events, inv)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for o in report.outcomes:
            print(f"{'ok  ' if o.ok else 'FAIL'} {o.name}: {o.detail}")
        print(f"{report.started} activations: {report.succeeded} succeeded, {report.failed} failed"
              + (f" ({', '.join(report.failed_nodes[:8])}{' ...' if len(report.failed_nodes) > 8 else ''})"
                 if report.failed_nodes else ""))
    return 0 if report.ok else 1


def _plan(args: argparse.Namespace) -> int:
    from lfafs.fleet import faults
    from lfafs.fleet.description import load
    from lfafs.fleet.roster import Roster

    desc = load(args.description)
    roster = Roster(desc, args.shards)
    faults.check_description(roster)
    rules = [(r.name, faults.targets(roster, r)) for r in faults.description_rules(roster)]
    if args.rule is not None:
        hit = dict(rules).get(args.rule)
        if hit is None:
            raise CommandError(f"no rule {args.rule!r} in {args.description}; rules: "
                               f"{', '.join(n for n, _ in rules) or 'none'}")
        for n in hit:
            print(n.id)
        return 0
    updates = Counter((n.cohort, u.component, u.version, u.image) for n in roster.nodes for u in n.updates)
    shards = [{"shard": i, "nodes": len(roster.slice(i)), "first": roster.slice(i)[0].id,
               "last": roster.slice(i)[-1].id} for i in range(roster.shards)]
    doc = {"nodes": len(roster), "seed": desc.seed, "shards": shards,
           "updates": [{"cohort": c, "component": comp, "version": v, "image": img, "nodes": k}
                       for (c, comp, v, img), k in updates.items()],
           "faults": [{"rule": name, "nodes": [n.id for n in hit]} for name, hit in rules]}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"{len(roster):,} nodes, seed {desc.seed}, {roster.shards} shards")
    for s in shards:
        print(f"  shard {s['shard']}: {s['nodes']:,} nodes, {s['first']} .. {s['last']}")
    for u in doc["updates"]:
        print(f"  update {u['component']} {u['version']} ({u['image']}) to {u['nodes']:,} nodes of {u['cohort']}")
    for f in doc["faults"]:
        shown = ", ".join(f["nodes"][:6]) + (" ..." if len(f["nodes"]) > 6 else "")
        print(f"  {f['rule']}: {len(f['nodes']):,} nodes: {shown}")
    return 0


# -- run, inventory, holders -----------------------------------------------------------------------------------------


# -- the parser ------------------------------------------------------------------------------------------------------


def _virtual_time(p: argparse.ArgumentParser) -> None:
    p.add_argument("--virtual-time", nargs="?", type=float, const=DEFAULT_THRESHOLD, default=None,
                   metavar="IDLE_S", help="run on a mock clock: modelled latencies take no wall time; the clock "
                                          f"jumps after IDLE_S real seconds of idleness (default {DEFAULT_THRESHOLD})")


def populate(p: argparse.ArgumentParser) -> None:
    """The ``fleet`` subcommands, on ``p`` (``lfafs fleet`` or ``python -m lfafs.fleet``)."""
    from lfafs.fleet.commands import FLEET_COMMANDS

    sub = p.add_subparsers(dest="fleet_command", required=True, metavar="COMMAND")

    u = sub.add_parser("up", help="bring a fleet up on this machine: shards, mounts, a supervisor")
    u.add_argument("description", metavar="FLEET.toml")
    u.add_argument("--root", help=f"where it lives (default: {DEFAULT_ROOT})")
    u.add_argument("--shards", type=int, help="how many shard processes (default: the description's)")
    _virtual_time(u)
    u.add_argument("--state-dir", metavar="DIR", help="keep each node's flash here across shard restarts")
    u.add_argument("--passthrough", action="store_true", help="show the host's other /sys/firmware entries")
    u.add_argument("--foreground", action="store_true", help="supervise in this process (systemd)")
    u.set_defaults(func=guarded("up", _up))

    d = sub.add_parser("down", help="stop the fleet: holders, shards, mounts (the state dir is kept)")
    d.add_argument("--root", help=f"default: {DEFAULT_ROOT}")
    d.set_defaults(func=guarded("down", _down))

    s = sub.add_parser("status", help="every node's state, versions, staged images and last activation")
    add_where(s)
    s.add_argument("--select", help="a label selector")
    s.add_argument("--json", action="store_true", help="one JSON object: shards and nodes")
    s.set_defaults(func=guarded("status", _status))

    pg = sub.add_parser("ping", help="is every shard up? (exit 0 once all are ready)")
    add_where(pg)
    pg.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for readiness")
    pg.add_argument("--partial", action="store_true", help="only the shards given, not the whole fleet "
                                                           "(a pod's readiness probe)")
    pg.set_defaults(func=guarded("ping", _ping))

    c = sub.add_parser("ctl", help="act on the nodes a selector picks: stage, fail, notify, reset, down, up, cpu")
    add_where(c)
    c.add_argument("--select", dest="fleet_select", metavar="SELECTOR",
                   help="a label selector, e.g. 'model=vera,rack in (r1,r2)' (default: every node)")
    cs = c.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    FLEET_COMMANDS.add_parsers(cs)
    c.set_defaults(func=guarded("ctl", _ctl))

    e = sub.add_parser("events", help="every node's activations, failures and state changes, as JSON lines")
    add_where(e)
    e.add_argument("--select", help="only these nodes' events")
    e.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events after this sequence number")
    e.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    e.set_defaults(func=guarded("events", _events))

    k = sub.add_parser("check", help="evaluate invariants over a run's events (exit 1 if one fails)")
    add_where(k)
    k.add_argument("--events", metavar="FILE", help="a saved `lfafs fleet events` output ('-': stdin) "
                                                    "instead of asking the shards")
    k.add_argument("--select", help="only these nodes' events")
    k.add_argument("--max-in-flight", type=int, metavar="K", help="never more than K activations at once")
    k.add_argument("--stop-after-failures", type=int, metavar="N", help="no activation starts after the N-th failure")
    k.add_argument("--no-failed-rmm", action="store_true", help="no node left with its Realm world disabled")
    k.add_argument("--expect-failed", metavar="NODES", help="exactly these nodes failed: ids, or @FILE "
                                                            "(e.g. from lfafs fleet plan --rule)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=guarded("check", _check))

    pl = sub.add_parser("plan", help="what a description makes: shards, updates, and the nodes each fault rule hits")
    pl.add_argument("description", metavar="FLEET.toml")
    pl.add_argument("--shards", type=int)
    pl.add_argument("--rule", metavar="NAME", help="only the node ids a rule hits, one a line (e.g. 'fault[0]')")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=guarded("plan", _plan))

    r = sub.add_parser("run", help="run an unmodified command on nodes: /sys/firmware is the node's tree")
    r.add_argument("--root", help=f"default: {DEFAULT_ROOT}")
    r.add_argument("--node", metavar="ID", help="one node; the command's exit status is returned")
    r.add_argument("--each", metavar="SELECTOR", help="every node the selector picks ('' for all)")
    r.add_argument("--parallel", type=int, default=1, metavar="N", help="with --each: N nodes at a time (default 1)")
    r.add_argument("--no-prefix", action="store_true", help="with --each: do not prefix output lines with the node id")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    r.set_defaults(func=guarded("run", cli_nodes.run))

    inv = sub.add_parser("inventory", help="an Ansible inventory (nsenter connection); starts a holder per node")
    inv.add_argument("--root", help=f"default: {DEFAULT_ROOT}")
    inv.add_argument("--select", default="", help="a label selector")
    inv.add_argument("--format", choices=("ini", "json"), default="ini", help="json is also YAML")
    inv.add_argument("-o", "--output", metavar="FILE")
    inv.set_defaults(func=guarded("inventory", cli_nodes.inventory))

    h = sub.add_parser("holders", help="the processes that hold each node's namespace for Ansible")
    hs = h.add_subparsers(dest="holders_action", required=True, metavar="ACTION")
    hstop = hs.add_parser("stop", help="stop them")
    hstop.add_argument("--root", help=f"default: {DEFAULT_ROOT}")
    hstop.add_argument("--select", default="")
    hstop.set_defaults(func=guarded("holders stop", cli_nodes.holders_stop))

    sh = sub.add_parser("shard", help="serve one shard in the foreground (systemd units, Kubernetes pods)")
    sh.add_argument("description", metavar="FLEET.toml")
    sh.add_argument("--index", type=int, help="which shard (default: from LFAFS_SHARD_INDEX, JOB_COMPLETION_INDEX "
                                              "or a StatefulSet hostname)")
    sh.add_argument("--shards", type=int, help="how many in all (default: the description's)")
    sh.add_argument("--root", help="mount at ROOT/shards/I and link ROOT/nodes/<id> (default: no mount)")
    sh.add_argument("--listen", action="append", metavar="EP", help="unix:PATH or tcp:HOST:PORT (repeatable; "
                                                                    "default unix:ROOT/run/shard-I.sock)")
    _virtual_time(sh)
    sh.add_argument("--state-dir", metavar="DIR")
    sh.add_argument("--passthrough", action="store_true")
    sh.set_defaults(func=guarded("shard", _shard))

    sv = sub.add_parser("supervise")  # internal: what `fleet up` runs detached
    sv.add_argument("root")
    sv.set_defaults(func=guarded("supervise", _supervise))


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fleet`` to the ``lfafs`` command line; handlers are set with set_defaults(func=...)."""
    p = subparsers.add_parser("fleet", help="many emulated nodes: up, down, status, ctl, run, events, check",
                              description="Fleets of emulated LFA nodes (docs/fleet.md).")
    populate(p)
    return p


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lfafs fleet", description="Fleets of emulated LFA nodes (docs/fleet.md).")
    populate(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback for the person: one line, as lfafs's own main
        print(f"lfafs fleet: internal error: {type(e).__name__}: {e}; please report it with the command line",
              file=sys.stderr)
        return 70
