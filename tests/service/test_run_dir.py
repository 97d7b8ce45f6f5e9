"""Where an ordinary user's daemons keep their sockets and logs: a directory of their own, never one
another user could have made (/tmp/lfafs was every user's), checked by the daemon and the client.

Each check runs as uid 65534 in a forked child of this (root) process, with the shared /tmp
replaced by a private directory of mode 1777, so that the machine's /tmp is untouched."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from lfafs.service import cli, control, control_server
from lfafs.service.control import Client
from tests.service.nobody import NOBODY, as_nobody

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become uid 65534")


@pytest.fixture
def shared_tmp(monkeypatch):
    """A stand-in for /tmp: mode 1777 like it, this test's only."""
    d = tempfile.mkdtemp(prefix="lfafs-shared-tmp-")
    os.chmod(d, 0o1777)
    monkeypatch.setattr(control, "SHARED_TMP", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_without_xdg_runtime_dir_an_ordinary_user_gets_tmp_lfafs_uid(monkeypatch):
    assert as_nobody(control.run_dir) == {"value": f"/tmp/lfafs-{NOBODY}", "stderr": ""}
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert control.run_dir() == "/run/lfafs"  # root's, whatever the environment says


def test_with_xdg_runtime_dir_it_is_lfafs_there():
    def with_xdg() -> str:
        os.environ["XDG_RUNTIME_DIR"] = "/run/user/65534"
        return control.run_dir()

    assert as_nobody(with_xdg)["value"] == "/run/user/65534/lfafs"


def test_it_is_made_0700_and_the_users_own(shared_tmp):
    made = as_nobody(control.ensure_run_dir)["value"]
    st = os.lstat(made)
    assert made == os.path.join(shared_tmp, f"lfafs-{NOBODY}")
    assert st.st_uid == NOBODY and stat.S_IMODE(st.st_mode) == 0o700


def test_a_socket_directory_goes_into_a_checked_run_directory(shared_tmp):
    def prepare() -> str:
        path = control.socket_path("/m")
        control_server.prepare_socket_dir(path)
        return path

    path = as_nobody(prepare)["value"]
    for d in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        st = os.lstat(d)
        assert st.st_uid == NOBODY and stat.S_IMODE(st.st_mode) == 0o700, d


def _planted(shared_tmp: str, *, uid: int, mode: int) -> str:
    d = os.path.join(shared_tmp, f"lfafs-{NOBODY}")
    os.mkdir(d)
    os.chown(d, uid, uid)
    os.chmod(d, mode)
    return d


def test_one_another_user_made_first_is_refused(shared_tmp):
    d = _planted(shared_tmp, uid=0, mode=0o755)
    err = as_nobody(control.ensure_run_dir)["error"]
    assert err[0] == "unsafe-run-dir"
    assert err[1].startswith(f"{d} belongs to uid 0, not to you (uid {NOBODY})") and "remove it" in err[1]


def test_one_writable_by_others_is_refused(shared_tmp):
    d = _planted(shared_tmp, uid=NOBODY, mode=0o777)
    assert as_nobody(control.ensure_run_dir)["error"] == [
        "unsafe-run-dir", f"{d} is writable by others (mode 0777): remove it (or set XDG_RUNTIME_DIR to a "
                          "directory of your own) and try again"]


def test_a_link_in_its_place_is_refused(shared_tmp):
    own = tempfile.mkdtemp(prefix="lfafs-elsewhere-")  # a directory that would pass, reached through a link
    try:
        os.chown(own, NOBODY, NOBODY)
        os.symlink(own, os.path.join(shared_tmp, f"lfafs-{NOBODY}"))
        err = as_nobody(control.ensure_run_dir)["error"]
        assert err[0] == "unsafe-run-dir" and "is not a directory (a link, or a file)" in err[1]
    finally:
        shutil.rmtree(own, ignore_errors=True)


def test_the_client_will_not_talk_to_a_socket_in_someone_elses_directory(shared_tmp):
    _planted(shared_tmp, uid=0, mode=0o755)
    assert as_nobody(lambda: Client(mount="/m", timeout=5).call("ping"))["error"][0] == "unsafe-run-dir"


def test_lfafs_ctl_and_mount_say_it_in_one_line(shared_tmp):
    d = _planted(shared_tmp, uid=0, mode=0o755)
    mnt = os.path.join(shared_tmp, "mnt")  # checked before the run dir: a usable mountpoint
    os.mkdir(mnt, 0o777)
    os.chmod(mnt, 0o777)
    for argv in (["ctl", "--mount", "/m", "ping"], ["mount", "/m"], ["mount", "--foreground", mnt]):
        out = as_nobody(lambda argv=argv: cli.main(argv))
        assert out["value"] == 1, out
        assert out["stderr"].startswith(f"lfafs {argv[0]}") and f"{d} belongs to uid 0" in out["stderr"]
        assert out["stderr"].count("\n") == 1 and "internal error" not in out["stderr"]
