"""A shard's control endpoint: the control protocol's framing over a Unix socket or TCP.

The framing is lfafs's control protocol (docs/control-protocol.md): one
JSON request per line, ``{"id", "cmd", "args"}``, one reply line, or
``{"event": ...}`` lines for a streaming command with ``"follow": true``;
requests are checked with lfafs.service.control.validate against the fleet
command registry (commands.py) before anything changes. What is added is
the transport: a shard on one machine listens on a Unix socket, a shard in
a Kubernetes pod on TCP, so that ``lfafs fleet`` finds every shard behind a
headless Service. An endpoint is spelled ``unix:PATH`` or ``tcp:HOST:PORT``.

TCP has no authentication: expose it inside a cluster network only
(deploy/kubernetes has a NetworkPolicy that admits the fleet's own pods).
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from typing import Any

import trio

from lfafs.service.control import MAX_REQUEST, Commands, ControlError, decode_reply, prepare_socket_dir, validate


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


async def open_listeners(endpoints: list[str]) -> list[trio.abc.Listener]:
    listeners: list[trio.abc.Listener] = []
    for ep in endpoints:
        kind, where, port = parse_endpoint(ep)
        if kind == "tcp":
            listeners += await trio.open_tcp_listeners(port, host=where)
            continue
        prepare_socket_dir(where)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            await sock.bind(where)
        finally:
            os.umask(old)
        os.chmod(where, stat.S_IRUSR | stat.S_IWUSR)
        sock.listen(64)
        listeners.append(trio.SocketListener(sock))
    return listeners


async def serve(listeners: list[trio.abc.Listener], commands: Commands, session: Any) -> None:
    """Answer requests on ``listeners`` with ``commands`` acting on ``session`` (a Shard), until cancelled."""
    await trio.serve_listeners(lambda stream: _connection(stream, commands, session), listeners)


async def _connection(stream: trio.abc.Stream, commands: Commands, session: Any) -> None:
    buf = bytearray()
    async with stream:
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not chunk:
                return
            buf += chunk
            while (nl := buf.find(b"\n")) >= 0:
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                if not await _one(stream, commands, session, line):
                    return
            if len(buf) > MAX_REQUEST:
                await _send(stream, {"id": None, "ok": False, "error": {
                    "code": "too-large", "message": f"a request is at most {MAX_REQUEST} bytes"}})
                return


async def _send(stream: trio.abc.Stream, obj: dict) -> bool:
    try:
        await stream.send_all(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        return True
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False


async def _one(stream: trio.abc.Stream, commands: Commands, session: Any, line: bytes) -> bool:
    rid = None
    try:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ControlError("bad-request", f"not JSON: {e}") from None
        rid, command, args = validate(request, commands)

        async def event(obj: dict) -> bool:
            return await _send(stream, {"id": rid, "event": obj})

        result = await command.run(session, args, event)
    except ControlError as e:
        return await _send(stream, {"id": rid, "ok": False, "error": {"code": e.code, "message": e.message}})
    except Exception as e:  # a bug must not kill the shard; the client sees it
        return await _send(stream, {"id": rid, "ok": False, "error": {"code": "internal", "message": repr(e)}})
    return await _send(stream, {"id": rid, "ok": True, "result": result})


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
