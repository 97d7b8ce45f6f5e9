"""`lfafs run`: an unmodified command in a private mount namespace whose
/sys/firmware is the emulated tree (lfa/ emulated, everything else the host's).

A daemon serves a temporary mount (with pass-through of the host's
/sys/firmware unless told otherwise); util-linux's unshare creates a mount
namespace with private propagation — inside an unprivileged user
namespace, root mapped to the caller, when the caller is not root — and
bind-mounts that tree over /sys/firmware inside it only (and, with UEFI,
efi/efivars onto itself, read-only for the ``mainline`` firmware, with
EFIVARFS_PATH exported for libefivar); the command runs there, with the
daemon's control socket in $LFAFS_SOCKET so that ``lfafs ctl`` (no
--mount needed) drives the platform from inside.

SIGTERM, SIGHUP and SIGINT are passed to the command (SIGINT only when it
did not come from the terminal, which sent it to the command already); the
command gets a few seconds to exit before SIGKILL. Whatever happens, the
daemon is stopped, the temporary mountpoint and the daemon's runtime
directory are removed, and ``run`` exits with the command's status, 128+N
for a command killed by signal N. Killed by SIGKILL, ``run`` can clean up
nothing itself: the kernel then sends SIGTERM to the command and to the
daemon (spawn.dies_with), the daemon unmounts once the command's
namespace, which holds a bind of the mount, is gone, and only the empty
temporary mountpoint is left.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service import access, spawn
from lfafs.service.control import Client, ControlError, socket_path
from lfafs.service.env import LFAFS_MOUNT, LFAFS_SOCKET
from lfafs.service.scenario import Sources

EFIVARS = "/sys/firmware/efi/efivars"
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
GRACE = 5.0  # seconds a command has to exit after a forwarded signal, before SIGKILL


class RunError(RuntimeError):
    pass


def exit_status(returncode: int) -> int:
    """A shell's exit status for a child's returncode: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def namespace_command(mountpoint: str, command: list[str], efivars: str | None = None) -> list[str]:
    """``command`` in a private mount namespace with ``mountpoint`` bound over /sys/firmware.

    With ``efivars`` ("read-write" or "read-only", how the emulated kernel mounted efivarfs) its
    directory is also a mount point of its own, as efivarfs is on a real system (fwupd's uefi-capsule
    plugin insists), read-only when the firmware offers no runtime SetVariable (``mainline``).
    """
    ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]  # root in a user namespace of its own, mapped to the caller
    steps = [f"mount --bind {shlex.quote(mountpoint)} /sys/firmware"]
    if efivars is not None:
        steps.append(f"mount --bind {shlex.quote(os.path.join(mountpoint, 'efi', 'efivars'))} {EFIVARS}")
        if efivars == "read-only":
            steps.append(f"mount -o remount,bind,ro {EFIVARS}")
    inner = " && ".join([*steps, 'exec "$@"'])
    return [*ns, "sh", "-c", inner, "lfafs-run", *command]


def efivars_mode(mountpoint: str) -> str | None:
    """How the daemon's kernel mounted efivarfs ("read-write", "read-only"), or None: no UEFI."""
    uefi = Client(mount=mountpoint, timeout=30).call("status").get("uefi")
    return uefi.get("efivarfs") if uefi else None


def environment(mountpoint: str, efivars: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[LFAFS_SOCKET] = socket_path(mountpoint)
    env[LFAFS_MOUNT] = mountpoint
    if efivars is not None:
        # libefivar recognises efivarfs by statfs's f_type, which FUSE cannot give: its documented
        # override names the directory instead (rhboot/efivar src/efivarfs.c; docs/efi.md)
        env.setdefault("EFIVARFS_PATH", EFIVARS + "/")
    here = os.path.dirname(sys.executable)  # a venv's bin/, where the lfafs command is
    if shutil.which("lfafs") is None and shutil.which("lfafs", path=here):
        env["PATH"] = os.pathsep.join(p for p in (env.get("PATH", ""), here) if p)
    return env


def _remove(tmp: str) -> None:
    """rmdir only: never descend into what may still be a mount."""
    for d in (os.path.join(tmp, "firmware"), tmp):
        try:
            os.rmdir(d)
        except OSError:
            pass


class _Signals:
    """Record SIGTERM/SIGHUP/SIGINT while the run is being set up; pass them to the command once it runs."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen | None = None
        self.deadline: float | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        for s in FORWARDED:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        if self.child is None or self.child.poll() is not None:
            return
        if signum == signal.SIGINT and _terminal_sent_it():
            return  # the terminal sent it to the whole foreground group, the command included
        try:
            self.child.send_signal(signum)
        except OSError:
            pass
        if self.deadline is None:
            self.deadline = time.monotonic() + GRACE

    def wait(self, child: subprocess.Popen) -> int:
        self.child = child
        while True:
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    child.kill()


def _terminal_sent_it() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def run(command: list[str], *, profile: str | None = None, abi: str = "v3", cpus: int | None = None,
        state_dir: str | None = None, passthrough: bool = True, scenario: Sources | None = None) -> int:
    """Run ``command`` against an emulated /sys/firmware; return its exit status (128+N for signal N)."""
    if not command:
        raise RunError("give a command after --, e.g. lfafs run -- cat /sys/firmware/lfa/*/name")
    if shutil.which("unshare") is None:
        raise RunError("util-linux's unshare is missing: apt-get install util-linux")
    why = access.fuse_problem() or access.userns_problem()
    if why:
        raise RunError(why)
    with _Signals() as signals:
        tmp = tempfile.mkdtemp(prefix="lfafs-run-")
        mnt = os.path.join(tmp, "firmware")
        os.mkdir(mnt)
        try:
            if profile is None and not scenario:
                profile = DEFAULT_PROFILE  # else the scenario's, or the default (scenario.py)
            try:
                daemon = spawn.start(mnt, profile=profile, abi=abi, cpus=cpus, passthrough=passthrough,
                                     state_dir=state_dir, scenario=scenario,
                                     allow_other=True,  # any user the command becomes reads it as sysfs
                                     die_with_parent=True)  # a SIGKILLed run leaves no daemon, no mount
            except spawn.SpawnError as e:
                raise RunError(str(e)) from None
            try:
                if signals.received is not None:  # asked to stop while the platform was starting
                    return 128 + signals.received
                try:
                    efivars = efivars_mode(mnt)
                except ControlError as e:
                    raise RunError(f"the daemon of {mnt} does not answer: {e}") from None
                # SIGTERM when run dies, as run would forward: the command's namespace holds a bind
                # of the mount, and the daemon can only finish unmounting once that namespace is gone.
                child = subprocess.Popen(namespace_command(mnt, command, efivars), env=environment(mnt, efivars),
                                         preexec_fn=spawn.dies_with(os.getpid()))
                return exit_status(signals.wait(child))
            finally:
                daemon.stop()
        finally:
            _remove(tmp)
