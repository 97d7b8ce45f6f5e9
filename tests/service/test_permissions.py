"""Permissions as /sys/firmware gives them to each user, for every operation, through a plain mount,
--passthrough and ``lfafs run``: an unprivileged user (nobody, 65534) reads what sysfs lets it read,
and nothing else; ``access()`` answers as sysfs does; ``allow_other`` only when asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from lfafs.driver import ATTRIBUTES
from lfafs.service import spawn

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
LFAFS = [sys.executable, "-m", "lfafs"]

# What one user meets, operation by operation: errno names, or "ok" / True / False. With --look
# only access() and an open for reading: never anything that could change a host file.
PROBE = r"""
import errno, json, os, sys
def res(fn):
    try:
        out = fn()
        return "ok" if out is None or isinstance(out, int) and not isinstance(out, bool) else out
    except OSError as e:
        return errno.errorcode[e.errno]
def open_close(path, flags):
    fd = os.open(path, flags)
    os.close(fd)
def listx(path):
    return sorted(os.listxattr(path))
out = {}
look = sys.argv[1] == "--look"
for path in sys.argv[2:]:
    out[path] = {
        "access_r": os.access(path, os.R_OK), "access_w": os.access(path, os.W_OK),
        "read": res(lambda: open_close(path, os.O_RDONLY)),
    }
    if look:
        continue
    out[path] |= {
        "write": res(lambda: open_close(path, os.O_WRONLY)),
        "truncate": res(lambda: open_close(path, os.O_WRONLY | os.O_TRUNC)),
        "chmod": res(lambda: os.chmod(path, 0o666)),
        "chown": res(lambda: os.chown(path, os.getuid(), -1)),
        "touch": res(lambda: os.utime(path)),
        "utime": res(lambda: os.utime(path, (1, 1))),
        "set_security": res(lambda: os.setxattr(path, "security.lfafs", b"1")),
        "set_trusted": res(lambda: os.setxattr(path, "trusted.lfafs", b"1")),
        "set_user": res(lambda: os.setxattr(path, "user.lfafs", b"1")),
        "listxattr": res(lambda: listx(path)),
    }
print(json.dumps(out))
"""


def probe(paths: list[str], *, as_nobody: bool, look: bool = False) -> dict:
    """Run PROBE as nobody or root. Anything that is not an lfafs mount is only looked at."""
    assert look or all(p.startswith("/tmp/lfafs-perm-") for p in paths), "never change a host file"
    cmd = [*(NOBODY if as_nobody else []), sys.executable, "-c", PROBE, "--look" if look else "--all", *paths]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def expected_for_nobody(mode: int) -> dict:
    """What the kernel gives an unprivileged user on a root:root sysfs file of ``mode`` (none is
    writable by others): generic_permission(), setattr_prepare(), xattr_permission(),
    cap_inode_setxattr(), and simple_xattr_list() hiding trusted.* names."""
    readable = bool(mode & 0o004)
    return {
        "access_r": readable, "access_w": False,
        "read": "ok" if readable else "EACCES", "write": "EACCES", "truncate": "EACCES",
        "chmod": "EPERM", "chown": "EPERM", "touch": "EACCES", "utime": "EPERM",
        "set_security": "EPERM", "set_trusted": "EPERM", "set_user": "EACCES",
        "listxattr": [],
    }


@pytest.fixture(autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody")


@pytest.fixture
def mnt(mnt):
    """A mountpoint nobody can reach (pytest's own temporary directory is root's only)."""
    top = tempfile.mkdtemp(prefix="lfafs-perm-", dir="/tmp")
    os.chmod(top, 0o755)
    path = os.path.join(top, "firmware")
    os.mkdir(path)
    yield path
    if os.path.ismount(path):
        subprocess.run(["fusermount3", "-u", "-z", path], check=False)
    shutil.rmtree(top, ignore_errors=True)


def _trusted(path: str) -> None:
    os.setxattr(path, "trusted.lfafs", b"root only")  # root's; nobody must not even see its name


def test_an_unprivileged_user_gets_what_sysfs_gives_it_on_every_attribute(mnt):
    with spawn.running(mnt, allow_other=True):
        image = os.path.join(mnt, "lfa", RMM)
        paths = [os.path.join(image, a) for a in sorted(os.listdir(image))]
        for p in paths:
            _trusted(p)
        got = probe([*paths, image, os.path.join(mnt, "lfa")], as_nobody=True)
        for p in paths:
            mode = ATTRIBUTES[os.path.basename(p)]
            assert got[p] == expected_for_nobody(mode), (p, got[p])
        for d in (image, os.path.join(mnt, "lfa")):
            assert got[d]["access_w"] is False and got[d]["chmod"] == "EPERM" and got[d]["listxattr"] == []
        # and the same user cannot activate anything: the write fails before any SMC
        r = subprocess.run([*NOBODY, "sh", "-c", f"echo 1 > {image}/activate"], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        # root still sees its own xattr and may write activate (it is kernfs, not the VFS, that stops reads)
        assert "trusted.lfafs" in os.listxattr(os.path.join(image, "name"))
        assert os.access(os.path.join(image, "activate"), os.W_OK)


def test_without_allow_other_only_the_mounting_user_may_enter(mnt):
    with spawn.running(mnt):
        r = subprocess.run([*NOBODY, "ls", os.path.join(mnt, "lfa")], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        r = subprocess.run([*NOBODY, "cat", os.path.join(mnt, "lfa", RMM, "name")], capture_output=True, text=True)
        assert r.returncode != 0
        assert "allow_other" not in _mount_options(mnt)
        assert "TF-RMM" in open(os.path.join(mnt, "lfa", RMM, "name")).read()


def _mount_options(mnt: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == os.path.realpath(mnt):
                return fields[-1]
    return ""


def _host_entries() -> list[str]:
    """The host's /sys/firmware files, root-only ones first (e.g. acpi/tables/DSDT, mode 0400)."""
    out = []
    for root, _dirs, names in os.walk("/sys/firmware"):
        for n in names:
            p = os.path.join(root, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append(os.path.relpath(p, "/sys/firmware"))
    out.sort(key=lambda rel: (os.stat(os.path.join("/sys/firmware", rel)).st_mode & 0o004, rel))
    return out[:40]


def test_passthrough_gives_each_user_what_the_host_sysfs_gives_it(mnt):
    rels = _host_entries()
    if not rels or all(os.stat(os.path.join("/sys/firmware", r)).st_mode & 0o004 for r in rels):
        pytest.skip("the host's /sys/firmware has no root-only file to compare")
    with spawn.running(mnt, passthrough=True, allow_other=True):
        ours = [os.path.join(mnt, r) for r in rels]
        hosts = [os.path.join("/sys/firmware", r) for r in rels]
        for user in (True, False):  # nobody, then root: reads and access() as on the host
            got_host = probe(hosts, as_nobody=user, look=True)
            got_ours = probe(ours, as_nobody=user, look=True)
            for rel, h, o in zip(rels, hosts, ours, strict=True):
                keys = ("access_r", "read") if not user else ("access_r", "access_w", "read")
                assert {k: got_ours[o][k] for k in keys} == {k: got_host[h][k] for k in keys}, (rel, user)
        # writes: nobody is refused by the modes, as on the host; root by lfafs (pass-through is read-only)
        for o in ours:
            assert probe([o], as_nobody=True)[o]["write"] == "EACCES"
        dsdt = os.path.join(mnt, "acpi", "tables", "DSDT")
        if os.path.exists("/sys/firmware/acpi/tables/DSDT"):
            r = subprocess.run([*NOBODY, "cat", dsdt], capture_output=True)
            assert r.returncode != 0 and b"Permission denied" in r.stderr
            with open(dsdt, "rb") as f, open("/sys/firmware/acpi/tables/DSDT", "rb") as g:
                assert f.read() == g.read()  # root reads it, as on the host


def test_lfafs_run_gives_an_unprivileged_command_what_sysfs_gives_it():
    script = (f"cat /sys/firmware/lfa/{RMM}/name && "
              f"! test -w /sys/firmware/lfa/{RMM}/activate && "
              f"! (echo 1 > /sys/firmware/lfa/{RMM}/activate) 2>/dev/null && "
              "if [ -e /sys/firmware/acpi/tables/DSDT ]; then ! cat /sys/firmware/acpi/tables/DSDT >/dev/null 2>&1; fi"
              " && echo ALL-AS-SYSFS")
    r = subprocess.run([*LFAFS, "run", "--", *NOBODY, "sh", "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "TF-RMM" in r.stdout and "ALL-AS-SYSFS" in r.stdout, r.stderr


def test_the_mount_enforces_modes_itself(mnt):
    with spawn.running(mnt):
        assert "default_permissions" in _mount_options(mnt)
