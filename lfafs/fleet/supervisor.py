"""A fleet on one machine: start its shard processes, restart a crashed one, stop them all.

``lfafs fleet up`` checks everything a person could get wrong in their own
process (root, /dev/fuse, the description and its fault rules, a root
already in use), writes ROOT/fleet.json, then starts the supervisor, a
detached ``python -m lfafs.fleet supervise ROOT``, and returns once every
shard answers ready. The supervisor runs one ``lfafs fleet shard`` process
per shard and restarts any that exits without being asked to (a crash, or
``lfafs fleet ctl crash``), after cleaning its dead mount; a restarted
shard resumes its event log, and with ``--state-dir`` its nodes' flash.
``lfafs fleet down`` stops the supervisor, which stops the shards.

Across machines, a supervisor is the wrong tool: systemd units or a
Kubernetes StatefulSet run the shards (docs/fleet.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from lfafs.fleet import faults as _faults
from lfafs.fleet.description import load
from lfafs.fleet.layout import Layout, LayoutError
from lfafs.fleet.roster import Roster
from lfafs.fleet.wire import ShardClient
from lfafs.service import access, sdnotify
from lfafs.service.control import ControlError

POLL = 0.2
STOP_TIMEOUT = 60.0
MAX_BACKOFF = 5.0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def shard_command(doc: dict, layout: Layout, index: int) -> list[str]:
    cmd = [sys.executable, "-m", "lfafs.fleet", "shard", doc["description"], "--index", str(index),
           "--shards", str(doc["shards"]), "--root", layout.root, "--listen", layout.shard_endpoint(index)]
    if doc.get("virtual_time") is not None:
        cmd += ["--virtual-time", str(doc["virtual_time"])]
    if doc.get("state_dir"):
        cmd += ["--state-dir", doc["state_dir"]]
    if doc.get("passthrough"):
        cmd.append("--passthrough")
    return cmd


def _clean_mount(path: str) -> None:
    subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)


def wait_ready(doc: dict, timeout: float, supervisor: subprocess.Popen | None = None) -> None:
    """Return once every shard answers ready; LayoutError with the reason otherwise."""
    end = time.monotonic() + timeout
    pending = set(range(doc["shards"]))
    clients = {i: ShardClient(doc["endpoints"][i], timeout=5) for i in pending}
    while pending:
        for i in sorted(pending):
            try:
                if clients[i].call("ping")["ready"]:
                    pending.discard(i)
            except ControlError:
                pass
        if not pending:
            return
        if supervisor is not None and supervisor.poll() is not None:
            raise LayoutError(f"the fleet supervisor exited ({supervisor.returncode}) before every shard was up")
        if time.monotonic() > end:
            raise LayoutError(f"shards {', '.join(map(str, sorted(pending)))} were not up within {timeout:g} s")
        time.sleep(0.1)


def prepare(description_path: str, root: str, *, shards: int | None = None, virtual_time: float | None = None,
            state_dir: str | None = None, passthrough: bool = False) -> tuple[Layout, dict]:
    """Check everything, make the directories and write fleet.json (no process is started)."""
    problem = access.fuse_problem()
    if problem is not None:
        raise LayoutError(problem)
    if os.geteuid() != 0:
        raise LayoutError("a fleet mounts root-owned sysfs trees and mount namespaces: run it as root")
    desc = load(description_path)
    try:
        roster = Roster(desc, shards)
    except ValueError as e:
        raise LayoutError(str(e)) from None
    _faults.check_description(roster)
    layout = Layout(root)
    if os.path.exists(layout.fleet_file):
        old = layout.read()
        if alive(old.get("supervisor")):
            raise LayoutError(f"a fleet already runs at {layout.root}: lfafs fleet down --root {layout.root}")
    layout.check_socket_paths(roster.shards)
    for d in (layout.run_dir, layout.nodes_dir, *(layout.shard_mount(i) for i in range(roster.shards))):
        os.makedirs(d, exist_ok=True)
    for i in range(roster.shards):  # a new fleet starts new logs
        for path in (layout.events_file(i), layout.log_file(i)):
            if os.path.exists(path):
                os.unlink(path)
    doc = {"description": os.path.abspath(description_path), "shards": roster.shards, "nodes": len(roster),
           "endpoints": [layout.shard_endpoint(i) for i in range(roster.shards)], "virtual_time": virtual_time,
           "state_dir": os.path.abspath(state_dir) if state_dir else None, "passthrough": passthrough,
           "supervisor": None}
    layout.write(doc)
    return layout, doc


def up(description_path: str, root: str, *, timeout: float | None = None, **options) -> dict:
    """Bring a fleet up at ``root`` with a detached supervisor; fleet.json's document once every shard is ready."""
    layout, doc = prepare(description_path, root, **options)
    with open(os.path.join(layout.run_dir, "supervisor.log"), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lfafs.fleet", "supervise", layout.root],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    doc["supervisor"] = proc.pid
    layout.write(doc)
    try:
        wait_ready(doc, timeout or 120.0 + 0.05 * doc["nodes"], proc)
    except LayoutError as e:
        down(layout.root)
        raise LayoutError(f"{e}; see {layout.run_dir}/*.log") from None
    return doc


def supervise(root: str, *, foreground: bool = False) -> int:
    """The supervisor's loop: one process per shard, restarted when it dies unasked."""
    layout = Layout(root)
    doc = layout.read()
    if foreground:
        doc["supervisor"] = os.getpid()
        layout.write(doc)
    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    procs: dict[int, subprocess.Popen] = {}
    restarts = {i: 0 for i in range(doc["shards"])}
    next_start = {i: 0.0 for i in range(doc["shards"])}

    def start(i: int) -> None:
        _clean_mount(layout.shard_mount(i))
        with open(layout.log_file(i), "ab") as log:
            env = {**os.environ, "LFAFS_FLEET_RESTARTS": str(restarts[i])}
            env.pop("NOTIFY_SOCKET", None)  # READY is the supervisor's to send
            procs[i] = subprocess.Popen(shard_command(doc, layout, i), stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, env=env)
        _record(layout, procs, restarts)

    for i in range(doc["shards"]):
        start(i)
    notified = False
    while not stopping:
        for i, p in list(procs.items()):
            if p.poll() is not None and time.monotonic() >= next_start[i]:
                restarts[i] += 1
                print(f"lfafs fleet: shard {i} exited ({p.returncode}); restart {restarts[i]}", flush=True)
                next_start[i] = time.monotonic() + min(MAX_BACKOFF, 0.5 * restarts[i])
                start(i)
        if foreground and not notified:
            try:
                wait_ready(doc, 0)
            except LayoutError:
                pass
            else:
                notified = sdnotify.notify(f"READY=1\nSTATUS={doc['nodes']} nodes in {doc['shards']} shards")
        time.sleep(POLL)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    end = time.monotonic() + STOP_TIMEOUT
    for p in procs.values():
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for i in procs:
        _clean_mount(layout.shard_mount(i))
    return 0


def _record(layout: Layout, procs: dict[int, subprocess.Popen], restarts: dict[int, int]) -> None:
    doc = {str(i): {"pid": p.pid, "restarts": restarts[i]} for i, p in procs.items()}
    tmp = os.path.join(layout.run_dir, f"shards.json.tmp.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, os.path.join(layout.run_dir, "shards.json"))


def shard_processes(layout: Layout) -> dict[int, dict]:
    try:
        with open(os.path.join(layout.run_dir, "shards.json")) as f:
            return {int(k): v for k, v in json.load(f).items()}
    except (OSError, ValueError):
        return {}


def down(root: str) -> None:
    """Stop the fleet at ``root``: holders, supervisor, shards; nothing stays mounted. The state dir is kept."""
    from lfafs.fleet import namespaces

    layout = Layout(root)
    doc = layout.read()
    namespaces.stop_holders(layout)
    pid = doc.get("supervisor")
    if pid != os.getpid() and alive(pid):  # `fleet up --foreground` cleans up after itself
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + STOP_TIMEOUT + 5
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    for info in shard_processes(layout).values():  # a supervisor killed above leaves its shards
        if alive(info.get("pid")) and _is_shard(info["pid"], layout):
            os.kill(info["pid"], signal.SIGKILL)
    for i in range(doc["shards"]):
        _clean_mount(layout.shard_mount(i))
        for path in (layout.shard_socket(i),):
            if os.path.exists(path):
                os.unlink(path)
    if os.path.isdir(layout.nodes_dir):
        for name in os.listdir(layout.nodes_dir):
            path = os.path.join(layout.nodes_dir, name)
            if os.path.islink(path):
                os.unlink(path)
    os.unlink(layout.fleet_file)


def _is_shard(pid: int, layout: Layout) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"shard" in argv and layout.root.encode() in argv
