"""A shard's event log: every node's activations, failures and state changes, as JSON objects.

One event is one line of ``lfafs fleet events``::

    {"seq": 17, "t": 1733131200.52, "clock": "wall", "shard": 0, "node": "vera-0003",
     "kind": "activation.failed", "component": "rmm", "errno": "ECANCELED", "started": 1733131200.49, ...}

``t`` is the shard's clock: Unix time on the real clock (so logs of shards
on several machines merge by time), virtual seconds since the start of
the run on a mock clock. ``seq`` orders the events of one shard. Kinds:

    activation.started     a write to activate (via "sysfs") or a notification (via "notify") began
    activation.succeeded   ... returned; ``started`` is when it began, ``to_version`` what runs now
    activation.failed      ... failed: ``errno`` the writer saw, ``status``/``reason`` from the platform
    rmm.failed             the node's Realm world is disabled (its new RMM did not boot)
    rmm.recovered          ... enabled again (after a reset)
    node.down, node.up     the node lost power / booted (``reason``: ctl, reset, shard start)
    update.staged          an image was delivered out of band
    fault.armed            a fault was armed on the node (``rule`` says which)
    faults.cleared, cpu.off, cpu.on, notify, shard.up, shard.down

Owned by the shard's Trio run: ``emit`` is called from Trio only.
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from collections.abc import Callable
from typing import IO, Any

import trio

WALL, VIRTUAL = "wall", "virtual"
MAX_KEPT = 2_000_000  # events kept in memory for `fleet events` and `fleet check`; older ones are dropped

STARTED, SUCCEEDED, FAILED = "activation.started", "activation.succeeded", "activation.failed"
RMM_FAILED, RMM_RECOVERED = "rmm.failed", "rmm.recovered"


def clock_now(clock: str) -> Callable[[], float]:
    """The time stamp of events on ``clock``."""
    return time.time if clock == WALL else trio.current_time


class EventLog:
    def __init__(self, shard: int, clock: str = WALL, *, sink: IO[str] | None = None,
                 max_kept: int = MAX_KEPT) -> None:
        self.shard = shard
        self.clock = clock
        self.now = clock_now(clock)
        self.sink = sink
        self._events: collections.deque[dict] = collections.deque(maxlen=max_kept)
        self._seq = 0
        self._changed: trio.Event | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, kind: str, node: str | None = None, **fields: Any) -> dict:
        self._seq += 1
        ev = {"seq": self._seq, "t": round(self.now(), 6), "clock": self.clock, "shard": self.shard}
        if node is not None:
            ev["node"] = node
        ev["kind"] = kind
        ev.update(fields)
        self._events.append(ev)
        if self.sink is not None:
            self.sink.write(json.dumps(ev) + "\n")
            self.sink.flush()
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return ev

    def resume(self, previous: list[dict]) -> None:
        """Continue the log of a previous run of this shard (read back from its file)."""
        mine = [ev for ev in previous if ev.get("shard") == self.shard and isinstance(ev.get("seq"), int)]
        self._events.extend(mine)
        if mine:
            self._seq = max(self._seq, mine[-1]["seq"])

    def since(self, seq: int = 0, limit: int | None = None) -> list[dict]:
        """Events after ``seq``, oldest first (at most ``limit``)."""
        if not self._events or self._events[-1]["seq"] <= seq:
            return []
        first = self._events[0]["seq"]
        start = max(0, seq + 1 - first)
        if start < len(self._events) and self._events[start]["seq"] == max(seq + 1, first):
            out = list(itertools.islice(self._events, start, None))
        else:  # numbering with gaps (a log resumed from a file): look at every event
            out = [ev for ev in self._events if ev["seq"] > seq]
        return out[:limit] if limit is not None else out

    async def wait_after(self, seq: int) -> None:
        """Return once there is an event after ``seq`` (no polling: safe on a mock clock)."""
        while self._seq <= seq:
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()


def merge(streams: list[list[dict]]) -> list[dict]:
    """Events of several shards in one order: time, then shard, then sequence."""
    out = [ev for s in streams for ev in s]
    out.sort(key=lambda ev: (ev.get("t", 0.0), ev.get("shard", 0), ev.get("seq", 0)))
    return out


def read_lines(lines) -> list[dict]:
    """Events from JSON lines (a saved `fleet events` output); ValueError names the bad line."""
    out = []
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {i}: not JSON ({e.msg})") from None
        if not isinstance(ev, dict) or "kind" not in ev or "t" not in ev:
            raise ValueError(f"line {i}: not a fleet event (no kind or t)")
        out.append(ev)
    return out
