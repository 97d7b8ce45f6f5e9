"""What the ``lfafs fleet`` commands share: where a fleet is, how errors reach a person.

Every handler is wrapped by ``guarded``: an error a person can cause (a bad
file, selector, endpoint, a fleet that is not there) is one line on stderr
naming the command, and status 1; anything else is a bug and shows its
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_ROOT = "/run/lfafs-fleet"
DEFAULT_THRESHOLD = 0.05  # real seconds of Trio idleness before a mock clock jumps, with agents outside Trio


class CommandError(Exception):
    """A sentence for the person; the handler prints it and returns 1."""


def errors():
    """The exceptions that are a person's mistake or the machine's state, never a bug."""
    from lfafs.fleet.description import DescriptionError
    from lfafs.fleet.faults import RuleError
    from lfafs.fleet.layout import LayoutError
    from lfafs.fleet.selector import SelectorError
    from lfafs.platform import PlatformError
    from lfafs.service.control import ControlError

    return (CommandError, DescriptionError, RuleError, LayoutError, SelectorError, ControlError, PlatformError,
            ValueError, OSError)


def guarded(name: str, handler):
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except errors() as e:
            message = getattr(e, "message", None) or str(e)
            if isinstance(e, OSError) and e.filename:
                message = f"{e.filename}: {e.strerror}"
            print(f"lfafs fleet {name}: {message}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            return 1

    return run


# -- finding the shards ---------------------------------------------------------------------------------


def add_where(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--root", help=f"a fleet on this machine (default: {DEFAULT_ROOT})")
    g.add_argument("--endpoint", action="append", metavar="EP", help="a shard's endpoint, unix:PATH or tcp:HOST:PORT "
                                                                     "(repeat for each shard)")
    g.add_argument("--service", metavar="HOST:PORT", help="a DNS name that resolves to every shard "
                                                          "(a Kubernetes headless Service)")


def client(args: argparse.Namespace):
    from lfafs.fleet.client import FleetClient, endpoints_of_service

    if args.endpoint:
        return FleetClient(args.endpoint)
    if args.service:
        return FleetClient(endpoints_of_service(args.service))
    return FleetClient.at_root(args.root or DEFAULT_ROOT)


def select(text: str | None) -> str:
    from lfafs.fleet.selector import parse

    parse(text or "")  # a bad selector is reported before any shard is asked
    return text or ""



def local_nodes(args: argparse.Namespace, selector_text: str):
    """(layout, [(node id, labels)]) of the selected nodes this machine serves."""
    from lfafs.fleet.description import load
    from lfafs.fleet.layout import Layout
    from lfafs.fleet.roster import Roster
    from lfafs.fleet.selector import parse

    layout = Layout(args.root or DEFAULT_ROOT)
    doc = layout.read()
    roster = Roster(load(doc["description"]), doc["shards"])
    chosen = roster.select(parse(selector_text))
    local = [(n.id, n.labels) for n in chosen if os.path.islink(layout.node_link(n.id))]
    return layout, roster, local
