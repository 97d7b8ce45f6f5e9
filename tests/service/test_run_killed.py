"""A daemon started for `lfafs run` dies with it, however `run` dies (SIGKILL included) and
unmounts on the way out; a daemon started for `lfafs mount` outlives whoever started it."""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time

import pytest

from lfafs.service import access, mounts
from lfafs.service.control import Client
from tests.service import test_run_unprivileged as unprivileged
from tests.service.daemons import daemon_pids

LFAFS = [sys.executable, "-m", "lfafs"]
home = unprivileged.home  # the fixtures that run a script as uid 65534
as_user = unprivileged.as_user


@pytest.fixture(autouse=True)
def needs_fuse():
    why = access.fuse_problem() or (access.userns_problem() if os.geteuid() != 0 else None)
    if why:
        pytest.skip(f"needs a real FUSE mount and lfafs run: {why}")



def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _first_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "lfafs run did not start its command in time"
    return proc.stdout.readline().strip()


def _wait_until(cond, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_a_sigkilled_run_leaves_no_daemon_and_no_mount(tmp_path):
    proc = subprocess.Popen([*LFAFS, "run", "--", "sh", "-c", 'echo "$LFAFS_MOUNT"; exec sleep 60'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    orphans = []
    mountpoint = ""
    try:
        mountpoint = _first_line(proc)
        daemons = daemon_pids(mountpoint)
        assert daemons and mounts.find(mountpoint) is not None
        orphans = _children(proc.pid)  # the daemon and the command, reparented once run is gone
        proc.kill()  # nothing of run's own cleanup can run now
        proc.wait(timeout=10)
        assert _wait_until(lambda: not daemon_pids(mountpoint)), "the daemon outlived lfafs run"
        assert _wait_until(lambda: mounts.find(mountpoint) is None), "the mount outlived lfafs run"
    finally:
        proc.kill()
        proc.wait()
        for pid in orphans:  # the command (sleep) is the test's to stop; the daemon, if it failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if mountpoint and mounts.find(mountpoint) is not None:
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)


def test_a_sigkilled_run_of_an_ordinary_user_leaves_no_daemon_and_no_mount(as_user):
    # unshare --user changes the command's credentials: its death signal must survive that
    why = access.userns_problem() if os.geteuid() != 0 else None
    if why:
        unprivileged.skip(why)
    lfafs = shlex.quote(sys.executable) + " -m lfafs"
    r = as_user(f"""true
        {lfafs} run -- sh -c 'echo "$LFAFS_MOUNT"; exec sleep 60' > out 2>/dev/null &
        run=$!
        for i in $(seq 300); do [ -s out ] && break; sleep 0.1; done
        mnt=$(cat out)
        grep -c " $mnt " /proc/self/mountinfo
        orphans=$(cat /proc/$run/task/$run/children)  # the daemon and the command
        kill -9 $run
        for i in $(seq 100); do grep -q " $mnt " /proc/self/mountinfo || break; sleep 0.1; done
        grep -c " $mnt " /proc/self/mountinfo || true
        left() {{ pgrep -u {unprivileged.NOBODY} -f "^sleep 60$|lfafs[ ]mount"; }}  # never this script
        for i in $(seq 100); do left >/dev/null || break; sleep 0.1; done
        left || echo none left
        kill -9 $orphans 2>/dev/null || true  # had they outlived run: the test's to stop
        """)
    assert r.stdout == "1\n0\nnone left\n", r.stderr


def test_a_mounts_daemon_outlives_a_sigkilled_starter(tmp_path):
    mnt = tmp_path / "firmware"
    mnt.mkdir()
    starter = subprocess.run(
        [sys.executable, "-c", "import os, sys\nfrom lfafs.service import spawn\n"
                               "print(spawn.start(sys.argv[1]).pid, flush=True)\n"
                               "os.kill(os.getpid(), 9)\n", str(mnt)],
        capture_output=True, text=True, timeout=120)
    assert starter.returncode == -signal.SIGKILL, starter.stderr
    try:
        time.sleep(0.5)  # a death signal, had one been set, would have arrived by now
        assert daemon_pids(str(mnt)) == [int(starter.stdout)]
        assert Client(mount=str(mnt), timeout=10).call("ping") == {"pong": True}
    finally:
        subprocess.run([*LFAFS, "umount", str(mnt)], capture_output=True)
        _wait_until(lambda: not daemon_pids(str(mnt)))
