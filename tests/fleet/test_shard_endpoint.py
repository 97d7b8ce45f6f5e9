"""A shard's control endpoints (Unix and TCP) are served by the daemon's own connection loop
(control_server.Server), so they have its limits: a bad or oversized request gets one error line and the
shard serves on, a silent client is closed and holds no one up, the connection slots are bounded;
the replies keep the compact JSON a shard always sent."""

from __future__ import annotations

import json
import os
import socket
import types

import pytest
import trio

from lfafs.fleet import wire
from lfafs.fleet.commands import FLEET_COMMANDS
from lfafs.service import control, control_server
from lfafs.service.control import ControlError


def stand_in_shard() -> types.SimpleNamespace:
    """What `ping` reads of a Shard, without booting nodes."""
    ready = trio.Event()
    ready.set()
    return types.SimpleNamespace(index=0, roster=types.SimpleNamespace(shards=1), ready=ready, nodes=[], specs=[],
                                 clock="wall")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["unix", "tcp"])
def start(request, tmp_path, nursery):
    """Serve an endpoint of this kind (the limits as the test has set them); (family, address), endpoint."""
    async def serve() -> tuple:
        if request.param == "unix":
            ep = f"unix:{tmp_path / 'run' / 'shard-0.sock'}"
        else:
            ep = f"tcp:127.0.0.1:{free_port()}"
        listeners = await wire.open_listeners([ep])
        nursery.start_soon(wire.serve, listeners, FLEET_COMMANDS, stand_in_shard())
        kind, where, port = wire.parse_endpoint(ep)
        return ((socket.AF_UNIX, where) if kind == "unix" else (socket.AF_INET, ("127.0.0.1", port))), ep

    return serve


def connect(address: tuple) -> socket.socket:
    s = socket.socket(address[0])
    s.settimeout(10)
    s.connect(address[1])
    return s


def exchange(address: tuple, data: bytes) -> bytes:
    """Send ``data``; everything the endpoint answers until it closes or goes quiet."""
    with connect(address) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused half-way: the reason is waiting to be read
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


async def ping(address: tuple, rid: int = 9) -> bytes:
    return await trio.to_thread.run_sync(exchange, address, b'{"id": %d, "cmd": "ping"}\n' % rid)


async def test_replies_keep_the_shards_compact_json(start):
    address, _ = await start()
    assert await ping(address) == (b'{"id":9,"ok":true,"result":{"shard":0,"shards":1,"ready":true,"booted":0,'
                                   b'"total":0,"pid":%d,"clock":"wall"}}\n' % os.getpid())


@pytest.mark.parametrize(("line", "code"), [
    (b"{not json", "bad-request"),
    (b"\xff\xfe", "bad-request"),
    (b'{"id": 3, "cmd": "ping", "args": {"x": NaN}}', "bad-request"),
    (b"[" * 100_000 + b"]" * 100_000, "bad-request"),
    (b'{"id": 3, "cmd": "explode"}', "unknown-command"),
])
async def test_a_malformed_request_gets_one_error_line_and_the_shard_serves_on(start, line, code):
    address, _ = await start()
    reply = await trio.to_thread.run_sync(exchange, address, line + b"\n")
    assert reply.count(b"\n") == 1
    answer = json.loads(reply)
    assert answer["ok"] is False and answer["error"]["code"] == code
    assert len(answer["error"]["message"]) <= control.MAX_MESSAGE
    assert json.loads(await ping(address))["ok"] is True


async def test_an_oversized_request_gets_too_large_and_the_shard_serves_on(start, monkeypatch):
    monkeypatch.setattr(control_server, "MAX_REQUEST", 1 << 16)
    address, ep = await start()
    reply = await trio.to_thread.run_sync(exchange, address, b'{"id": 1, "cmd": "ping", "args": {"x": "'
                                          + b"a" * (1 << 17))
    assert json.loads(reply) == {"id": None, "ok": False,
                                 "error": {"code": "too-large", "message": f"a request is at most {1 << 16} bytes"}}
    answer = await trio.to_thread.run_sync(lambda: wire.ShardClient(ep, timeout=10).call("ping"))
    assert answer["ready"] is True


async def test_a_silent_client_is_closed_and_holds_no_one_up(start, monkeypatch):
    monkeypatch.setattr(control_server, "IDLE_TIMEOUT", 0.5)
    monkeypatch.setattr(control_server, "MAX_CONNECTIONS", 2)
    address, _ = await start()
    silent = [await trio.to_thread.run_sync(connect, address) for _ in range(2)]  # every slot, and then nothing
    try:
        assert json.loads(await ping(address))["ok"] is True  # served once the silent ones are closed
        for s in silent:
            assert await trio.to_thread.run_sync(s.recv, 100) == b""
    finally:
        for s in silent:
            s.close()


async def test_connections_beyond_the_slots_are_refused_with_busy(start, monkeypatch):
    monkeypatch.setattr(control_server, "MAX_CONNECTIONS", 1)
    monkeypatch.setattr(control_server, "QUEUE_WAIT", 0.3)
    address, _ = await start()
    held = await trio.to_thread.run_sync(connect, address)
    try:
        reply = json.loads(await ping(address))
        assert reply["error"] == {"code": "busy", "message": "the shard serves 1 connections already; try again"}
    finally:
        held.close()
    assert json.loads(await ping(address))["ok"] is True


async def test_on_a_mock_clock_a_slow_client_is_not_cut_off(autojump_clock, tmp_path, nursery):
    # the clock jumps whenever the run is idle: a Trio timeout would fire while the client merely pauses
    path = str(tmp_path / "shard.sock")
    nursery.start_soon(wire.serve, await wire.open_listeners([f"unix:{path}"]), FLEET_COMMANDS, stand_in_shard())

    def slow() -> bytes:
        with connect((socket.AF_UNIX, path)) as s:
            s.sendall(b'{"id": 1, "cmd": ')
            trio.from_thread.run(trio.sleep, 2 * control_server.IDLE_TIMEOUT)  # virtual seconds: no time at all
            s.sendall(b'"ping"}\n')
            return s.makefile("rb").readline()

    assert json.loads(await trio.to_thread.run_sync(slow))["ok"] is True


def test_the_endpoint_of_a_running_shard_has_the_limits(lfafs_fleet, monkeypatch):
    monkeypatch.setattr(control_server, "MAX_REQUEST", 1 << 16)
    fleet = lfafs_fleet(nodes=2, mount=True)
    ep = fleet.layout.shard_endpoint(0)
    address = (socket.AF_UNIX, wire.parse_endpoint(ep)[1])
    assert json.loads(exchange(address, b"x" * (1 << 17)))["error"]["code"] == "too-large"
    assert json.loads(exchange(address, b'{"id": 5, "cmd": 7}\n'))["error"]["code"] == "unknown-command"
    with pytest.raises(ControlError) as e:
        wire.ShardClient(ep, timeout=10).call("explode")
    assert e.value.code == "unknown-command"
    assert wire.ShardClient(ep, timeout=10).call("ping")["booted"] == 2
