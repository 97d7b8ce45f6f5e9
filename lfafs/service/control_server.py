"""The control server: one connection loop for every endpoint that speaks the control protocol.

The daemon's socket (``serve``) and a fleet shard's Unix and TCP endpoints
(lfafs/fleet/wire.py) are served by ``Server``, so no endpoint goes without a
limit. Requests are framed, parsed and checked by control.py's functions.

The server is bounded, so that no client can starve the platform it shares
a Trio run with: at most MAX_CONNECTIONS are served at once (the others
wait in the listen queue, and are refused with ``busy`` after QUEUE_WAIT),
the unfinished requests of all connections together hold at most
BUFFER_BUDGET bytes (beyond it a request is refused with ``busy``), a
request is at most MAX_REQUEST bytes, a connection that sends nothing for
IDLE_TIMEOUT or does not read its reply within SEND_TIMEOUT is closed, and
a large request is parsed outside the event loop. The limits are read when
used, so a test may change them.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import stat
from typing import Any

import attrs
import trio
import trio.testing

from lfafs.service.control import (
    Commands,
    ControlError,
    _error,
    ensure_run_dir,
    parse,
    request_id,
    run_dir,
    validate,
)
from lfafs.service.state import StateError

MAX_REQUEST = 32 << 20  # a base64 image of up to 16 MB fits
MAX_CONNECTIONS = 64  # served at once
BACKLOG = 128  # connections the kernel queues beyond those
QUEUE_WAIT = 10.0  # seconds a queued connection waits for a slot before it is refused
BUFFER_BUDGET = 64 << 20  # bytes of unfinished requests, all connections together
IDLE_TIMEOUT = 60.0  # seconds a connection may stay silent between or within requests
SEND_TIMEOUT = 30.0  # seconds a client may take to read a reply
THREAD_PARSE = 1 << 20  # requests from this size on are parsed in a worker thread


def prepare_socket_dir(path: str) -> None:
    """The 0700 directory of a socket about to be bound at ``path``, with no stale socket in it.

    Under this user's run directory the run directory is made and checked first
    (``ensure_run_dir``), so nothing is put in one another user could have prepared.
    """
    d = os.path.dirname(path)
    if os.path.dirname(d) == run_dir():
        ensure_run_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    if os.path.lexists(path):
        # A socket left by a killed daemon; refuse if another daemon still answers it.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise ControlError("busy", f"another lfafs daemon is listening on {path}")
        finally:
            probe.close()


async def bind_unix(path: str) -> trio.SocketListener:
    """A listener on ``path``: a socket of mode 0600 in a directory of mode 0700 (prepare_socket_dir).

    The umask is narrowed around bind(), so the socket is never reachable by
    others, not even between bind() and chmod().
    """
    prepare_socket_dir(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            await sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def serve(path: str, commands: Commands, session: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """The daemon's control socket: listen on ``path`` and answer requests with ``commands`` on ``session``."""
    listener = await bind_unix(path)
    try:
        await Server(commands, session).serve([listener], task_status=task_status)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


class _Budget:
    """Bytes of unfinished requests held by all connections together."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.total:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


@attrs.define
class Server:
    """The one connection loop of every control endpoint: the daemon's socket, a fleet shard's sockets.

    ``commands`` checks each request and ``session`` is what it acts on;
    ``name`` is who a ``busy`` reply speaks of; ``separators`` spell the
    reply JSON, so each endpoint keeps the bytes it always sent (the
    daemon json.dumps's default, a fleet shard the compact form). The
    limits are the module's (MAX_CONNECTIONS and the rest, read when used).

    On a mock clock (a fleet's --virtual-time) the idle, send and queue
    timeouts are off: that clock jumps whenever the run is idle, so a Trio
    timeout would cut off a client that is merely slow (fleet/serve.py sets
    no Trio timeout around work done outside Trio for the same reason). The
    size, memory and connection limits hold on any clock.
    """

    commands: Commands
    session: Any
    name: str = "the daemon"
    separators: tuple[str, str] = (", ", ": ")
    _slots: trio.Semaphore = attrs.field(init=False)
    _budget: _Budget = attrs.field(init=False)
    _timed: bool = attrs.field(init=False, default=True)

    async def serve(self, listeners: list[trio.SocketListener], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Answer connections on every listener, sharing one set of limits, until cancelled; then close them."""
        self._slots = trio.Semaphore(MAX_CONNECTIONS)
        self._budget = _Budget(BUFFER_BUDGET)
        self._timed = not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
        try:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                task_status.started()
        finally:
            for listener in listeners:
                # No await: in the cancelled scope of a stopping daemon or shard, aclose()'s
                # checkpoint would raise at once and leave the other listeners open.
                listener.socket.close()

    def _within(self, seconds: float) -> trio.CancelScope:
        return trio.move_on_after(seconds if self._timed else math.inf)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            stream = await _accept(listener)
            # Not accepting while no slot is free leaves later clients in the kernel's queue.
            with self._within(QUEUE_WAIT):
                await self._slots.acquire()
                nursery.start_soon(self._connection, stream)
                continue
            await self._refuse(stream, f"{self.name} serves {MAX_CONNECTIONS} connections already; try again")

    async def _refuse(self, stream: trio.SocketStream, message: str) -> None:
        async with stream:
            with trio.move_on_after(1.0):
                try:
                    await stream.send_all(self._line(_error(None, "busy", message)))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    async def _connection(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        held = 0  # budget bytes this connection holds: len(buf)
        try:
            async with stream:
                while True:
                    chunk = None
                    with self._within(IDLE_TIMEOUT):
                        try:
                            chunk = await stream.receive_some(1 << 20 if len(buf) >= 65536 else 65536)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            return
                    if not chunk:
                        return  # closed, or silent too long: the slot goes to someone else
                    if not self._budget.take(len(chunk)):
                        await self._send(stream, _error(None, "busy", f"{self.name} is receiving other large "
                                                                      "requests; try again"))
                        return
                    held += len(chunk)
                    buf += chunk
                    while (end := buf.find(b"\n")) >= 0:
                        line = bytes(buf[:end])
                        del buf[:end + 1]
                        self._budget.give(held - len(buf))
                        held = len(buf)
                        if len(line) > MAX_REQUEST:
                            await self._send(stream, _error(None, "too-large",
                                                            f"a request is at most {MAX_REQUEST} bytes"))
                            return
                        if not await self._one(stream, line):
                            return
                    if len(buf) > MAX_REQUEST:
                        await self._send(stream, _error(None, "too-large", f"a request is at most {MAX_REQUEST} bytes"))
                        return
        finally:
            self._budget.give(held)
            self._slots.release()

    def _line(self, obj: dict) -> bytes:
        return json.dumps(obj, separators=self.separators).encode() + b"\n"

    async def _send(self, stream: trio.SocketStream, obj: dict) -> bool:
        with self._within(SEND_TIMEOUT):
            try:
                await stream.send_all(self._line(obj))
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return False  # the client does not read: it loses the connection

    async def _one(self, stream: trio.SocketStream, line: bytes) -> bool:
        rid = None
        try:
            if len(line) >= THREAD_PARSE:
                request = await trio.to_thread.run_sync(parse, line)
            else:
                request = parse(line)
            rid = request_id(request)
            rid, command, args = validate(request, self.commands)

            async def event(obj: dict) -> bool:
                return await self._send(stream, {"id": rid, "event": obj})

            result = await command.run(self.session, args, event)
        except ControlError as e:
            return await self._send(stream, _error(rid, e.code, e.message))
        except StateError as e:  # a save that failed undid the change (state.FlashWriter)
            return await self._send(stream, _error(rid, "flash-write", str(e)))
        except Exception as e:  # a bug must not kill the daemon; the client sees it
            return await self._send(stream, _error(rid, "internal", repr(e)))
        return await self._send(stream, {"id": rid, "ok": True, "result": result})


async def _accept(listener: trio.SocketListener) -> trio.SocketStream:
    """The next connection; when descriptors run out it waits in the kernel's queue and we retry."""
    while True:
        try:
            return await listener.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                await trio.sleep(0.1)
            elif e.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                raise


# -- the client --------------------------------------------------------------------------------------------
