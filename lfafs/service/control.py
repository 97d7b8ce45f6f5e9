"""The control plane: newline-delimited JSON over a Unix socket (docs/control-protocol.md).

Every request is one line ``{"id": ..., "cmd": "...", "args": {...}}`` and
gets one reply line ``{"id": ..., "ok": true, "result": ...}`` or
``{"id": ..., "ok": false, "error": {"code": "...", "message": "..."}}``;
``trace --follow`` and ``dmesg --follow`` keep sending ``{"event": ...}``
lines until the client closes. Requests are validated (size, JSON, known
command, argument names and types, known component) before anything
changes, so a bad request gets an error reply and changes nothing. Which
commands exist and what their arguments are is the registry's business
(registry.py, commands.py); this module only frames and checks requests.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

MAX_REQUEST = 32 << 20  # a base64 image of up to 16 MB fits
RUN_DIRS = ("/run/lfafs", os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "lfafs"))


class ControlError(Exception):
    """An error reply, or a failure to reach the daemon."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def socket_path(mountpoint: str) -> str:
    """Where the daemon serving ``mountpoint`` listens: found from the mountpoint alone."""
    key = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    base = RUN_DIRS[0] if os.geteuid() == 0 else RUN_DIRS[1]
    return os.path.join(base, key, "control.sock")


# -- requests ---------------------------------------------------------------------------------------


class Command(Protocol):
    """One command as the server sees it (registry.Command is one)."""

    async def run(self, session: Any, args: dict, event: Callable[[dict], Awaitable[bool]]) -> Any: ...


class Commands(Protocol):
    """What the server needs from the command table (registry.Registry is one)."""

    def __contains__(self, name: object) -> bool: ...

    def check(self, cmd: Any, args: dict) -> Command:
        """The command named ``cmd`` once ``args`` fit it; ControlError otherwise."""
        ...


def validate(request: Any, commands: Commands) -> tuple[Any, Command, dict]:
    """(id, command, args) of a well-formed request, or ControlError before anything changes."""
    if not isinstance(request, dict):
        raise ControlError("bad-request", "a request is a JSON object")
    rid = request.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
        raise ControlError("bad-request", "id must be an integer or a string")
    unknown = set(request) - {"id", "cmd", "args"}
    if unknown:
        raise ControlError("bad-request", f"unknown request fields: {', '.join(sorted(unknown))}")
    cmd = request.get("cmd")
    if cmd not in commands:
        commands.check(cmd, {})  # the unknown-command error, listing the commands
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ControlError("bad-request", "args must be a JSON object")
    return rid, commands.check(cmd, args), args


# -- the server ---------------------------------------------------------------------------------------


def prepare_socket_dir(path: str) -> None:
    d = os.path.dirname(path)
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


async def serve(path: str, commands: Commands, session: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` (0600 in a 0700 directory) and answer requests with ``commands`` on ``session``."""
    prepare_socket_dir(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        await trio.serve_listeners(lambda stream: _connection(stream, commands, session), [listener])
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


async def _connection(stream: trio.SocketStream, commands: Commands, session: Any) -> None:
    buf = bytearray()
    async with stream:
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf = bytearray(rest)
                if not await _one(stream, commands, session, line):
                    return
            if len(buf) > MAX_REQUEST:
                await _send(stream, {"id": None, "ok": False,
                                     "error": {"code": "too-large", "message": f"a request is at most {MAX_REQUEST} bytes"}})
                return


async def _send(stream: trio.SocketStream, obj: dict) -> bool:
    try:
        await stream.send_all(json.dumps(obj).encode() + b"\n")
        return True
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False


async def _one(stream: trio.SocketStream, commands: Commands, session: Any, line: bytes) -> bool:
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
    except Exception as e:  # a bug must not kill the daemon; the client sees it
        return await _send(stream, {"id": rid, "ok": False, "error": {"code": "internal", "message": repr(e)}})
    return await _send(stream, {"id": rid, "ok": True, "result": result})


# -- the client --------------------------------------------------------------------------------------------


class Client:
    """A blocking client for scripts, tests and the CLI."""

    def __init__(self, *, mount: str | None = None, socket_file: str | None = None, timeout: float = 120.0) -> None:
        if (mount is None) == (socket_file is None):
            raise ValueError("give exactly one of mount= or socket_file=")
        self.path = socket_file or socket_path(mount)
        self.timeout = timeout
        self._next = 0

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except FileNotFoundError:
            s.close()
            raise ControlError("no-daemon", f"no lfafs daemon listens on {self.path}; is the mount running?") from None
        except OSError as e:
            s.close()
            if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
                raise ControlError("no-daemon", f"no lfafs daemon listens on {self.path}") from None
            raise ControlError("io", f"{self.path}: {e.strerror}") from None
        return s

    def call(self, cmd: str, **args: Any) -> Any:
        self._next += 1
        with self._connect() as s:
            s.sendall(json.dumps({"id": self._next, "cmd": cmd, "args": args}).encode() + b"\n")
            reply = _read_line(s)
        if reply is None:
            raise ControlError("io", "the daemon closed the connection")
        if not reply.get("ok"):
            err = reply.get("error", {})
            raise ControlError(err.get("code", "error"), err.get("message", "request failed"))
        return reply.get("result")

    def follow(self, cmd: str, **args: Any):
        """Yield events until the daemon ends the stream or the caller stops iterating."""
        self._next += 1
        s = self._connect()
        s.settimeout(None)
        try:
            s.sendall(json.dumps({"id": self._next, "cmd": cmd, "args": {**args, "follow": True}}).encode() + b"\n")
            f = s.makefile("rb")
            for line in f:
                msg = json.loads(line)
                if "event" in msg:
                    yield msg["event"]
                elif not msg.get("ok"):
                    err = msg.get("error", {})
                    raise ControlError(err.get("code", "error"), err.get("message", "request failed"))
                else:
                    return
        finally:
            s.close()

    # conveniences
    def status(self) -> dict:
        return self.call("status")

    def stage(self, component: str, version: str | None = None, image: bytes | None = None) -> dict:
        args: dict[str, Any] = {"component": component}
        if version is not None:
            args["version"] = version
        if image is not None:
            args["image"] = base64.b64encode(image).decode()
        return self.call("stage", **args)


def _read_line(s: socket.socket) -> dict | None:
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def decode_image(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ControlError("bad-request", "image must be base64") from None
