"""Concurrent soak: readers of every attribute, listers, control clients, careless clients holding
connections and half-sent requests, and a stream of activations, all at once against one daemon with a
state directory. Every activation succeeds, every read is a value sysfs would show, every control reply
is a protocol answer; afterwards the daemon holds no more descriptors or memory than it started with
(within a margin), and the state directory holds the flash it runs, with nothing left over."""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import threading
import time

from lfafs.driver import ATTRIBUTES
from lfafs.service import spawn
from lfafs.service.control import Client, ControlError, socket_path
from lfafs.service.state import StateDir
from tests.reliability.conftest import pick
from tests.reliability.test_attribute_fuzz import VALUE

ACTIVATED = {"rmm": "6c0762a6-12f2-4b56-92cb-ba8f633606d9"}  # an SP stays claimed after it (sysfs-abi.md, "Traps")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def test_concurrent_soak(mountpoint, public_dir, rng, seed, figures):
    duration = pick(60.0, 10.0)
    state = os.path.join(public_dir, "state")
    with spawn.running(mountpoint, state_dir=state, allow_other=True) as d:
        lfa = os.path.join(mountpoint, "lfa")
        guids = sorted(os.listdir(lfa))
        for name, guid in ACTIVATED.items():
            assert guid in guids, name
        time.sleep(0.5)
        fds_before, rss_before = _fds(d.pid), _rss_mb(d.pid)
        stop = time.monotonic() + duration
        errors: list[str] = []
        counts = {"reads": 0, "lists": 0, "control": 0, "activations": 0, "hog_connections": 0}
        worst = {"read_ms": 0.0, "activation_ms": 0.0}
        lock = threading.Lock()

        def count(key: str, n: int = 1) -> None:
            with lock:
                counts[key] += n

        def reader(r: random.Random) -> None:
            while time.monotonic() < stop:
                guid, attr = r.choice(guids), r.choice([a for a, m in ATTRIBUTES.items() if m & 0o444])
                t0 = time.monotonic()
                try:
                    with open(os.path.join(lfa, guid, attr), "rb") as f:
                        value = f.read().decode()
                except OSError as e:
                    errors.append(f"read {attr}: {errno.errorcode.get(e.errno)}")
                    continue
                worst["read_ms"] = max(worst["read_ms"], (time.monotonic() - t0) * 1e3)
                if not VALUE[attr].fullmatch(value):
                    errors.append(f"read {attr}: {value!r}")
                count("reads")

        def lister(r: random.Random) -> None:
            while time.monotonic() < stop:
                names = os.listdir(lfa)
                if sorted(names) != guids:
                    errors.append(f"listing: {names}")
                os.listdir(os.path.join(lfa, r.choice(guids)))
                count("lists")

        def control(r: random.Random) -> None:
            client = Client(mount=mountpoint, timeout=60)
            while time.monotonic() < stop:
                try:
                    cmd = r.choice(["ping", "status", "trace", "dmesg", "fault"])
                    if cmd == "fault":
                        client.call("fail", component="bl33", at="prime", status="LFA_BUSY", once=True)
                        client.call("clear-faults", component="bl33")
                    elif cmd == "trace":
                        client.call("trace", limit=r.randrange(1, 200))
                    else:
                        client.call(cmd)
                except ControlError as e:
                    errors.append(f"control {cmd}: {e.code}: {e.message}")
                count("control")

        def hog(r: random.Random) -> None:
            held: list[socket.socket] = []
            path = socket_path(mountpoint)
            while time.monotonic() < stop:
                if len(held) < 40:
                    s = socket.socket(socket.AF_UNIX)
                    s.setblocking(False)
                    try:
                        s.connect(path)
                        s.send(r.choice([b"", b'{"id": 1, "cmd": "st', b"x" * 60_000]))
                        held.append(s)
                        count("hog_connections")
                    except OSError:
                        s.close()
                else:
                    held.pop(r.randrange(len(held))).close()
                time.sleep(0.01)
            for s in held:
                s.close()

        def activator(r: random.Random) -> None:
            client = Client(mount=mountpoint, timeout=60)
            n = 0
            while time.monotonic() < stop:
                n += 1
                name = r.choice(list(ACTIVATED))
                guid, version = ACTIVATED[name], f"{n}.{r.randrange(1000)}"
                try:
                    client.stage(name, version=version)
                    with open(os.path.join(lfa, guid, "activation_pending")) as f:
                        pending = f.read()
                    t0 = time.monotonic()
                    with open(os.path.join(lfa, guid, "activate"), "w") as f:
                        f.write("1")
                    worst["activation_ms"] = max(worst["activation_ms"], (time.monotonic() - t0) * 1e3)
                    with open(os.path.join(lfa, guid, "current_version")) as f:
                        now = f.read().strip()
                    if pending != "1\n" or now != version:
                        errors.append(f"activation {name} {version}: pending {pending!r}, now {now}")
                    count("activations")
                except (OSError, ControlError) as e:
                    errors.append(f"activation {name} {version}: {e}")

        threads = [threading.Thread(target=fn, args=(random.Random(rng.randrange(1 << 32)),))
                   for fn in (reader, reader, reader, lister, control, control, hog, activator)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.5)
        fds_after, rss_after = _fds(d.pid), _rss_mb(d.pid)
        status = Client(mount=mountpoint).status()
        flash, _images = StateDir(state).load()
    leftovers = [n for _r, _ds, names in os.walk(state) for n in names if ".tmp." in n]
    saved = {c["name"]: c["version"] for c in flash["components"]}
    running = {c["name"]: [int(p) for p in c["version"].split(".")] for c in status["components"]}
    figures.update(seed=seed, duration_s=duration, **counts, worst_read_ms=round(worst["read_ms"], 1),
                   worst_activation_ms=round(worst["activation_ms"], 1), fds_before=fds_before,
                   fds_after=fds_after, rss_before_mb=rss_before, rss_after_mb=rss_after, errors=len(errors))
    assert not errors, f"{len(errors)} errors (seed {seed}):\n" + "\n".join(errors[:20])
    assert counts["activations"] > 0 and status["agent"]["activation_in_progress"] is False
    assert saved == running and leftovers == []
    assert fds_after <= fds_before + 4, (fds_before, fds_after)
    assert rss_after - rss_before < 150, (rss_before, rss_after)
    json.dumps(figures)
