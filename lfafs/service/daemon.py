"""One mount: the platform, the driver wired to it, and the FUSE loop, in one Trio run.

The platform is owned by this Trio run; the FUSE loop runs in a worker
thread and enters it through ``trio.from_thread``. Everything that can
refuse a start (the profile, --cpus, the state directory and its lock) is
checked before anything is mounted or written, and each refusal is one line
(``preflight`` in the caller's process, ``open_platform`` in the daemon).
"""

from __future__ import annotations

import functools
import os
import pathlib
import sys
from collections.abc import Awaitable, Callable

import attrs
import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import platform_conduit
from lfafs.fs import SysfsOps, serve
from lfafs.platform import DEFAULT_PROFILE, Platform, PlatformError, ProfileError
from lfafs.service import access, control, control_server, logs, sdnotify
from lfafs.service.commands import COMMANDS
from lfafs.service.efi_boot import EfiKernel, boot_efi
from lfafs.service.scenario import Scenario, Sources
from lfafs.service.scenario import check as check_scenario
from lfafs.service.session import Session
from lfafs.service.state import FlashWriter, StateDir, StateError

SAVE_RETRY = 1.0  # seconds between attempts to save an activation the disk refused (state.FlashWriter)


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


def load_platform(profile: str | pathlib.Path = DEFAULT_PROFILE, cpus: int | None = None) -> Platform:
    """The platform of ``profile`` with ``cpus``; ProfileError or PlatformError, in one line, otherwise."""
    try:
        return Platform.from_profile(profile, cpus=cpus)
    except RecursionError:
        raise ProfileError(str(profile), "(file)", "nested too deeply to be a profile") from None
    except UnicodeDecodeError:  # the loader reads TOML as UTF-8 text
        raise ProfileError(str(profile), "(file)", "not UTF-8 text, so not a TOML profile") from None


def open_platform(mountpoint: str, *, profile: str | pathlib.Path = DEFAULT_PROFILE, cpus: int | None = None,
                  state_dir: str | None = None,
                  scenario: Scenario | None = None) -> tuple[Platform, FlashWriter | None]:
    """The platform, restored from ``state_dir`` (locked for this process) when one is given.

    Raises ProfileError, PlatformError or StateError, in one line, before
    anything is mounted; a refused state directory is left as it was.
    """
    platform = scenario.new_platform(cpus) if scenario is not None else load_platform(profile, cpus)
    if state_dir is None:
        return platform, None
    # a restart is a cold boot from the saved flash; the log says when a firmware write waits for the disk
    return platform, StateDir(state_dir).attach(platform, mountpoint, log=lambda line: logs.say(f"lfafs: {line}"))


async def run_mount(mountpoint: str | pathlib.Path, *, profile: str | pathlib.Path = DEFAULT_PROFILE, abi: str = "v3",
                    cpus: int | None = None, passthrough: str | None = None, auto_unmount: bool = False,
                    allow_other: bool = False, state_dir: str | None = None,
                    ready: Callable[[Mount], Awaitable[None] | None] | None = None,
                    scenario: Scenario | None = None,
                    opened: tuple[Platform, FlashWriter | None] | None = None) -> None:
    """Serve an emulated platform at ``mountpoint`` until the mount goes away or the caller cancels.

    With a ``scenario`` (scenario.py), its profile replaces ``profile``, its state is applied over
    the saved flash before the driver probes, and its events run once the mount is up.
    ``opened`` is what ``open_platform`` returned when the caller opened it
    first (to report a refusal before anything runs); otherwise it is opened here.
    ``allow_other``: users other than the daemon's may use the mount, with the
    modes and owners enforced by the kernel (lfafs/fs.py, mount_options).
    """
    mnt = str(mountpoint)
    platform, flash = opened or open_platform(mnt, profile=profile, cpus=cpus, state_dir=state_dir,
                                              scenario=scenario)
    try:
        await _serve_platform(mnt, platform, flash, abi=abi, passthrough=passthrough, auto_unmount=auto_unmount,
                              allow_other=allow_other, ready=ready, scenario=scenario)
    finally:
        if flash is not None:
            if not flash.retry():
                flash.log(f"{flash.unsaved}: the last activation is not saved; the next start boots the old "
                          "version with the update still staged")
            flash.state.release()


async def _keep_flash_saved(flash: FlashWriter) -> None:
    """Retry, every SAVE_RETRY seconds, an activation the disk refused (state.FlashWriter)."""
    while True:
        await trio.sleep(SAVE_RETRY)
        if flash.unsaved is not None:
            flash.retry()


async def _serve_platform(mnt: str, platform: Platform, flash: FlashWriter | None, *, abi: str,
                          passthrough: str | None, auto_unmount: bool, allow_other: bool,
                          ready: Callable[[Mount], Awaitable[None] | None] | None,
                          scenario: Scenario | None) -> None:
    events = scenario.start(platform, logs.say) if scenario is not None else None
    conduit = platform_conduit(platform)
    if events is not None:
        conduit = events.watch(conduit)  # counts the kernel's PRIMEs for before_prime events
    async with trio.open_nursery() as nursery:
        # the driver registers the source the platform offers (ACPI ARML0003, the DT "arm,lfa" interrupt or none)
        driver = LfaDriver(conduit, abi=abi, notification=platform.profile.notification)
        await driver.probe(nursery)
        mount = Mount(mnt, platform, driver, trio.lowlevel.current_trio_token(), nursery)
        # UEFI: Linux reads /sys/firmware/efi and mounts efivarfs at boot (efi_boot.py), again after a reset
        efi = await boot_efi(platform)
        ops = SysfsOps(driver, mount.token, passthrough=passthrough, efi=efi)
        if efi is not None:
            mount.efi = EfiKernel(platform, ops, efi)

        async def fuse_loop() -> None:
            try:
                await trio.to_thread.run_sync(functools.partial(serve, ops, mnt, auto_unmount=auto_unmount,
                                                                allow_other=allow_other),
                                              abandon_on_cancel=True)
            finally:
                nursery.cancel_scope.cancel()  # the mount went away: so does the platform

        nursery.start_soon(fuse_loop)
        if flash is not None:
            nursery.start_soon(_keep_flash_saved, flash)
        if not await wait_mounted(mnt):
            raise RuntimeError(f"{mnt} did not become a mount point")
        if events is not None:
            nursery.start_soon(events.timed, driver, mount.efi)
        if ready is not None:
            result = ready(mount)
            if result is not None:
                await result


def check_can_mount(mountpoint: str) -> str | None:
    """Why a mount at ``mountpoint`` cannot work here, as a sentence with what to do, or None."""
    why = access.fuse_problem()  # root, or an ordinary user through fusermount3 (access.py)
    if why:
        return why
    if not os.path.isdir(mountpoint):
        return f"{mountpoint} is not a directory: create it first (mkdir -p {mountpoint})"
    if os.path.ismount(mountpoint):
        return f"{mountpoint} is already a mount point: unmount it first (lfafs umount {mountpoint})"
    return None


def preflight(mountpoint: str, *, profile: str | pathlib.Path | None = DEFAULT_PROFILE, cpus: int | None = None,
              state_dir: str | None = None, scenario: Sources | None = None) -> str | None:
    """Why serving ``mountpoint`` would fail, checked before any daemon starts, or None.

    Run in the process a person sees (the CLI, ``lfafs run``, a fixture), so
    the sentence reaches them rather than a detached daemon's stderr. It
    writes nothing: a refused start leaves the state directory as it was.
    """
    why = check_can_mount(mountpoint)
    if why:
        return why
    try:
        control.check_run_dir(control.run_dir())  # where the control socket will go (a missing one is made)
    except control.ControlError as e:
        return e.message
    if state_dir:
        why = _check_state_dir(mountpoint, state_dir)
        if why:
            return why
    if scenario:  # its file, line and field; its profile, the saved flash and a dry run (scenario.py)
        return check_scenario(scenario, profile=profile, cpus=cpus, state_dir=state_dir)
    try:
        platform = load_platform(profile, cpus)  # the profile's file and field, the CPU count
    except ProfileError as e:
        return f"bad profile: {e}"
    except PlatformError as e:
        return f"--cpus: {e}" if cpus is not None else str(e)
    if state_dir:
        state = StateDir(state_dir)
        try:
            saved = state.load(platform.profile)  # the saved flash must fit this profile
            if saved is not None:
                platform.restore_flash(*saved)
        except StateError as e:
            return str(e)
        except PlatformError as e:
            return f"{state.flash_file}: {e}"
    return None


def _contains(outer: str, inner: str) -> bool:
    outer, inner = os.path.realpath(outer), os.path.realpath(inner)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _check_state_dir(mountpoint: str, state_dir: str) -> str | None:
    """Why ``state_dir`` cannot serve ``mountpoint`` (inside it, or held by another daemon), or None."""
    if _contains(mountpoint, state_dir) or _contains(state_dir, mountpoint):
        return (f"the state directory {state_dir} and the mountpoint {mountpoint} contain one another: the mount "
                "would hide the state or be written into; give a --state-dir outside the mountpoint")
    try:
        StateDir(state_dir).check_free()
    except StateError as e:
        return str(e)
    return None


def _raise_descriptor_limit() -> None:
    """Use the hard limit of open files, so that clients and saves do not run the daemon out of them."""
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


async def serve_foreground(mountpoint: str, *, profile: str = DEFAULT_PROFILE, abi: str = "v3",
                           cpus: int | None = None, passthrough: str | None = None, allow_other: bool = False,
                           control_path: str | None = None, state_dir: str | None = None,
                           announce: Callable[[str], None] = print, scenario: Scenario | None = None) -> int:
    """The daemon: serve until SIGTERM/SIGINT/SIGHUP or an unmount, then leave nothing mounted.

    Its log (logs.py) is its stderr: a background daemon's is in its runtime directory,
    which is removed once it has stopped cleanly. A start it must refuse (the state
    directory is another daemon's, a corrupt flash) is one line there and exit status 1.
    """
    import signal

    _raise_descriptor_limit()
    try:
        opened = open_platform(mountpoint, profile=profile, cpus=cpus, state_dir=state_dir, scenario=scenario)
    except (ProfileError, PlatformError, StateError) as e:
        print(f"lfafs mount: {e}", file=sys.stderr, flush=True)
        return 1
    # Opened before libfuse starts, so that libfuse leaves these signals to us.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:

            async def ready(mount: Mount) -> None:
                path = control_path or control.socket_path(mountpoint)
                await mount.nursery.start(control_server.serve, path, COMMANDS, mount)
                announce(f"lfafs: serving the {mount.platform.profile.name} platform at {mountpoint}")
                logs.say(f"lfafs: serving the {mount.platform.profile.name} platform at {mountpoint} "
                         f"(pid {os.getpid()})")
                mount.nursery.start_soon(logs.follow_klog, mount.driver.klog)
                n = len(mount.driver.images)
                # READY only now: the mount answers and so does the control socket.
                profile = mount.platform.profile.name
                sdnotify.notify(f"READY=1\nSTATUS=serving {n} components of {profile} at {mountpoint}")
                interval = sdnotify.watchdog_interval()
                if interval:
                    mount.nursery.start_soon(_watchdog, mountpoint, interval)

            async def serve_it() -> None:
                await run_mount(mountpoint, profile=profile, abi=abi, cpus=cpus, passthrough=passthrough,
                                auto_unmount=True, allow_other=allow_other, ready=ready, scenario=scenario,
                                opened=opened)
                nursery.cancel_scope.cancel()

            async def on_signal() -> None:
                async for signum in signals:
                    logs.say(f"lfafs: {signal.Signals(signum).name}: unmounting {mountpoint}")
                    sdnotify.notify("STOPPING=1\nSTATUS=unmounting")
                    await unmount(mountpoint)
                    return

            nursery.start_soon(serve_it)
            nursery.start_soon(on_signal)
    logs.say(f"lfafs: stopped serving {mountpoint}")
    if control_path is None:
        logs.remove_runtime_dir(mountpoint)  # the socket is gone: nothing of this mount stays under /run
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
