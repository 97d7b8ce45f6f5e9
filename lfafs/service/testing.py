"""pytest fixtures for other projects' tests (registered as the ``lfafs`` pytest11 plugin).

Users import them as ``lfafs.testing``, which re-exports this module's names
(docs/testing-your-tool.md).

- ``lfafs_mount``: a fresh emulated platform (the default profile, or the
  scenario of ``@pytest.mark.lfafs_scenario(path)``) mounted for one test;
- ``lfafs_mount_module`` / ``lfafs_mount_session``: one platform shared by
  a module's or the whole session's tests (state carries over);
- ``lfafs_platform``: a factory, ``lfafs_platform(profile=..., kernel_abi=...,
  cpus=..., scenario=..., stage=[...], fail=[...])``.

Each gives an ``LfaMount``: paths, attribute reads and writes, the control
helpers (stage, unstage, fail, clear_faults, notify, cpu, dmesg, trace,
status) and ``run(cmd)``, which runs a command with the mount as its
/sys/firmware (as ``lfafs run`` does). They work as root and, where
unprivileged FUSE is possible, as an ordinary user; elsewhere they skip,
saying why, or fail with ``--lfafs-require`` (or LFAFS_REQUIRE=1), so a CI
job that must run them cannot pass by skipping.

    def test_my_tool_activates_the_rmm(lfafs_mount):
        lfafs_mount.stage("rmm", "1.0")
        subprocess.run(["my-tool", "--sysfs", str(lfafs_mount.root)], check=True)
        assert lfafs_mount.read("rmm", "current_version") == "1.0\\n"
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence

import attrs
import pytest

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service import access, spawn
from lfafs.service.control import Client
from lfafs.service.scenario import Sources

MARKER = "lfafs_scenario"


@attrs.define
class LfaMount:
    """A running lfafs mount."""

    root: pathlib.Path  # stands for /sys/firmware: FWUPD_SYSFSFWDIR=<root>
    client: Client

    @property
    def lfa(self) -> pathlib.Path:
        return self.root / "lfa"

    @property
    def socket(self) -> str:
        """The control socket: what $LFAFS_SOCKET names inside ``lfafs run``."""
        return self.client.path

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

    # -- the control commands ----------------------------------------------------------------

    def stage(self, component: str, version: str, image: bytes | None = None) -> None:
        """Deliver an update out of band; then reading activation_pending shows it."""
        self.client.stage(component, version=version, image=image)

    def unstage(self, component: str) -> None:
        self.client.call("unstage", component=component)

    def fail(self, component: str, at: str, **kw) -> None:
        """Inject a fault: status="LFA_AUTH_ERROR", call_again=N, latency=s, once=True, beyond_tf_a=True."""
        self.client.call("fail", component=component, at=at, **kw)

    def clear_faults(self, component: str | None = None, at: str | None = None) -> None:
        args = {k: v for k, v in (("component", component), ("at", at)) if v is not None}
        self.client.call("clear-faults", **args)

    def notify(self) -> dict:
        """The platform's "new image" notification (auto_activate); the activations it caused."""
        return self.client.call("notify")

    def cpu(self, cpu: int, on: bool) -> None:
        self.client.call("cpu", cpu=cpu, on=on)

    def dmesg(self) -> list[str]:
        """The modelled kernel log, as dmesg prints it."""
        return self.client.call("dmesg")

    def trace(self, limit: int = 100) -> list[dict]:
        """The last SMCs: {seq, cpu, name, args, result, ...}."""
        return self.client.call("trace", limit=limit)

    def status(self) -> dict:
        return self.client.status()

    def run(self, command: Sequence[str] | str, **kw) -> subprocess.CompletedProcess:
        """``command`` with this mount as its /sys/firmware, in a private mount namespace.

        A string runs with ``sh -c``. Output is captured as text unless told
        otherwise (keywords go to subprocess.run); $LFAFS_SOCKET names this
        mount's control socket inside.
        """
        from lfafs.service.runner import environment, namespace_command

        why = access.userns_problem()
        if why:
            pytest.skip(f"LfaMount.run needs a private mount namespace: {why}")
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("env", environment(str(self.root)))
        return subprocess.run(namespace_command(str(self.root), argv), **kw)


def unavailable() -> str | None:
    """Why no mount can be made here (one sentence), or None."""
    return access.fuse_problem()


def _remove(tmp: str) -> None:
    """Remove the temporary mountpoint and its parent; rmdir only, never into a mount."""
    try:
        os.rmdir(os.path.join(tmp, "firmware"))
        os.rmdir(tmp)
    except OSError:
        pass


def start(profile: str | None = None, kernel_abi: str = "v3", cpus: int | None = None, *,
          scenario: str | os.PathLike | None = None, stage: Sequence[str] = (),
          fail: Sequence[str] = ()) -> tuple[LfaMount, Callable[[], None]]:
    """Start a daemon on a temporary mountpoint; returns the mount and a stop function.

    ``stage`` and ``fail`` take the ``lfafs run`` flag forms ("rmm=1.2",
    "rmm:load:LFA_AUTH_ERROR:once"). RuntimeError, with the daemon's sentence, when it cannot start.
    """
    tmp = tempfile.mkdtemp(prefix="lfafs-pytest-")
    mnt = os.path.join(tmp, "firmware")
    os.mkdir(mnt)
    sources = Sources(os.fspath(scenario) if scenario is not None else None, tuple(stage), tuple(fail))
    try:
        daemon = spawn.start(mnt, profile=profile if profile is not None or sources else DEFAULT_PROFILE,
                             abi=kernel_abi, cpus=cpus, scenario=sources)
    except spawn.SpawnError as e:
        _remove(tmp)
        raise RuntimeError(f"lfafs could not mount: {e}") from None

    def stop() -> None:
        daemon.stop()
        _remove(tmp)

    return LfaMount(root=pathlib.Path(mnt), client=Client(mount=mnt)), stop


# -- the plugin ------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lfafs")
    group.addoption("--lfafs-require", action="store_true", default=None,
                    help="fail lfafs fixtures that cannot mount instead of skipping them (also LFAFS_REQUIRE=1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(path): serve this scenario file (relative to the test file) "
                                       "in lfafs_mount / lfafs_mount_module")


def _required(config: pytest.Config) -> bool:
    return bool(config.getoption("lfafs_require", None)) or os.environ.get("LFAFS_REQUIRE", "") not in ("", "0")


def _check_available(config: pytest.Config) -> None:
    why = unavailable()
    if why is None:
        return
    if _required(config):
        pytest.fail(f"lfafs cannot mount here and --lfafs-require is set: {why}", pytrace=False)
    pytest.skip(f"lfafs cannot mount here: {why}")


def _scenario(node) -> str | None:
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one path, got {marker.args!r}")
    path = pathlib.Path(marker.args[0])
    return str(path if path.is_absolute() else pathlib.Path(str(node.path)).parent / path)


def _mounted(config: pytest.Config, **options) -> Iterator[LfaMount]:
    _check_available(config)
    try:
        mount, stop = start(**options)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield mount
    finally:
        stop()


@pytest.fixture
def lfafs_mount(request: pytest.FixtureRequest) -> Iterator[LfaMount]:
    """A fresh emulated platform mounted for this test (``@pytest.mark.lfafs_scenario(path)`` chooses a scenario)."""
    yield from _mounted(request.config, scenario=_scenario(request.node))


@pytest.fixture(scope="module")
def lfafs_mount_module(request: pytest.FixtureRequest) -> Iterator[LfaMount]:
    """One emulated platform for every test of a module (a module-level ``pytestmark`` may name a scenario)."""
    yield from _mounted(request.config, scenario=_scenario(request.node))


@pytest.fixture(scope="session")
def lfafs_mount_session(request: pytest.FixtureRequest) -> Iterator[LfaMount]:
    """One emulated platform (the default profile) for the whole test session."""
    yield from _mounted(request.config)


@pytest.fixture
def lfafs_platform(request: pytest.FixtureRequest) -> Iterator[Callable[..., LfaMount]]:
    """A factory: ``lfafs_platform(profile="my.toml", kernel_abi="v2", cpus=2, scenario="s.toml",
    stage=["rmm=1.2"], fail=["rmm:load:LFA_AUTH_ERROR"])``."""
    _check_available(request.config)
    stops: list[Callable[[], None]] = []

    def make(profile: str | None = None, kernel_abi: str = "v3", cpus: int | None = None, *,
             scenario: str | os.PathLike | None = None, stage: Sequence[str] = (),
             fail: Sequence[str] = ()) -> LfaMount:
        mount, stop = start(profile, kernel_abi, cpus, scenario=scenario, stage=stage, fail=fail)
        stops.append(stop)
        return mount

    try:
        yield make
    finally:
        for stop in stops:
            stop()
