"""``lfafs fleet run``, ``inventory`` and ``holders``: how agents reach the nodes served here.

Each goes through a node's private mount namespace (namespaces.py), so
they work on the machine (or in the pod) whose shards serve the nodes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import sys
import threading

from lfafs.fleet.cli_support import DEFAULT_ROOT, CommandError, local_nodes, select


def run(args: argparse.Namespace) -> int:
    from lfafs.fleet import namespaces

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError("give a command after --, e.g. "
                           "lfafs fleet run --each model=vera -- cat /sys/firmware/lfa/*/name")
    if (args.node is None) == (args.each is None):
        raise CommandError("give --node ID or --each SELECTOR")
    if args.node is not None:
        layout, roster, local = local_nodes(args, "")
        if args.node not in roster.by_id:
            raise CommandError(f"no node {args.node!r} in this fleet")
        tree = namespaces.node_tree(layout, args.node)
        env = namespaces.node_env(args.node, roster.by_id[args.node].labels)
        return subprocess.run(namespaces.command_line(tree, command), env=env).returncode
    layout, roster, local = local_nodes(args, args.each)
    if not local:
        raise CommandError(f"no node served here matches {args.each!r}")
    lock = threading.Lock()
    failed: list[tuple[str, int]] = []

    def one(node: str, labels) -> None:
        tree = namespaces.node_tree(layout, node)
        argv = namespaces.command_line(tree, command)
        env = namespaces.node_env(node, labels)
        if args.no_prefix:
            rc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL).returncode
        else:
            r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace")
            rc = r.returncode
            with lock:
                for line in r.stdout.splitlines():
                    print(f"{node}: {line}")
                for line in r.stderr.splitlines():
                    print(f"{node}: {line}", file=sys.stderr)
                sys.stdout.flush()
        if rc != 0:
            with lock:
                failed.append((node, rc))

    with concurrent.futures.ThreadPoolExecutor(max(1, args.parallel)) as pool:
        for f in [pool.submit(one, node, labels) for node, labels in local]:
            f.result()
    if failed:
        failed.sort()
        shown = ", ".join(f"{n} ({rc})" for n, rc in failed[:10]) + (" ..." if len(failed) > 10 else "")
        print(f"lfafs fleet run: {len(failed)} of {len(local)} nodes failed: {shown}", file=sys.stderr)
        return 1
    return 0


def inventory(args: argparse.Namespace) -> int:
    from lfafs.fleet import inventory, namespaces

    layout, _, local = local_nodes(args, select(args.select))
    if not local:
        raise CommandError(f"no node served here matches {args.select!r}")
    pids = namespaces.start_holders(layout, [n for n, _ in local])
    nodes = [(n, labels, pids[n]) for n, labels in local]
    text = inventory.as_ini(nodes) if args.format == "ini" else inventory.as_json(nodes)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def holders_stop(args: argparse.Namespace) -> int:
    from lfafs.fleet import namespaces
    from lfafs.fleet.layout import Layout

    if args.select:
        layout, _, local = local_nodes(args, select(args.select))
        n = namespaces.stop_holders(layout, [node for node, _ in local])
    else:
        n = namespaces.stop_holders(Layout(args.root or DEFAULT_ROOT))
    print(f"stopped {n} holders")
    return 0
