"""Start an lfafs daemon in the background, and stop it: the one place that does.

``lfafs mount`` (without --foreground), ``lfafs run``, ``lfafs demo``, the
pytest fixtures and the service tests all go through here:

    with spawn.running(mountpoint, abi="v2") as daemon:   # returns once mount and socket answer
        ...                                                # daemon.pid, daemon.mountpoint
    # unmounted, the daemon has exited (killed if it would not)

``start`` checks first, in the caller's process, what would make the
daemon fail (daemon.preflight), so the person sees the sentence. The daemon
is ``python -m lfafs mount --foreground ...`` in a session of its own; its
stderr goes to an unlinked file, read only to explain an early exit (a pipe
nobody reads could fill and stall it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import attrs

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service.control import Client, ControlError
from lfafs.service.daemon import preflight

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class SpawnError(RuntimeError):
    """The daemon could not be started: a sentence saying why and what to do."""


def command_line(mountpoint: str, *, profile: str = DEFAULT_PROFILE, abi: str = "v3", cpus: int | None = None,
                 passthrough: bool = False, state_dir: str | None = None) -> list[str]:
    """The foreground daemon's command line; the mountpoint comes last."""
    cmd = [sys.executable, "-m", "lfafs", "mount", "--foreground", "--profile", str(profile), "--kernel-abi", abi]
    if cpus:
        cmd += ["--cpus", str(cpus)]
    if passthrough:
        cmd.append("--passthrough")
    if state_dir:
        cmd += ["--state-dir", state_dir]
    return [*cmd, mountpoint]


def unmount(mountpoint: str, *, timeout: float = 5.0) -> str | None:
    """``fusermount3 -u``, then wait until the mount is gone; None, or fusermount3's complaint."""
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


def start(mountpoint: str, *, profile: str = DEFAULT_PROFILE, abi: str = "v3", cpus: int | None = None,
          passthrough: bool = False, state_dir: str | None = None, timeout: float = START_TIMEOUT) -> Daemon:
    """Start a daemon for ``mountpoint``; return once the mount and its control socket answer.

    Raises SpawnError (and leaves nothing running) when it cannot start.
    """
    mnt = os.path.abspath(mountpoint)
    state = os.path.abspath(state_dir) if state_dir else None
    why = preflight(mnt, profile=profile, cpus=cpus, state_dir=state)
    if why:
        raise SpawnError(why)
    cmd = command_line(mnt, profile=profile, abi=abi, cpus=cpus, passthrough=passthrough, state_dir=state)
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True)
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
                err.seek(0)
                text = err.read().decode(errors="replace").strip()
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
