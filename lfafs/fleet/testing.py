"""The ``lfafs_fleet`` pytest fixture: a fleet in the test's own process, on a mock clock if asked.

The fleet is one shard (shard.py) run by serve.run_shard in a thread of the
test process, so an orchestrator written in Python drives hundreds of nodes
without a process or a mount per node, and on a mock clock (``virtual_time=True``)
a wave with ten seconds of modelled activation per node takes a moment of
wall time; reported times are then virtual seconds. With ``mount=True`` the
shard is also mounted (root and /dev/fuse needed, the test is skipped
otherwise) under a fleet root that ``lfafs fleet run --root``, ``status``,
``events`` and ``check`` use as they would a fleet brought up with
``lfafs fleet up``::

    def test_waves_stop_after_two_failures(lfafs_fleet):
        fleet = lfafs_fleet("fleet.toml", virtual_time=True)
        async def rollout():
            for wave in waves(fleet.nodes, 50):
                results = await fleet.activate_all(wave, "rmm")
                ...
        fleet.run(rollout)
        assert fleet.check(max_in_flight=50, stop_after_failures=2).ok
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import trio
import trio.testing

from lfafs.driver.lfa import DriverError
from lfafs.fleet import description as _description
from lfafs.fleet import faults as _faults
from lfafs.fleet.checks import Invariants, Report, evaluate
from lfafs.fleet.commands import FLEET_COMMANDS
from lfafs.fleet.events import VIRTUAL, WALL
from lfafs.fleet.layout import Layout
from lfafs.fleet.node import Node
from lfafs.fleet.roster import Roster
from lfafs.fleet.selector import parse
from lfafs.fleet.serve import run_shard
from lfafs.fleet.shard import Shard
from lfafs.service import access
from lfafs.service.control import ControlError

START_TIMEOUT = 600.0  # real seconds to boot (a thousand nodes take a few)


class FleetStartError(RuntimeError):
    pass


def describe(source: str | os.PathLike | Mapping[str, Any] | _description.Description | None, nodes: int | None,
             seed: int) -> _description.Description:
    """A Description from a file, a dict shaped like the TOML, a Description, or just a node count."""
    if isinstance(source, _description.Description):
        return source
    if isinstance(source, Mapping):
        return _description.from_dict(source, "<lfafs_fleet>")
    if source is not None:
        return _description.load(source)
    if nodes is None:
        raise ValueError("give a description (a file, a dict, a Description) or nodes=N")
    return _description.from_dict({"fleet": {"seed": seed}, "cohort": [{"name": "node", "count": nodes}]},
                                  "<lfafs_fleet>")


class InProcessFleet:
    """A running in-process fleet: its shard, its Trio loop (in a thread) and, if mounted, its root."""

    def __init__(self, desc: _description.Description, *, virtual_time: bool | float = False,
                 mount: bool = False, raw: Mapping[str, Any] | None = None) -> None:
        self.roster = Roster(desc, 1)
        _faults.check_description(self.roster)
        self.virtual = virtual_time is not False
        threshold = 0.0 if virtual_time is True else (virtual_time if self.virtual else None)
        if mount and self.virtual and threshold == 0.0:
            threshold = 0.05  # agents outside Trio: give their requests time to arrive before the clock jumps
        self.clock = trio.testing.MockClock(autojump_threshold=threshold) if self.virtual else None
        self.layout: Layout | None = None
        self._tmp: str | None = None
        if mount:
            self._tmp = tempfile.mkdtemp(prefix="lfafs-fleet-")
            self.layout = Layout(self._tmp)
            os.makedirs(self.layout.run_dir)
            source = desc.source
            if raw is not None:  # the fleet commands read the description from a file: keep one
                source = os.path.join(self.layout.run_dir, "fleet.json")
                with open(source, "w") as f:
                    json.dump(raw, f)
            elif not os.path.exists(source):
                raise ValueError("a mounted fleet needs its description as a file or a dict")
            self.layout.write({"description": os.path.abspath(source), "shards": 1, "nodes": len(self.roster),
                               "endpoints": [self.layout.shard_endpoint(0)], "virtual_time": threshold,
                               "state_dir": None, "passthrough": False, "supervisor": None, "in_process": True})
        self.shard: Shard | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="lfafs-fleet", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.close()
            raise FleetStartError(f"the fleet did not start: {self._error!r}")

    def _main(self) -> None:
        def on_ready(shard: Shard) -> None:
            self.shard = shard
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()

        listen = [self.layout.shard_endpoint(0)] if self.layout else []
        try:
            trio.run(lambda: run_shard(self.roster, 0, layout=self.layout, listen=listen,
                                       clock=VIRTUAL if self.virtual else WALL, announce=lambda line: None,
                                       handle_signals=False, on_ready=on_ready), clock=self.clock)
        except BaseException as e:  # reported by the constructor or close()
            self._error = e
        finally:
            self._ready.set()

    # -- the fleet ---------------------------------------------------------------------------------

    @property
    def root(self) -> pathlib.Path | None:
        """The fleet root (``--root`` for the lfafs fleet commands) when mounted."""
        return pathlib.Path(self.layout.root) if self.layout else None

    @property
    def nodes(self) -> list[str]:
        return [n.id for n in self.roster.nodes]

    def select(self, selector: str) -> list[str]:
        return [n.id for n in self.roster.select(parse(selector))]

    def node(self, node_id: str) -> Node:
        """The node object (its ``platform`` and ``driver``); touch it only inside ``run``/``call``."""
        return self.shard.nodes[node_id]

    def run(self, async_fn: Callable, *args: Any) -> Any:
        """Run ``await async_fn(*args)`` in the fleet's Trio loop (on its mock clock if virtual)."""
        return trio.from_thread.run(async_fn, *args, trio_token=self.token)

    def call(self, fn: Callable, *args: Any) -> Any:
        """Run a plain function in the fleet's Trio loop."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)

    def now(self) -> float:
        """The fleet's clock: virtual seconds on a mock clock, Unix time otherwise."""
        return self.call(self.shard.events.now)

    def ctl(self, command: str, select: str = "", **args: Any) -> dict:
        """A fleet control command (``lfafs fleet ctl``), e.g. ``ctl("fail", "model=vera", component="rmm",
        at="prime", status="LFA_AUTH_ERROR", ratio=0.02)``; ControlError for a bad request."""
        args = {"select": select, **args}
        cmd = FLEET_COMMANDS.check(command, args)

        async def go() -> Any:
            async def no_events(ev: dict) -> bool:
                return False
            return await cmd.run(self.shard, args, no_events)

        return self.run(go)

    def status(self, select: str = "") -> dict:
        return self.ctl("status", select)

    def events(self, select: str = "") -> list[dict]:
        return self.ctl("events", select)

    def check(self, **invariants: Any) -> Report:
        """fleet check over this run's events: max_in_flight=, stop_after_failures=, no_failed_rmm=, expect_failed=."""
        return evaluate(self.events(), Invariants(**invariants))

    # -- the sysfs path, for orchestrators written in Python (call inside ``run``) -------------------

    async def write(self, node_id: str, component: str, attr: str, text: bytes = b"1\n") -> int:
        """Write an attribute as an agent writing /sys/firmware/lfa/<guid>/<attr> would; 0 or the errno."""
        node = self.node(node_id)
        ops = node.ops
        if ops is None:
            return errno.EHOSTDOWN
        guid = node.platform.component(component).guid
        try:
            await ops._driver.write(guid, attr, text)  # the node's DriverView: what the FUSE write enters
        except DriverError as e:
            return e.errno
        return 0

    async def read(self, node_id: str, component: str, attr: str) -> str:
        node = self.node(node_id)
        if node.ops is None:
            raise OSError(errno.EHOSTDOWN, os.strerror(errno.EHOSTDOWN))
        view = node.ops._driver
        guid = node.platform.component(component).guid
        cached = view.read_cached(guid, attr)
        return (cached if cached is not None else await view.read(guid, attr)).decode()

    async def activate(self, node_id: str, component: str) -> int:
        """``echo 1 > activate`` on one node: 0, or the errno the writer would see."""
        return await self.write(node_id, component, "activate")

    async def activate_all(self, node_ids: list[str], component: str) -> dict[str, int]:
        """A wave: every node at once; node -> 0 or errno."""
        out: dict[str, int] = {}

        async def one(n: str) -> None:
            out[n] = await self.activate(n, component)

        async with trio.open_nursery() as nursery:
            for n in node_ids:
                nursery.start_soon(one, n)
        return out

    def close(self) -> None:
        if self.token is not None and self._thread.is_alive():
            try:
                self.call(self.shard.stopping.set)
            except trio.RunFinishedError:
                pass
        self._thread.join(60)
        if self._tmp is not None:
            for d in (os.path.join(self._tmp, "shards", "0"), os.path.join(self._tmp, "shards")):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def unavailable_mount() -> str | None:
    """Why a mounted fleet cannot run here (FUSE as lfafs checks it, and root), or None."""
    problem = access.fuse_problem()
    if problem is not None:
        return f"a mounted fleet needs FUSE: {problem}"
    if os.geteuid() != 0:
        return "a mounted fleet needs root (mounts and mount namespaces)"
    return None


@pytest.fixture
def lfafs_fleet() -> Iterator[Callable[..., InProcessFleet]]:
    """A factory: ``lfafs_fleet("fleet.toml" | {...} | nodes=N, virtual_time=True, mount=False, seed=0)``.

    Each fleet it makes is stopped at the end of the test. ``mount=True``
    skips the test where mounting is impossible.
    """
    made: list[InProcessFleet] = []

    def make(description=None, *, nodes: int | None = None, seed: int = 0, virtual_time: bool | float = False,
             mount: bool = False) -> InProcessFleet:
        if mount:
            why = unavailable_mount()
            if why:
                pytest.skip(why)
        desc = describe(description, nodes, seed)
        raw = description if isinstance(description, Mapping) else None
        if description is None:
            raw = {"fleet": {"seed": seed}, "cohort": [{"name": "node", "count": nodes}]}
        fleet = InProcessFleet(desc, virtual_time=virtual_time, mount=mount, raw=raw)
        made.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in made:
            fleet.close()


__all__ = ["ControlError", "FleetStartError", "InProcessFleet", "lfafs_fleet"]
