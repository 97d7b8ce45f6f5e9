"""Control-plane fuzz: random requests (random JSON of every shape, huge numbers, deep nesting, random
bytes, requests split or glued on one connection) against a real daemon. Every reply must be one JSON
object line answering the request as the protocol says: ``ok``, or an error whose code is documented and
never ``internal``, echoing the request's id whenever the request had a valid one. The daemon answers
``ping`` and ``status`` afterwards, and its memory stays bounded."""

from __future__ import annotations

import json
import socket
import string

from lfafs.service import control_server
from lfafs.service.commands import COMMANDS
from lfafs.service.control import Client, socket_path
from tests.reliability.conftest import pick

CODES = {"bad-request", "unknown-command", "unknown-component", "too-large", "busy", "flash-write"}
# notify runs activations (an armed latency would hold the request for its length); follow streams
# until the client leaves: both are exercised elsewhere (tests/service)
SKIP = {"notify"}
NAMES = ["rmm", "sp1", "sp2", "bl31", "bl33", "RMM", "6c0762a6-12f2-4b56-92cb-ba8f633606d9", "nope", ""]


def _value(rng, depth: int = 0):
    kind = rng.random()
    if kind < 0.15:
        return rng.choice([0, 1, -1, 3, 2**63, -(2**63) - 1, 10**rng.randrange(1, 400), rng.randrange(-99, 99)])
    if kind < 0.25:
        return rng.choice([0.5, -1.0, 1e300, 3600.0, 0.01, 1e-300])
    if kind < 0.35:
        return rng.choice([True, False, None])
    if kind < 0.7:
        pool = rng.choice([string.printable, "éλ漢\u2028\x00\ud7ff", "0123456789."])
        return "".join(rng.choice(pool) for _ in range(rng.randrange(0, 30)))
    if kind < 0.8:
        return rng.choice(NAMES + ["1.0", "9.9", "LFA_AUTH_ERROR", "-3", "activate", "prime", "generic"])
    if depth > 6:
        return None
    if kind < 0.9:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["a", "component", "version", "x" * 50]): _value(rng, depth + 1) for _ in range(2)}


def _request(rng) -> tuple[bytes, object]:
    """A request line and the id a reply must echo (None when it has no valid id)."""
    r = rng.random()
    commands = [c for c in COMMANDS.names() if c not in SKIP]
    if r < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" "), None
    if r < 0.08:
        depth = rng.choice([50, 500, 5000, 50_000])
        return b'{"id": 1, "cmd": ' + b"[" * depth + b"]" * depth + b"}", 1 if depth < 900 else None
    if r < 0.10:
        return b'{"id": 2, "cmd": "cpu", "args": {"cpu": ' + b"9" * rng.choice([100, 4300, 4301, 9000]) + b"}}", None
    cmd = rng.choice(commands) if rng.random() < 0.85 else _value(rng)
    args: dict = {}
    known = {a.name: a for c in COMMANDS if c.name == cmd for a in c.args if a.name != "follow"}
    for name, arg in known.items():
        if rng.random() < 0.6:
            if arg.choices and rng.random() < 0.6:
                args[name] = rng.choice(arg.choices)
            elif arg.name == "component" and rng.random() < 0.7:
                args[name] = rng.choice(NAMES)
            elif arg.type is bool and rng.random() < 0.5:
                args[name] = rng.random() < 0.5
            else:
                args[name] = _value(rng)
    if "latency" in args and isinstance(args["latency"], (int, float)) and not isinstance(args["latency"], bool):
        args["latency"] = min(abs(args["latency"]), 0.01)  # an armed latency would only make the run slow
    if rng.random() < 0.1:
        args[rng.choice(["colour", "x", "limit"])] = _value(rng)
    rid = rng.choice([rng.randrange(1 << 40), f"req-{rng.randrange(1000)}", None, 1.5, [1], True])
    req: dict = {"cmd": cmd}
    if rid is not None or rng.random() < 0.5:
        req["id"] = rid
    if args or rng.random() < 0.3:
        req["args"] = args if rng.random() < 0.95 else _value(rng)
    if rng.random() < 0.03:
        req["extra"] = 1
    valid_id = rid if (isinstance(rid, int) and not isinstance(rid, bool)) or isinstance(rid, str) else None
    return json.dumps(req).encode(), valid_id


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def test_control_fuzz(daemon, rng, seed, figures):
    path = socket_path(daemon.mountpoint)
    n = pick(20000, 1000)
    wrong: list[str] = []
    codes: dict[str, int] = {}
    rss_before = _rss_mb(daemon.pid)
    sent = 0
    while sent < n:
        batch = [_request(rng) for _ in range(rng.choice([1, 1, 1, 2, 5]))]
        sent += len(batch)
        payload = b"".join(line + b"\n" for line, _ in batch)
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        s.connect(path)
        # sent whole, or in random pieces
        i = 0
        while i < len(payload):
            j = len(payload) if rng.random() < 0.7 else min(len(payload), i + rng.randrange(1, 64))
            s.sendall(payload[i:j])
            i = j
        f = s.makefile("rb")
        for line, rid in batch:
            reply_line = f.readline()
            what = f"request {line[:120]!r}"
            try:
                reply = json.loads(reply_line)
            except ValueError:
                wrong.append(f"{what}: reply {reply_line[:200]!r} is not JSON")
                break
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                wrong.append(f"{what}: reply {reply!r} is not a protocol reply")
                continue
            if rid is not None and reply.get("id") != rid:
                wrong.append(f"{what}: reply id {reply.get('id')!r}, request id {rid!r}")
            if not reply["ok"]:
                code = reply["error"]["code"]
                codes[code] = codes.get(code, 0) + 1
                if code not in CODES:
                    wrong.append(f"{what}: error {code}: {reply['error']['message'][:200]}")
            else:
                codes["ok"] = codes.get("ok", 0) + 1
        s.close()
    client = Client(mount=daemon.mountpoint)
    assert client.call("ping") == {"pong": True}
    status = client.status()
    assert status["agent"]["activation_in_progress"] is False
    grown = _rss_mb(daemon.pid) - rss_before
    figures.update(seed=seed, requests=sent, mismatches=len(wrong), rss_growth_mb=grown,
                   **{f"replies_{k}": v for k, v in sorted(codes.items())})
    assert not wrong, f"{len(wrong)} replies break the protocol (seed {seed}):\n" + "\n".join(wrong[:20])
    assert grown < 2 * (control_server.BUFFER_BUDGET >> 20)
