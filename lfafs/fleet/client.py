"""Every shard of a fleet, asked at once: where they are, and their answers added up.

Shards are found three ways: a fleet brought up on this machine lists its
endpoints in ``ROOT/fleet.json``; endpoints may be given one by one
(``tcp:HOST:PORT``, ``unix:PATH``); or a DNS name with a port, such as a
Kubernetes headless Service, resolves to one address per shard pod. Each
shard says which index it is and how many shards the fleet has, so a
missing shard is reported rather than silently left out.
"""

from __future__ import annotations

import concurrent.futures
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

from lfafs.fleet.events import merge
from lfafs.fleet.layout import Layout
from lfafs.fleet.wire import ShardClient
from lfafs.service.control import ControlError


def endpoints_of_service(service: str) -> list[str]:
    """``HOST:PORT`` -> one tcp endpoint per address the name resolves to (a headless Service's pods)."""
    host, _, port = service.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"service {service!r}: give HOST:PORT, e.g. lfafs-fleet.lab.svc.cluster.local:7450")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ControlError("no-shard", f"{host} does not resolve: {e.strerror}") from None
    addrs = sorted({info[4][0] for info in infos})
    return [f"tcp:[{a}]:{port}" if ":" in a else f"tcp:{a}:{port}" for a in addrs]


class FleetClient:
    def __init__(self, endpoints: list[str], *, timeout: float = 120.0) -> None:
        if not endpoints:
            raise ValueError("no shard endpoints")
        self.clients = [ShardClient(e, timeout=timeout) for e in endpoints]

    @classmethod
    def at_root(cls, root: str, **kw) -> FleetClient:
        doc = Layout(root).read()
        return cls(doc["endpoints"], **kw)

    def call_all(self, cmd: str, **args: Any) -> list[Any]:
        """The same request to every shard, in parallel; ControlError (naming the shard) if one fails."""
        if len(self.clients) == 1:
            return [self.clients[0].call(cmd, **args)]
        with concurrent.futures.ThreadPoolExecutor(min(32, len(self.clients))) as pool:
            futures = [pool.submit(c.call, cmd, **args) for c in self.clients]
            out = []
            for c, f in zip(self.clients, futures, strict=True):
                try:
                    out.append(f.result())
                except ControlError as e:
                    raise ControlError(e.code, f"{c.endpoint}: {e.message}") from None
        return out

    def check_complete(self, pings: list[dict]) -> None:
        """ControlError unless the answers come from shards 0..S-1 of one fleet, each once."""
        counts = {p["shards"] for p in pings}
        if len(counts) != 1:
            raise ControlError("mixed", f"the endpoints belong to fleets of {sorted(counts)} shards")
        total = counts.pop()
        seen = sorted(p["shard"] for p in pings)
        missing = sorted(set(range(total)) - set(seen))
        if missing or len(seen) != total:
            raise ControlError("incomplete", f"found {len(set(seen))} of {total} shards"
                               + (f"; missing: {', '.join(map(str, missing))}" if missing else "; some twice"))

    def status(self, select: str = "") -> dict:
        shards = sorted(self.call_all("status", select=select), key=lambda s: s["shard"])
        nodes = [n for s in shards for n in s["nodes"]]
        return {"shards": [{k: v for k, v in s.items() if k != "nodes"} for s in shards], "nodes": nodes}

    def events(self, select: str = "", since: int = 0) -> list[dict]:
        return merge(self.call_all("events", select=select, since=since))

    def follow_events(self, select: str = "", since: int = 0) -> Iterator[dict]:
        """Every shard's events after ``since``, then new ones as they come (in arrival order)."""
        q: queue.Queue = queue.Queue(maxsize=10_000)
        stop = threading.Event()

        def pump(c: ShardClient) -> None:
            try:
                for ev in c.follow("events", select=select, since=since):
                    if stop.is_set():
                        return
                    q.put(ev)
            except ControlError as e:
                q.put(e)

        threads = [threading.Thread(target=pump, args=(c,), daemon=True) for c in self.clients]
        for t in threads:
            t.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, ControlError):
                    raise item
                yield item
        finally:
            stop.set()
