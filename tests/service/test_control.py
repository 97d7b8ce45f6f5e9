"""The control plane under a hostile or careless client: every reply is a protocol answer (never
``internal``) echoing the request's id; memory and connections are bounded; activations are unaffected."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import trio

from lfafs.service import control, control_server
from lfafs.service.commands import COMMANDS
from lfafs.service.control import Client, ControlError, socket_path
from tests.service.nobody import as_nobody

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture(scope="module")
def daemon(daemon):
    return daemon


def raw(path: str, data: bytes, timeout: float = 30) -> dict:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    line = s.makefile("rb").readline()
    s.close()
    return json.loads(line)


@pytest.mark.parametrize("request_line", [
    b'{"id": 1, "cmd": "cpu", "args": {"cpu": ' + b"7" * 5000 + b', "on": true}}',
    b'{"id": 1, "cmd": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"id": 1, "cmd": ' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"id": 1, "cmd": "fail", "args": {"component": "rmm", "at": "activate", "latency": NaN}}',
    b'{"id": 1, "cmd": "fail", "args": {"component": "rmm", "at": "activate", "latency": 1e999}}',
    b'{"id": 1, "cmd": "fail", "args": {"component": "rmm", "at": "activate", "latency": Infinity}}',
    b'{"id": 1, "cmd": "trace", "args": {"limit": ' + b"9" * 4000 + b"}}",
    b'{"id": 1, "cmd": "status", "args": {"' + b"k" * 100_000 + b'": 1}}',
    b'{"id": ' + b"1" * 30 + b', "cmd": "ping"}',
    b'{"id": {"a": 1}, "cmd": "ping"}',
    b"\xff\xfe\xfd",
])
def test_hostile_requests_get_protocol_errors_never_internal(daemon, request_line):
    path = socket_path(daemon.mountpoint)
    reply = raw(path, request_line + b"\n")
    assert set(reply) <= {"id", "ok", "result", "error"}
    if not reply["ok"]:
        assert reply["error"]["code"] in ("bad-request", "unknown-command"), reply
        assert len(reply["error"]["message"]) <= control.MAX_MESSAGE
    assert raw(path, b'{"id": 2, "cmd": "ping"}\n') == {"id": 2, "ok": True, "result": {"pong": True}}


@pytest.mark.parametrize(("req", "code"), [
    ({"id": 41, "cmd": "explode"}, "unknown-command"),
    ({"id": 42, "cmd": "stage", "args": {"component": 3}}, "bad-request"),
    ({"id": "x-43", "cmd": "stage", "args": {"component": "nope", "version": "1.0"}}, "unknown-component"),
    ({"id": 44, "cmd": "status", "extra": 1}, "bad-request"),
    ({"id": 45, "cmd": "cpu", "args": {"cpu": 99, "on": False}}, "bad-request"),
    ({"id": 46}, "unknown-command"),
    ({"id": 47, "cmd": "stage", "args": []}, "bad-request"),
])
def test_every_error_reply_echoes_the_request_id(daemon, req, code):
    reply = raw(socket_path(daemon.mountpoint), json.dumps(req).encode() + b"\n")
    assert reply["id"] == req["id"] and reply["ok"] is False and reply["error"]["code"] == code


def test_hundreds_of_concurrent_clients_are_all_answered(daemon):
    errors: list[str] = []

    def one() -> None:
        try:
            assert Client(mount=daemon.mountpoint, timeout=60).call("ping") == {"pong": True}
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def test_unfinished_requests_are_bounded_in_memory(daemon):
    path = socket_path(daemon.mountpoint)
    before = _rss_mb(daemon.pid)
    socks, refused = [], 0
    part = b'{"id": 1, "cmd": "ping", "args": {"x": "' + b"a" * (31 << 20)
    for _ in range(12):  # 12 idle clients with 31 MB each cost 360 MB before
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(path)
        try:
            s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            refused += 1
        socks.append(s)
    try:
        assert refused >= 12 - control_server.BUFFER_BUDGET // len(part)
        assert _rss_mb(daemon.pid) - before < 2 * (control_server.BUFFER_BUDGET >> 20)
        assert Client(mount=daemon.mountpoint).call("ping") == {"pong": True}
    finally:
        for s in socks:
            s.close()


def test_an_activation_is_unaffected_by_a_flood_of_clients(daemon):
    mnt = daemon.mountpoint
    path = socket_path(mnt)
    Client(mount=mnt).stage("rmm", version="7.0")
    with open(os.path.join(mnt, "lfa", RMM, "activation_pending")) as f:
        assert f.read() == "1\n"
    hogs = []
    for _ in range(control_server.MAX_CONNECTIONS + 20):  # every slot taken, the queue filling
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            break
        s.sendall(b'{"id": 1, "cmd": "ping", "args": {"x": "')
        hogs.append(s)
    try:
        start = time.monotonic()
        with open(os.path.join(mnt, "lfa", RMM, "activate"), "w") as f:
            f.write("1")
        assert time.monotonic() - start < 5
        with open(os.path.join(mnt, "lfa", RMM, "current_version")) as f:
            assert f.read() == "7.0\n"
    finally:
        for s in hogs:
            s.close()
    assert Client(mount=mnt).call("ping") == {"pong": True}


# -- the server's limits, in this process with small numbers ----------------------------------------------------


@pytest.fixture
async def server(tmp_path, monkeypatch, nursery):
    monkeypatch.setattr(control_server, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(control_server, "QUEUE_WAIT", 0.5)
    monkeypatch.setattr(control_server, "IDLE_TIMEOUT", 0.3)
    path = str(tmp_path / "run" / "control.sock")
    await nursery.start(control_server.serve, path, COMMANDS, None)
    return path


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s


async def test_connections_beyond_the_limit_wait_then_are_refused_cleanly(server, monkeypatch):
    monkeypatch.setattr(control_server, "IDLE_TIMEOUT", 5.0)  # the two held connections keep their slots
    held = [await trio.to_thread.run_sync(_connect, server) for _ in range(2)]
    try:
        with pytest.raises(ControlError) as e:
            await trio.to_thread.run_sync(lambda: Client(socket_file=server, timeout=10).call("ping"))
        assert e.value.code == "busy"
    finally:
        for s in held:
            s.close()
    assert await trio.to_thread.run_sync(lambda: Client(socket_file=server).call("ping")) == {"pong": True}


async def test_a_queued_client_is_served_once_a_slot_frees(server, monkeypatch):
    monkeypatch.setattr(control_server, "IDLE_TIMEOUT", 5.0)
    held = [await trio.to_thread.run_sync(_connect, server) for _ in range(2)]
    reply = {}

    def call() -> None:
        reply["r"] = Client(socket_file=server, timeout=10).call("ping")

    waiter = threading.Thread(target=call)
    waiter.start()
    await trio.sleep(0.1)
    held.pop().close()
    await trio.to_thread.run_sync(waiter.join)
    held[0].close()
    assert reply["r"] == {"pong": True}


async def test_a_silent_connection_is_closed_after_the_idle_timeout(server):
    s = await trio.to_thread.run_sync(_connect, server)
    s.sendall(b'{"id": 1, "cmd": ')  # and then nothing
    assert await trio.to_thread.run_sync(s.recv, 100) == b""
    s.close()


async def test_the_client_waits_when_the_listen_queue_is_full(tmp_path):
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:  # fill the kernel's queue; a non-blocking connect now answers EAGAIN
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            break
        queued.append(s)

    def serve_later() -> None:
        time.sleep(0.3)
        for q in queued:
            q.close()
        for _ in range(len(queued) + 1):
            conn, _ = listener.accept()
            if conn.recv(1 << 16).startswith(b'{"id"'):
                conn.sendall(b'{"id": 1, "ok": true, "result": {"pong": true}}\n')
                conn.close()
                return
            conn.close()

    t = threading.Thread(target=serve_later)
    t.start()
    assert await trio.to_thread.run_sync(lambda: Client(socket_file=path, timeout=10).call("ping")) == {"pong": True}
    await trio.to_thread.run_sync(t.join)
    listener.close()


# -- the client tells its failures apart --------------------------------------------------------------------------


def test_client_not_mounted(tmp_path):
    with pytest.raises(ControlError) as e:
        Client(mount=str(tmp_path)).call("ping")
    assert e.value.code == "not-mounted" and "is not mounted" in e.value.message


def test_client_not_an_lfafs_mount(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    try:
        with pytest.raises(ControlError) as e:
            Client(mount=str(d)).call("ping")
        assert e.value.code == "not-lfafs" and "tmpfs" in e.value.message
    finally:
        subprocess.run(["umount", str(d)])


def test_client_daemon_gone(daemon, tmp_path):
    # the mount is lfafs's, nothing listens: what a killed daemon leaves until auto_unmount ran
    path = socket_path(daemon.mountpoint)
    moved = str(tmp_path / "away.sock")
    os.rename(path, moved)
    try:
        with pytest.raises(ControlError) as e:
            Client(mount=daemon.mountpoint).call("ping")
        assert e.value.code == "no-daemon" and "is gone" in e.value.message
    finally:
        os.rename(moved, path)


def test_client_no_permission(daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    # as another user, in a forked child (which needs nothing read from the checkout)
    out = as_nobody(lambda: Client(mount=daemon.mountpoint).call("ping"))
    assert out.get("error", [None])[0] == "no-permission", out


def test_umount_leaves_a_mount_that_is_not_lfafs_alone(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    try:
        r = subprocess.run([sys.executable, "-m", "lfafs", "umount", str(d)], capture_output=True, text=True)
        assert r.returncode == 1 and "not an lfafs mount" in r.stderr and os.path.ismount(d)
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", str(d)])
    r = subprocess.run([sys.executable, "-m", "lfafs", "umount", str(d)], capture_output=True, text=True)
    assert r.returncode == 1 and "is not mounted" in r.stderr
