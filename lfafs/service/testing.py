"""pytest fixtures for other projects' tests (registered as the ``lfafs`` pytest11 plugin).

Users import them as ``lfafs.testing``, which re-exports this module's names.

``lfafs_mount`` serves a fresh emulated platform (the embedded default
profile) for one test and hands back its paths and a control client;
``lfafs_platform`` does the same for a chosen profile or kernel ABI. Both
skip, saying why, where mounting is impossible (no /dev/fuse, not root).

    def test_my_tool_activates_the_rmm(lfafs_mount):
        lfafs_mount.stage("rmm", "1.0")
        subprocess.run(["my-tool", "--sysfs", str(lfafs_mount.root)], check=True)
        assert lfafs_mount.read("rmm", "current_version") == "1.0\\n"
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable, Iterator

import attrs
import pytest

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service import spawn
from lfafs.service.control import Client


@attrs.define
class LfaMount:
    """A running lfafs mount."""

    root: pathlib.Path  # stands for /sys/firmware: FWUPD_SYSFSFWDIR=<root>
    client: Client

    @property
    def lfa(self) -> pathlib.Path:
        return self.root / "lfa"

    def guid(self, component: str) -> str:
        """The directory name (GUID) of a component given by name or GUID."""
        for c in self.client.status()["components"]:
            if component.lower() in (c["name"], c["guid"]):
                return c["guid"]
        raise KeyError(component)

    def image(self, component: str) -> pathlib.Path:
        return self.lfa / self.guid(component)

    def read(self, component: str, attr: str) -> str:
        return (self.image(component) / attr).read_text()

    def write(self, component: str, attr: str, text: str = "1") -> None:
        with open(self.image(component) / attr, "w") as f:
            f.write(text)

    def stage(self, component: str, version: str, image: bytes | None = None) -> None:
        """Deliver an update out of band; then reading activation_pending shows it."""
        self.client.stage(component, version=version, image=image)

    def fail(self, component: str, at: str, **kw) -> None:
        """Inject a fault: status="LFA_AUTH_ERROR", call_again=N, latency=s, once=True."""
        self.client.call("fail", component=component, at=at, **kw)

    def notify(self) -> dict:
        return self.client.call("notify")

    def status(self) -> dict:
        return self.client.status()


def unavailable() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "lfafs needs /dev/fuse to mount an emulated /sys/firmware"
    if os.geteuid() != 0:
        return "lfafs mounts root-owned sysfs-style files: run the tests as root"
    return None


def _remove(tmp: str) -> None:
    """Remove the temporary mountpoint and its parent; rmdir only, never into a mount."""
    try:
        os.rmdir(os.path.join(tmp, "firmware"))
        os.rmdir(tmp)
    except OSError:
        pass


def start(profile: str = DEFAULT_PROFILE, kernel_abi: str = "v3", cpus: int | None = None) -> tuple[LfaMount, Callable[[], None]]:
    """Start a daemon on a temporary mountpoint; returns the mount and a stop function."""
    tmp = tempfile.mkdtemp(prefix="lfafs-pytest-")
    mnt = os.path.join(tmp, "firmware")
    os.mkdir(mnt)
    try:
        daemon = spawn.start(mnt, profile=profile, abi=kernel_abi, cpus=cpus)
    except spawn.SpawnError as e:
        _remove(tmp)
        raise RuntimeError(f"lfafs could not mount: {e}") from None

    def stop() -> None:
        daemon.stop()
        _remove(tmp)

    return LfaMount(root=pathlib.Path(mnt), client=Client(mount=mnt)), stop


@pytest.fixture
def lfafs_mount() -> Iterator[LfaMount]:
    """A fresh emulated platform (the default profile) mounted for this test."""
    why = unavailable()
    if why:
        pytest.skip(why)
    mount, stop = start()
    try:
        yield mount
    finally:
        stop()


@pytest.fixture
def lfafs_platform() -> Iterator[Callable[..., LfaMount]]:
    """A factory: ``lfafs_platform(profile="my.toml", kernel_abi="v2", cpus=2)``."""
    why = unavailable()
    if why:
        pytest.skip(why)
    stops: list[Callable[[], None]] = []

    def make(profile: str = DEFAULT_PROFILE, kernel_abi: str = "v3", cpus: int | None = None) -> LfaMount:
        mount, stop = start(profile, kernel_abi, cpus)
        stops.append(stop)
        return mount

    try:
        yield make
    finally:
        for stop in stops:
            stop()
