"""A shard's control endpoint: the control protocol's framing over a Unix socket or TCP.

The framing is lfafs's control protocol (docs/control-protocol.md): one
JSON request per line, ``{"id", "cmd", "args"}``, one reply line, or
``{"event": ...}`` lines for a streaming command with ``"follow": true``.
The daemon's connection loop (lfafs.service.control_server.Server) reads, checks
and answers them against the fleet command registry (commands.py), with
the daemon's limits (docs/control-protocol.md, "Limits"). What is added is
the transport: a shard on one machine listens on a Unix socket, a shard in
a Kubernetes pod on TCP, so that ``lfafs fleet`` finds every shard behind a
headless Service. An endpoint is spelled ``unix:PATH`` or ``tcp:HOST:PORT``.

TCP has no authentication: expose it inside a cluster network only
(deploy/kubernetes has a NetworkPolicy that admits the fleet's own pods).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import trio

from lfafs.service import control_server
from lfafs.service.control import Commands, ControlError, decode_reply

COMPACT = (",", ":")  # a shard's replies have always been compact JSON; the daemon's are json.dumps's default


def parse_endpoint(text: str) -> tuple[str, str, int]:
    """("unix", path, 0) or ("tcp", host, port); ValueError with the accepted forms."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return "unix", rest, 0
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return "tcp", host.strip("[]"), int(port)
    raise ValueError(f"endpoint {text!r}: give unix:PATH or tcp:HOST:PORT")


# -- the server -------------------------------------------------------------------------------------------


async def open_listeners(endpoints: list[str]) -> list[trio.SocketListener]:
    """A listener per endpoint: a Unix socket as the daemon's (control_server.bind_unix), or TCP."""
    listeners: list[trio.SocketListener] = []
    try:
        for ep in endpoints:
            kind, where, port = parse_endpoint(ep)
            if kind == "tcp":
                listeners += await trio.open_tcp_listeners(port, host=where, backlog=control_server.BACKLOG)
            else:
                listeners.append(await control_server.bind_unix(where))
    except BaseException:
        for listener in listeners:
            listener.socket.close()  # no await: this may be a cancellation
        raise
    return listeners


async def serve(listeners: list[trio.SocketListener], commands: Commands, session: Any) -> None:
    """Answer requests on ``listeners`` with ``commands`` acting on ``session`` (a Shard), until cancelled.

    The daemon's connection loop (control_server.Server) with its limits: connection
    slots, a memory budget, request size and parse checks, idle and send
    timeouts on the wall clock; the shard's replies keep their compact JSON.
    """
    await control_server.Server(commands, session, name="the shard", separators=COMPACT).serve(listeners)


# -- the client -----------------------------------------------------------------------------------------------


class ShardClient:
    """A blocking client of one shard's endpoint."""

    def __init__(self, endpoint: str, *, timeout: float = 120.0) -> None:
        self.endpoint = endpoint
        self.kind, self.where, self.port = parse_endpoint(endpoint)
        self.timeout = timeout
        self._next = 0

    def _connect(self) -> socket.socket:
        try:
            if self.kind == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                try:
                    s.connect(self.where)
                except OSError:
                    s.close()
                    raise
                return s
            return socket.create_connection((self.where, self.port), timeout=self.timeout)
        except OSError as e:
            raise ControlError("no-shard", f"no shard answers at {self.endpoint}: {e.strerror or e}") from None

    def _request(self, s: socket.socket, cmd: str, args: dict) -> None:
        self._next += 1
        s.sendall(json.dumps({"id": self._next, "cmd": cmd, "args": args}).encode() + b"\n")

    def call(self, cmd: str, **args: Any) -> Any:
        with self._connect() as s:
            try:
                self._request(s, cmd, args)
                line = s.makefile("rb").readline()
            except OSError as e:
                raise ControlError("io", f"{self.endpoint}: {e.strerror or e}") from None
        if not line:
            raise ControlError("io", f"{self.endpoint}: the shard closed the connection")
        reply = decode_reply(line)
        if not reply.get("ok"):
            err = reply.get("error", {})
            raise ControlError(err.get("code", "error"), err.get("message", "request failed"))
        return reply.get("result")

    def follow(self, cmd: str, **args: Any) -> Iterator[dict]:
        """Events of a streaming command until the shard ends the stream or the caller stops."""
        s = self._connect()
        s.settimeout(None)
        try:
            self._request(s, cmd, {**args, "follow": True})
            for line in s.makefile("rb"):
                msg = decode_reply(line)
                if "event" in msg:
                    yield msg["event"]
                elif not msg.get("ok"):
                    err = msg.get("error", {})
                    raise ControlError(err.get("code", "error"), err.get("message", "request failed"))
                else:
                    return
        finally:
            s.close()
