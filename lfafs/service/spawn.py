"""Start an lfafs daemon in the background, and stop it: the one place that does.

``lfafs mount`` (without --foreground), ``lfafs run``, ``lfafs demo``, the
pytest fixtures and the service tests all go through here:

    with spawn.running(mountpoint, abi="v2") as daemon:   # returns once mount and socket answer
        ...                                                # daemon.pid, daemon.mountpoint
    # unmounted, the daemon has exited (killed if it would not)

``start`` checks first, in the caller's process, what would make the
daemon fail (daemon.preflight), so the person sees the sentence. The daemon
is ``python -m lfafs mount --foreground ...`` in a session of its own; its
stdout and stderr go to its log in its runtime directory (logs.py: ``lfafs
logs MOUNTPOINT``), read here to explain an early exit (a pipe nobody reads
could fill and stall it).

A daemon of ``lfafs mount`` outlives its starter. One started with
``die_with_parent`` (``lfafs run``'s) gets SIGTERM from the kernel when its
starter dies, SIGKILL included (prctl PR_SET_PDEATHSIG), and unmounts as
on any SIGTERM, so a killed ``lfafs run`` leaves no daemon and no mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import attrs

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service import logs, mounts
from lfafs.service.control import Client, ControlError, ensure_run_dir
from lfafs.service.daemon import preflight
from lfafs.service.scenario import Sources

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class SpawnError(RuntimeError):
    """The daemon could not be started: a sentence saying why and what to do."""


def dies_with(parent: int):
    """A preexec_fn: the child gets SIGTERM when ``parent`` dies, and exits at once if it has already.

    libc is loaded here, in the parent, so that the child makes only system
    calls between fork and exec. The death signal is kept across exec (a
    set-user-ID program would drop it: lfafs is none) and comes when the
    thread that forked ends: ``lfafs run``'s main thread, for its daemon and
    its command. A parent that died between fork and prctl sends nothing; the
    child is reparented by then, so getppid() tells, and it leaves before
    mounting or running anything.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)

    def child() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)

    return child


def command_line(mountpoint: str, *, profile: str | None = DEFAULT_PROFILE, abi: str = "v3", cpus: int | None = None,
                 passthrough: bool = False, state_dir: str | None = None, scenario: Sources | None = None,
                 allow_other: bool = False) -> list[str]:
    """The foreground daemon's command line; the mountpoint comes last.

    ``profile`` None: the scenario's, else the default (scenario.py).
    """
    cmd = [sys.executable, "-m", "lfafs", "mount", "--foreground", "--kernel-abi", abi]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    if scenario:
        cmd += scenario.argv()
    if cpus is not None:  # 0 too: the daemon refuses it, rather than serving the profile's count
        cmd += ["--cpus", str(cpus)]
    if passthrough:
        cmd.append("--passthrough")
    if allow_other:
        cmd.append("--allow-other")
    if state_dir:
        cmd += ["--state-dir", state_dir]
    return [*cmd, mountpoint]


def why_not_unmountable(mountpoint: str) -> str | None:
    """Why ``lfafs umount`` must leave ``mountpoint`` alone (not mounted, or not an lfafs mount), or None."""
    return mounts.why_not_lfafs(mountpoint)


def unmount(mountpoint: str, *, timeout: float = 5.0) -> str | None:
    """``fusermount3 -u`` of an lfafs mount, then wait until it is gone; None, or why not.

    Any other filesystem mounted there is refused, never unmounted.
    """
    why = mounts.why_not_lfafs(mountpoint)
    if why is not None:
        return why
    r = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip() or "fusermount3 failed"
    end = time.monotonic() + timeout
    while os.path.ismount(mountpoint) and time.monotonic() < end:
        time.sleep(0.01)
    return None


@attrs.define
class Daemon:
    """A daemon started by ``start``, serving ``mountpoint``."""

    mountpoint: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Unmount (lazily if files are open), wait for the daemon to exit, kill it if it does not."""
        if os.path.ismount(self.mountpoint) and unmount(self.mountpoint) is not None:
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(mountpoint: str, *, profile: str | None = DEFAULT_PROFILE, abi: str = "v3", cpus: int | None = None,
          passthrough: bool = False, state_dir: str | None = None, scenario: Sources | None = None,
          allow_other: bool = False, die_with_parent: bool = False, timeout: float = START_TIMEOUT) -> Daemon:
    """Start a daemon for ``mountpoint``; return once the mount and its control socket answer.

    ``die_with_parent``: the daemon stops (unmounting) when the calling thread ends, its process
    dying in any way included (call it from the main thread); otherwise it outlives its starter.
    Raises SpawnError (and leaves nothing running) when it cannot start.
    """
    mnt = os.path.abspath(mountpoint)
    state = os.path.abspath(state_dir) if state_dir else None
    try:
        ensure_run_dir()  # made and checked before the daemon's log is put in it
    except ControlError as e:
        raise SpawnError(e.message) from None
    why = preflight(mnt, profile=profile, cpus=cpus, state_dir=state, scenario=scenario)
    if why:
        raise SpawnError(why)
    cmd = command_line(mnt, profile=profile, abi=abi, cpus=cpus, passthrough=passthrough, state_dir=state,
                       scenario=scenario, allow_other=allow_other)
    with logs.open_log(mnt) as log:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                 preexec_fn=dies_with(os.getpid()) if die_with_parent else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.ismount(mnt):
                try:
                    Client(mount=mnt, timeout=5).call("ping")
                except ControlError:
                    pass
                else:
                    return Daemon(mnt, child)
            if child.poll() is not None:
                with open(logs.log_path(mnt), "rb") as err:
                    text = err.read().decode(errors="replace").strip()
                logs.remove_runtime_dir(mnt)
                raise SpawnError(f"the daemon exited ({child.returncode}): {text or 'no message'}")
            time.sleep(0.02)
    Daemon(mnt, child).stop(timeout=5)
    raise SpawnError(f"{mnt} did not come up within {timeout:g} s")


@contextlib.contextmanager
def running(mountpoint: str, **options) -> Iterator[Daemon]:
    """``start`` on entry, ``Daemon.stop`` on exit, whatever happens in between."""
    daemon = start(mountpoint, **options)
    try:
        yield daemon
    finally:
        daemon.stop()
