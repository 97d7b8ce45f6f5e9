"""A real FUSE mount of an emulated platform, served from a background thread.

The Trio loop (platform + driver) runs in its own thread; the FUSE loop in a
worker thread of it. Tests use the mount with ordinary file calls and
subprocesses, and reach the platform through ``call``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import trio



class MountError(RuntimeError):
    pass


def fuse_unavailable() -> str | None:
    """Why mounting cannot work here, or None (the same test as the pytest plugin's)."""
    from lfafs.testing import unavailable

    return unavailable()


class Mounted:
    def __init__(self, mountpoint, *, profile: str = "fvp", abi: str = "v3", passthrough: str | None = None,
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

    async def _main(self) -> None:
        from lfafs.daemon import run_mount

        def ready(mount) -> None:
            self.platform, self.driver, self.token = mount.platform, mount.driver, mount.token
            self._ready.set()

        await run_mount(self.mnt, profile=self._profile, abi=self._abi, cpus=self._cpus,
                        passthrough=self._passthrough, ready=ready)

    def call(self, fn, *args):
        """Run fn(*args) in the Trio thread that owns the platform."""
        return trio.from_thread.run_sync(lambda: fn(*args), trio_token=self.token)

    def acall(self, afn, *args):
        return trio.from_thread.run(afn, *args, trio_token=self.token)

    def path(self, guid: str, attr: str | None = None) -> str:
        return os.path.join(self.lfa, guid, attr) if attr else os.path.join(self.lfa, guid)

    def read(self, guid: str, attr: str) -> str:
        with open(self.path(guid, attr)) as f:
            return f.read()

    def write(self, guid: str, attr: str, data: str = "1\n") -> int:
        fd = os.open(self.path(guid, attr), os.O_WRONLY)
        try:
            return os.write(fd, data.encode())
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
