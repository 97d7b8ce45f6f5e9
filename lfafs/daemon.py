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
from lfafs.platform import Platform


@attrs.define
class Mount:
    """What a running mount exposes to its owner (control plane, tests, benchmarks)."""

    mountpoint: str
    platform: Platform
    driver: LfaDriver
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


async def run_mount(mountpoint: str | pathlib.Path, *, profile: str | pathlib.Path = "fvp", abi: str = "v3",
                    cpus: int | None = None, passthrough: str | None = None, auto_unmount: bool = False,
                    ready: Callable[[Mount], Awaitable[None] | None] | None = None) -> None:
    """Serve an emulated platform at ``mountpoint`` until the mount goes away or the caller cancels."""
    mnt = str(mountpoint)
    platform = Platform.from_profile(profile, cpus=cpus)
    conduit = platform_conduit(platform.smc, lambda: [c for c in range(platform.ncpus) if platform.cpu_on[c]])
    async with trio.open_nursery() as nursery:
        driver = LfaDriver(conduit, abi=abi)
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
