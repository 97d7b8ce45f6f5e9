"""A real FUSE mount of an emulated platform, served from a background thread.

The Trio loop (platform + driver) runs in its own thread; the FUSE loop in a
worker thread of it. Tests use the mount with ordinary file calls and
subprocesses, and reach the platform through ``call``. The mount is wired
from layers 2-4 only (platform, driver, filesystem), as the service wires it,
so these tests stay below the service layer.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time

import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import platform_conduit
from lfafs.fs import SysfsOps, serve
from lfafs.platform import Platform

PROFILE = "fvp-den0147"  # staged images, versions in x4/x5, the DT interrupt


class MountError(RuntimeError):
    pass


def fuse_unavailable() -> str | None:
    """Why mounting cannot work here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if os.geteuid() != 0:
        return "the files are root's: run the tests as root"
    return None


class Mounted:
    def __init__(self, mountpoint, *, profile: str = PROFILE, abi: str = "v3", passthrough: str | None = None,
                 cpus: int | None = None) -> None:
        self.mnt = str(mountpoint)
        os.makedirs(self.mnt, exist_ok=True)
        self.lfa = os.path.join(self.mnt, "lfa")
        self._profile, self._abi, self._passthrough, self._cpus = profile, abi, passthrough, cpus
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lfafs-test-mount", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            self.close()
            raise MountError(f"the mount did not come up: {self._error!r}")

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported to the waiting test
            self._error = e
            self._ready.set()

    # What a subclass changes (efi_harness.EfiMounted): the platform, the kernel's efi/ tree, the mount.
    allow_other = False

    def _platform(self) -> Platform:
        return Platform.from_profile(self._profile, cpus=self._cpus)

    async def _efi_tree(self, p: Platform):
        return None

    async def _main(self) -> None:
        p = self._platform()
        conduit = platform_conduit(p)
        async with trio.open_nursery() as nursery:
            self.platform = p
            self.driver = LfaDriver(conduit, abi=self._abi, notification=p.profile.notification)
            await self.driver.probe(nursery)
            self.tree = await self._efi_tree(p)
            self.token = trio.lowlevel.current_trio_token()
            ops = SysfsOps(self.driver, self.token, passthrough=self._passthrough, efi=self.tree)

            async def fuse_loop() -> None:
                try:
                    await trio.to_thread.run_sync(functools.partial(serve, ops, self.mnt,
                                                                    allow_other=self.allow_other),
                                                  abandon_on_cancel=True)
                finally:
                    nursery.cancel_scope.cancel()  # the mount went away: so does the platform

            nursery.start_soon(fuse_loop)
            with trio.fail_after(30):
                while not await trio.to_thread.run_sync(os.path.ismount, self.mnt):
                    await trio.sleep(0.01)
            self._ready.set()

    def call(self, fn, *args):
        """Run fn(*args) in the Trio thread that owns the platform."""
        return trio.from_thread.run_sync(lambda: fn(*args), trio_token=self.token)

    def acall(self, afn, *args):
        return trio.from_thread.run(afn, *args, trio_token=self.token)

    def smcs(self, name: str) -> list:
        return self.call(lambda: [r for r in self.platform.trace.records() if r.name == name])

    def path(self, guid: str, attr: str | None = None) -> str:
        return os.path.join(self.lfa, guid, attr) if attr else os.path.join(self.lfa, guid)

    def read(self, guid: str, attr: str) -> str:
        with open(self.path(guid, attr)) as f:
            return f.read()

    def write(self, guid: str, attr: str, data: str | bytes = "1\n") -> int:
        fd = os.open(self.path(guid, attr), os.O_WRONLY)
        try:
            return os.write(fd, data.encode() if isinstance(data, str) else data)
        finally:
            os.close(fd)

    def close(self) -> None:
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False, capture_output=True)
            for _ in range(500):
                if not os.path.ismount(self.mnt):
                    break
                time.sleep(0.01)
        self._thread.join(timeout=30)
