"""The control plane: newline-delimited JSON over a Unix socket (docs/control-protocol.md).

Every request is one line ``{"id": ..., "cmd": "...", "args": {...}}`` and
gets one reply line ``{"id": ..., "ok": true, "result": ...}`` or
``{"id": ..., "ok": false, "error": {"code": "...", "message": "..."}}``,
the request's id echoed on every reply it can be read from;
``trace --follow`` and ``dmesg --follow`` keep sending ``{"event": ...}``
lines until the client closes. Requests are validated (size, JSON, known
command, argument names and types, known component) before anything
changes, so a bad request gets an error reply and changes nothing. Which
commands exist and what their arguments are is the registry's business
(registry.py, commands.py); this module only frames and checks requests.

The server (control_server.py) frames the same lines on the daemon's socket
and on a fleet shard's endpoints, within its limits.

The socket lives in this user's run directory (``run_dir``): /run/lfafs
for root, $XDG_RUNTIME_DIR/lfafs or /tmp/lfafs-UID for others, refused if
another user made it or may write it.

The framing, the checks, the error codes and the client are defined once
here; the server that applies them is control_server.py.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import math
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from lfafs.service import mounts

MAX_ID_TEXT = 256
MAX_MESSAGE = 1024  # an error message longer than this is cut (it may quote what was sent)
ROOT_RUN_DIR = "/run/lfafs"
SHARED_TMP = "/tmp"  # where an ordinary user without $XDG_RUNTIME_DIR gets a run directory of their own


class ControlError(Exception):
    """An error reply, or a failure to reach the daemon."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def run_dir() -> str:
    """Where this user's daemons keep their sockets and logs (docs/control-protocol.md).

    Root's is /run/lfafs; an ordinary user's is $XDG_RUNTIME_DIR/lfafs, or
    /tmp/lfafs-UID without one: never a directory every user shares, which
    another user could create first and so read or replace what is put in it.
    """
    if os.geteuid() == 0:
        return ROOT_RUN_DIR
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return os.path.join(xdg, "lfafs")
    return os.path.join(SHARED_TMP, f"lfafs-{os.geteuid()}")


def check_run_dir(path: str) -> None:
    """ControlError("unsafe-run-dir") unless ``path`` is a directory (not a link) of this user that only they
    may write; a missing one is fine. As ssh-agent and tmux check their directories under /tmp.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ControlError("unsafe-run-dir", f"{path}: {e.strerror}: cannot check lfafs's run directory") from None
    fix = "remove it (or set XDG_RUNTIME_DIR to a directory of your own) and try again"
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError("unsafe-run-dir", f"{path} is not a directory (a link, or a file): {fix}")
    if st.st_uid != os.geteuid():
        raise ControlError("unsafe-run-dir", f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): "
                                             f"another user may have made it; {fix}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ControlError("unsafe-run-dir", f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                                             f"{fix}")


def ensure_run_dir() -> str:
    """This user's run directory, made 0700 if missing; ControlError("unsafe-run-dir") if it is not safe."""
    path = run_dir()
    check_run_dir(path)  # a link or another user's directory gets its own sentence, not makedirs's
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise ControlError("unsafe-run-dir", f"cannot make lfafs's run directory {path}: {e.strerror}") from None
    check_run_dir(path)  # made by us, or by someone else between the two checks
    return path


def socket_path(mountpoint: str) -> str:
    """Where the daemon serving ``mountpoint`` listens: found from the mountpoint alone."""
    key = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    return os.path.join(run_dir(), key, "control.sock")


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


def parse(line: bytes) -> Any:
    """A request line as JSON; bad-request for anything JSON or Python cannot represent as sent.

    NaN, Infinity and numbers that overflow a float are refused (they are not
    JSON, and an infinite latency would hang an activation); so are integers
    of more than 4300 digits and nesting deeper than Python's recursion limit.
    """
    def constant(name: str) -> Any:
        raise ControlError("bad-request", f"not JSON: {name} is not a JSON number")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ControlError("bad-request", f"not JSON: {text[:40]} does not fit a double")
        return value

    try:
        return json.loads(line, parse_constant=constant, parse_float=finite)
    except RecursionError:
        raise ControlError("bad-request", "not JSON: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ControlError("bad-request", f"not JSON: not UTF-8 ({e.reason})") from None
    except ValueError as e:
        if "integer string conversion" in str(e):
            raise ControlError("bad-request", "not JSON: an integer of more than 4300 digits") from None
        raise ControlError("bad-request", f"not JSON: {e}") from None


def request_id(request: Any) -> Any:
    """The id to echo: the request's own when it is a valid id, otherwise None."""
    if not isinstance(request, dict):
        return None
    rid = request.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and -(1 << 63) <= rid < 1 << 64:
        return rid
    if isinstance(rid, str) and len(rid) <= MAX_ID_TEXT:
        return rid
    return None


def validate(request: Any, commands: Commands) -> tuple[Any, Command, dict]:
    """(id, command, args) of a well-formed request, or ControlError before anything changes."""
    if not isinstance(request, dict):
        raise ControlError("bad-request", "a request is a JSON object")
    rid = request.get("id")
    if rid is not None and request_id(request) is None:
        raise ControlError("bad-request", f"id must be a 64-bit integer or a string of at most {MAX_ID_TEXT} "
                                          "characters")
    unknown = set(request) - {"id", "cmd", "args"}
    if unknown:
        raise ControlError("bad-request", f"unknown request fields: {', '.join(sorted(unknown))}"[:MAX_MESSAGE])
    cmd = request.get("cmd")
    if not isinstance(cmd, str):
        raise ControlError("unknown-command", f"cmd must be a string naming a command, not {type(cmd).__name__}"
                           if "cmd" in request else "cmd is missing")
    if cmd not in commands:
        commands.check(cmd[:64], {})  # the unknown-command error, listing the commands
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ControlError("bad-request", "args must be a JSON object")
    return rid, commands.check(cmd, args), args


def _error(rid: Any, code: str, message: str) -> dict:
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3] + "..."
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


class Client:
    """A blocking client for scripts, tests and the CLI.

    Failures to reach a daemon are ControlErrors with their own codes:
    ``not-mounted`` (nothing is mounted at the mountpoint), ``not-lfafs``
    (something else is), ``no-permission`` (the daemon is another user's),
    ``no-daemon`` (the mount is lfafs's but its daemon is gone), ``busy``
    (the daemon's connection queue stayed full), ``timeout`` and ``io``.
    """

    def __init__(self, *, mount: str | None = None, socket_file: str | None = None, timeout: float = 120.0) -> None:
        if (mount is None) == (socket_file is None):
            raise ValueError("give exactly one of mount= or socket_file=")
        self.mount = mount
        self.path = socket_file or socket_path(mount)
        self.timeout = timeout
        self._next = 0

    def _unreachable(self, e: OSError) -> ControlError:
        """Why connecting failed, in the words of the client's error codes."""
        if self.mount is not None:
            entry = mounts.find(self.mount)
            if entry is None:
                return ControlError("not-mounted", f"{self.mount} is not mounted: start it with "
                                                   f"lfafs mount {self.mount}")
            if not entry.is_lfafs:
                return ControlError("not-lfafs", f"{self.mount} is a {entry.fstype} mount, not an lfafs mount")
            owner = entry.owner_uid
            if owner is not None and owner != os.geteuid() and os.geteuid() != 0:
                return ControlError("no-permission", f"the lfafs daemon of {self.mount} runs as uid {owner}; its "
                                                     "control socket answers that user only (run as root)")
        if isinstance(e, PermissionError):
            return ControlError("no-permission", f"{self.path}: {e.strerror}: the daemon is another user's "
                                                 "(run as root)")
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTDIR):
            where = f"of {self.mount} " if self.mount is not None else ""
            return ControlError("no-daemon", f"the lfafs daemon {where}is gone: nothing listens on {self.path}")
        return ControlError("io", f"{self.path}: {e.strerror or e}")

    def _connect(self) -> socket.socket:
        if self.mount is not None:
            # The socket found from a mountpoint is in the run directory: one another user made
            # could hold their socket, answering as the daemon.
            check_run_dir(run_dir())
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            # A timeout makes the socket non-blocking, so a full listen queue answers EAGAIN at
            # once instead of waiting: retry until the deadline.
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                s.connect(self.path)
            except BlockingIOError:
                s.close()
                if time.monotonic() + delay > deadline:
                    raise ControlError("busy", f"the daemon's connection queue stayed full for "
                                               f"{self.timeout:g} s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            except TimeoutError:
                s.close()
                raise ControlError("timeout", f"{self.path}: no answer within {self.timeout:g} s") from None
            except OSError as e:
                s.close()
                raise self._unreachable(e) from None
            s.settimeout(self.timeout)
            return s

    def call(self, cmd: str, **args: Any) -> Any:
        self._next += 1
        try:
            with self._connect() as s:
                try:
                    s.sendall(json.dumps({"id": self._next, "cmd": cmd, "args": args}).encode() + b"\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused half-way (busy, too large): the reason is waiting to be read
                reply = _read_line(s)
        except TimeoutError:
            raise ControlError("timeout", f"the daemon did not answer {cmd} within {self.timeout:g} s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise ControlError("no-daemon", "the daemon closed the connection before it answered "
                                            "(it stopped, or refused the request)") from None
        except OSError as e:
            raise ControlError("io", f"{self.path}: {e.strerror or e}") from None
        if reply is None:
            raise ControlError("no-daemon", "the daemon closed the connection before it answered")
        if not reply.get("ok"):
            err = reply.get("error") or {}
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
                try:
                    msg = json.loads(line)
                except ValueError:
                    raise ControlError("io", "the daemon sent a line that is not JSON") from None
                if "event" in msg:
                    yield msg["event"]
                elif not msg.get("ok"):
                    err = msg.get("error") or {}
                    raise ControlError(err.get("code", "error"), err.get("message", "request failed"))
                else:
                    return
        except (BrokenPipeError, ConnectionResetError):
            raise ControlError("no-daemon", "the daemon closed the connection") from None
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
    return decode_reply(buf.split(b"\n", 1)[0])


def decode_reply(line: bytes) -> dict:
    """One reply line as a dict; ControlError("io") for anything that is not a JSON object."""
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError("io", "the daemon sent a reply that is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError("io", "the daemon sent a reply that is not an object")
    return reply


def decode_image(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ControlError("bad-request", "image must be base64") from None
