"""One shard process: its nodes, its FUSE mount and its control endpoints, in one Trio run.

``lfafs fleet shard FLEET.toml --index I --shards S --root ROOT`` is what a
supervisor (supervisor.py), a systemd unit (systemd/lfafs-fleet-shard@.service)
or a Kubernetes pod (deploy/kubernetes) runs. It opens its endpoints first
(``ping`` answers "booting" meanwhile), boots its slice of the roster,
mounts ``ROOT/shards/I``, links ``ROOT/nodes/<id>`` for its nodes, then
serves until SIGTERM/SIGINT/SIGHUP or the ``shutdown`` command, and leaves
nothing mounted.

On a mock clock (``--virtual-time``) Trio's clock jumps whenever the run has
been idle for the autojump threshold, so modelled latencies take no wall
time; nothing here sleeps on Trio's clock or sets a Trio timeout around
work done outside Trio (the FUSE loop, waiting for the mount), which a
jumping clock would cut short.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable

import trio
import trio.testing

from lfafs.fleet import faults as _faults
from lfafs.fleet import wire
from lfafs.fleet.commands import FLEET_COMMANDS
from lfafs.fleet.description import load
from lfafs.fleet.events import VIRTUAL, WALL, EventLog, read_lines
from lfafs.fleet.layout import Layout
from lfafs.fleet.operations import FleetOps
from lfafs.fleet.roster import Roster
from lfafs.fleet.shard import Shard
from lfafs.fs import mount_options
from lfafs.service import sdnotify

MOUNT_TIMEOUT = 30.0
SHARD_ENTRY_TIMEOUT = 1.0  # seconds the kernel may reuse a path lookup in the shard's mount


def fleet_ops(shard: Shard) -> FleetOps:
    nodes = shard.nodes

    def node_ops(node_id: str):
        node = nodes[node_id]
        return node.ops if node.up else None

    return FleetOps(node_ops, lambda: list(nodes))


def serve_fuse(ops: FleetOps, mountpoint: str) -> None:
    """The FUSE loop of the shard's mount, with a single node mount's options (blocking: run it in a thread)."""
    import mfusepy

    opts = mount_options(auto_unmount=True)
    # A node's tree keeps its shape for the shard's life (a fleet has no component add or remove),
    # so path lookups are cached as attributes are (docs/decisions/0014-shard-lookup-cache.md):
    # an agent's cat of nodes/<id>/lfa/<guid>/name is then OPEN and READ, not five LOOKUPs more.
    opts["entry_timeout"] = SHARD_ENTRY_TIMEOUT
    if os.geteuid() == 0:
        opts["allow_other"] = True  # agents in other mount namespaces, holders, Ansible
    mfusepy.FUSE(ops, mountpoint, raw_fi=True, **opts)


def wait_mounted(path: str, timeout: float = MOUNT_TIMEOUT) -> bool:
    """Poll in real time (call it in a thread): a mock clock must not time this out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.ismount(path):
            return True
        time.sleep(0.01)
    return False


def unmount(path: str) -> None:
    if subprocess.run(["fusermount3", "-u", path], capture_output=True).returncode != 0 and os.path.ismount(path):
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)


def link_nodes(layout: Layout, shard: Shard) -> None:
    """ROOT/nodes/<id> -> ../shards/<i>/nodes/<id> for this shard's nodes (replacing stale links)."""
    os.makedirs(layout.nodes_dir, exist_ok=True)
    for spec in shard.specs:
        link = layout.node_link(spec.id)
        target = layout.node_target(shard.index, spec.id)
        try:
            os.symlink(target, link)
        except FileExistsError:
            if os.readlink(link) != target:
                os.unlink(link)
                os.symlink(target, link)


def _previous_events(path: str | None) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        try:
            return read_lines(f)
        except ValueError:
            return []  # a torn last line after a crash: start the log afresh rather than fail


async def run_shard(roster: Roster, index: int, *, layout: Layout | None, listen: list[str],
                    clock: str = WALL, state_dir: str | None = None, events_file: str | None = None,
                    passthrough: str | None = None, announce: Callable[[str], None] = print,
                    handle_signals: bool = True, on_ready: Callable[[Shard], None] | None = None) -> int:
    """Serve shard ``index`` until a signal or the shutdown command; 0 once everything is unmounted.

    ``handle_signals`` is False in a thread (the pytest fixture), where Python
    delivers no signals; ``on_ready`` gets the shard once it serves.
    """
    previous = _previous_events(events_file)
    sink = open(events_file, "a") if events_file else None  # noqa: SIM115 - closed at the end
    try:
        events = EventLog(index, clock, sink=sink)
        if previous:  # a restarted shard continues its log (and, on a mock clock, its time)
            events.resume(previous)
            if clock == VIRTUAL and previous[-1]["t"] > trio.current_time():
                trio.lowlevel.current_clock().jump(previous[-1]["t"] - trio.current_time())
        shard = Shard(roster, index, clock=clock, passthrough=passthrough, state_dir=state_dir, events=events)
        receiver = (trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals
                    else contextlib.nullcontext())
        with receiver as signals:
            async with trio.open_nursery() as nursery:
                listeners = await wire.open_listeners(listen)
                if listeners:
                    nursery.start_soon(wire.serve, listeners, FLEET_COMMANDS, shard)
                await shard.boot(nursery)
                mnt = None
                if layout is not None:
                    mnt = layout.shard_mount(index)
                    os.makedirs(mnt, exist_ok=True)
                    done = trio.Event()

                    async def fuse_loop() -> None:
                        try:
                            await trio.to_thread.run_sync(
                                functools.partial(serve_fuse, fleet_ops(shard), mnt),
                                abandon_on_cancel=True)
                        finally:
                            done.set()

                    nursery.start_soon(fuse_loop)
                    if not await trio.to_thread.run_sync(wait_mounted, mnt):
                        raise RuntimeError(f"{mnt} did not become a mount point")
                    link_nodes(layout, shard)
                    nursery.start_soon(_set_when, done, shard.stopping)
                shard.ready.set()  # ping answers ready: the nodes are booted and mounted
                sdnotify.notify(f"READY=1\nSTATUS=shard {index}: {len(shard.nodes)} nodes"
                                + (f" at {mnt}" if mnt else ""))
                announce(f"lfafs fleet: shard {index}/{roster.shards} serves {len(shard.nodes)} nodes"
                         + (f" at {mnt}" if mnt else "") + f", control at {', '.join(listen)}")

                async def on_signal() -> None:
                    async for _ in signals:
                        shard.stopping.set()
                        return

                if handle_signals:
                    nursery.start_soon(on_signal)
                if on_ready is not None:
                    on_ready(shard)
                await shard.stopping.wait()
                sdnotify.notify("STOPPING=1")
                events.emit("shard.down", None)
                if mnt is not None:
                    await trio.to_thread.run_sync(unmount, mnt)
                nursery.cancel_scope.cancel()
    finally:
        if sink is not None:
            sink.close()
    return 0


async def _set_when(done: trio.Event, then: trio.Event) -> None:
    await done.wait()
    then.set()


def main(description_path: str, index: int, shards: int | None, *, root: str | None, listen: list[str],
         virtual_time: float | None = None, state_dir: str | None = None, passthrough: bool = False,
         announce: Callable[[str], None] = print) -> int:
    """The shard process: read and check everything first, then serve."""
    desc = load(description_path)
    roster = Roster(desc, shards)
    _faults.check_description(roster)
    roster.slice(index)  # the index is in range
    layout = Layout(root) if root else None
    events_file = None
    if layout is not None:
        os.makedirs(layout.run_dir, exist_ok=True)
        events_file = layout.events_file(index)
        if not os.path.exists(layout.fleet_file):  # a shard on its own (a pod, a unit): describe it
            layout.write({"description": os.path.abspath(description_path), "shards": roster.shards,
                          "endpoints": listen, "virtual_time": virtual_time, "standalone": index})
    if not listen:
        listen = [layout.shard_endpoint(index)] if layout else []
    clock = None
    if virtual_time is not None:
        clock = trio.testing.MockClock(autojump_threshold=virtual_time)
    return trio.run(functools.partial(
        run_shard, roster, index, layout=layout, listen=listen, clock=VIRTUAL if clock else WALL,
        state_dir=state_dir, events_file=events_file, passthrough="/sys/firmware" if passthrough else None,
        announce=announce), clock=clock)

