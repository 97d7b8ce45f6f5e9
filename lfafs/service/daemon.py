"""One mount: the platform, the driver wired to it, and the FUSE loop, in one Trio run.

The platform is owned by this Trio run; the FUSE loop runs in a worker
thread and enters it through ``trio.from_thread``.
"""

from __future__ import annotations

import functools
import os
import pathlib
from collections.abc import Awaitable, Callable

import attrs
import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import platform_conduit
from lfafs.fs import SysfsOps, serve
from lfafs.platform import DEFAULT_PROFILE, Platform, PlatformError, ProfileError, load_profile
from lfafs.service import control, sdnotify
from lfafs.service.commands import COMMANDS
from lfafs.service.session import Session
from lfafs.service.state import StateDir, StateError


@attrs.define
class Mount(Session):
    """What a running mount exposes to its owner (control plane, tests, benchmarks):
    the Session the control commands act on, and the Trio handles to enter and stop it."""

    token: trio.lowlevel.TrioToken
    nursery: trio.Nursery

    def stop(self) -> None:
        self.nursery.cancel_scope.cancel()


async def wait_mounted(path: str, timeout: float = 30.0) -> bool:
    with trio.move_on_after(timeout):
        while not await trio.to_thread.run_sync(os.path.ismount, path):
            await trio.sleep(0.01)
        return True
    return False


async def run_mount(mountpoint: str | pathlib.Path, *, profile: str | pathlib.Path = DEFAULT_PROFILE, abi: str = "v3",
                    cpus: int | None = None, passthrough: str | None = None, auto_unmount: bool = False,
                    state_dir: str | None = None,
                    ready: Callable[[Mount], Awaitable[None] | None] | None = None) -> None:
    """Serve an emulated platform at ``mountpoint`` until the mount goes away or the caller cancels."""
    mnt = str(mountpoint)
    platform = Platform.from_profile(profile, cpus=cpus)
    if state_dir is not None:
        StateDir(state_dir).attach(platform)  # a restart is a cold boot from the saved flash
    conduit = platform_conduit(platform.smc, lambda: [c for c in range(platform.ncpus) if platform.cpu_on[c]])
    async with trio.open_nursery() as nursery:
        # the driver registers the source the platform offers (ACPI ARML0003, the DT "arm,lfa" interrupt or none)
        driver = LfaDriver(conduit, abi=abi, notification=platform.profile.notification)
        await driver.probe(nursery)
        mount = Mount(mnt, platform, driver, trio.lowlevel.current_trio_token(), nursery)
        ops = SysfsOps(driver, mount.token, passthrough=passthrough)

        async def fuse_loop() -> None:
            try:
                await trio.to_thread.run_sync(functools.partial(serve, ops, mnt, auto_unmount=auto_unmount),
                                              abandon_on_cancel=True)
            finally:
                nursery.cancel_scope.cancel()  # the mount went away: so does the platform

        nursery.start_soon(fuse_loop)
        if not await wait_mounted(mnt):
            raise RuntimeError(f"{mnt} did not become a mount point")
        if ready is not None:
            result = ready(mount)
            if result is not None:
                await result


def check_can_mount(mountpoint: str) -> str | None:
    """Why a mount at ``mountpoint`` cannot work here, as a sentence with what to do, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: load the fuse module (modprobe fuse) or run where FUSE is available"
    if os.geteuid() != 0:
        return "lfafs mounts /sys/firmware-style files owned by root: run it as root (sudo)"
    if not os.path.isdir(mountpoint):
        return f"{mountpoint} is not a directory: create it first (mkdir -p {mountpoint})"
    if os.path.ismount(mountpoint):
        return f"{mountpoint} is already a mount point: unmount it first (lfafs umount {mountpoint})"
    return None


def preflight(mountpoint: str, *, profile: str | pathlib.Path = DEFAULT_PROFILE, cpus: int | None = None,
              state_dir: str | None = None) -> str | None:
    """Why serving ``mountpoint`` would fail, checked before any daemon starts, or None.

    Run in the process a person sees (the CLI, ``lfafs run``, a fixture), so
    the sentence reaches them rather than a detached daemon's stderr.
    """
    why = check_can_mount(mountpoint)
    if why:
        return why
    try:
        load_profile(profile)  # the file and field, before anything starts
    except ProfileError as e:
        return f"bad profile: {e}"
    if state_dir:
        try:  # the saved flash must fit this profile
            saved = StateDir(state_dir).load()
            if saved is not None:
                Platform.from_profile(profile, cpus=cpus).restore_flash(*saved)
        except (StateError, PlatformError) as e:
            return str(e)
    return None


async def serve_foreground(mountpoint: str, *, profile: str = DEFAULT_PROFILE, abi: str = "v3",
                           cpus: int | None = None, passthrough: str | None = None,
                           control_path: str | None = None, state_dir: str | None = None,
                           announce: Callable[[str], None] = print) -> int:
    """The daemon: serve until SIGTERM/SIGINT/SIGHUP or an unmount, then leave nothing mounted."""
    import signal

    # Opened before libfuse starts, so that libfuse leaves these signals to us.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:

            async def ready(mount: Mount) -> None:
                path = control_path or control.socket_path(mountpoint)
                await mount.nursery.start(control.serve, path, COMMANDS, mount)
                announce(f"lfafs: serving the {mount.platform.profile.name} platform at {mountpoint}")
                n = len(mount.driver.images)
                # READY only now: the mount answers and so does the control socket.
                sdnotify.notify(f"READY=1\nSTATUS=serving {n} components of {mount.platform.profile.name} at {mountpoint}")
                interval = sdnotify.watchdog_interval()
                if interval:
                    mount.nursery.start_soon(_watchdog, mountpoint, interval)

            async def serve_it() -> None:
                await run_mount(mountpoint, profile=profile, abi=abi, cpus=cpus, passthrough=passthrough,
                                auto_unmount=True, state_dir=state_dir, ready=ready)
                nursery.cancel_scope.cancel()

            async def on_signal() -> None:
                async for _ in signals:
                    sdnotify.notify("STOPPING=1\nSTATUS=unmounting")
                    await unmount(mountpoint)
                    return

            nursery.start_soon(serve_it)
            nursery.start_soon(on_signal)
    return 0


async def _watchdog(mountpoint: str, interval: float) -> None:
    """Ping systemd while both the Trio loop and the mount answer (a stat goes through FUSE)."""
    while True:
        try:
            await trio.to_thread.run_sync(os.stat, os.path.join(mountpoint, "lfa"))
        except OSError:
            pass
        else:
            sdnotify.notify("WATCHDOG=1")
        await trio.sleep(interval)


async def unmount(mountpoint: str) -> None:
    with trio.CancelScope(shield=True):
        result = await trio.run_process(["fusermount3", "-u", mountpoint], check=False, capture_stderr=True)
        if result.returncode != 0 and os.path.ismount(mountpoint):
            await trio.run_process(["fusermount3", "-u", "-z", mountpoint], check=False, capture_stderr=True)
