"""lfafs as an ordinary user: mount through fusermount3, `lfafs run` in an unprivileged user
namespace, and the pytest fixtures, each run as uid 65534.

As root, each test builds what a stock Debian gives an ordinary user, in a private mount
namespace of its own so the machine is untouched: a /dev/fuse of mode 0666 (Debian's udev
rule; some containers make it 0600) and a readable Python (a venv whose interpreter lives
under a 0700 home is exposed read-only). Then it drops to uid 65534 with setpriv. As an
ordinary user the tests run directly. Where that is impossible the skip says why; with
LFAFS_REQUIRE=1 (CI on a machine that can) it is a failure instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from lfafs.service import access

NOBODY = 65534
REQUIRED = os.environ.get("LFAFS_REQUIRE", "") not in ("", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def skip(reason: str):
    if REQUIRED:
        pytest.fail(f"LFAFS_REQUIRE is set, but: {reason}", pytrace=False)
    pytest.skip(reason)


def _blocked(path: str) -> str | None:
    """The highest directory above ``path`` that others may not search, or None."""
    parts = os.path.realpath(path).split("/")
    for i in range(2, len(parts)):
        d = "/".join(parts[:i])
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def _expose_script(paths: list[str], stash: str) -> str:
    """Shell lines, run inside the private namespace only: a directory among ``paths`` that is
    itself closed to others (a checkout cloned into mktemp -d's 0700 directory) gets an overlay
    whose upper layer is an open (0755) directory; for each other path under a directory others
    cannot search, a tmpfs over that directory (mode 0755) with the path bound back."""
    lines: list[str] = []
    opened = sorted(p for p in {os.path.realpath(p) for p in paths}
                    if os.path.isdir(p) and (os.stat(p).st_mode & 0o005) != 0o005)
    for n, p in enumerate(opened):
        upper, work = f"{stash}/open{n}/upper", f"{stash}/open{n}/work"
        lines.append(f"mkdir -p {upper} {work} && chmod 0755 {upper} && mount -t overlay overlay "
                     f"-o lowerdir={shlex.quote(p)},upperdir={upper},workdir={work} {shlex.quote(p)}")
    by_dir: dict[str, set[str]] = {}
    for p in paths:
        d = _blocked(p)
        if d is not None and not any(d == o or d.startswith(o + "/") for o in opened):
            by_dir.setdefault(d, set()).add(os.path.realpath(p))
    for n, (d, inner) in enumerate(sorted(by_dir.items())):
        keep = sorted(p for p in inner if not any(p != q and p.startswith(q + "/") for q in inner))
        for i, p in enumerate(keep):
            lines.append(f"mkdir -p {stash}/{n}.{i} && mount --bind {shlex.quote(p)} {stash}/{n}.{i}")
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(d)}")
        for i, p in enumerate(keep):
            lines.append(f"mkdir -p {shlex.quote(p)} && mount --bind {stash}/{n}.{i} {shlex.quote(p)}")
    return "\n".join(lines)


@pytest.fixture
def home():
    """A directory the ordinary user owns (pytest's tmp_path is root's, mode 0700)."""
    d = tempfile.mkdtemp(prefix="lfafs-unpriv-")
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        os.chown(d, NOBODY, NOBODY)
    yield d
    subprocess.run(["fusermount3", "-u", "-z", os.path.join(d, "m")], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def as_user(home):
    """Run a bash script as an ordinary user with unprivileged FUSE; skip with the reason where impossible."""
    if os.geteuid() != 0:
        why = access.fuse_problem()
        if why:
            skip(f"unprivileged FUSE is not possible here: {why}")

        def direct(script: str, timeout: float = 180) -> subprocess.CompletedProcess:
            return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, cwd=home)
        return direct
    for tool in ("setpriv", "unshare", "mknod", "fusermount3"):
        if shutil.which(tool) is None:
            skip(f"{tool} is missing: cannot run the unprivileged path as another user here")
    try:
        fuse = os.stat("/dev/fuse")
    except OSError:
        skip("/dev/fuse is missing: no FUSE at all here")
    stash = tempfile.mkdtemp(prefix="lfafs-unpriv-stash-")
    node = os.path.join(stash, "fuse")
    try:
        os.mknod(node, 0o020666, fuse.st_rdev)
        os.chmod(node, 0o666)
    except OSError as e:
        shutil.rmtree(stash, ignore_errors=True)
        skip(f"cannot make a 0666 /dev/fuse node for the ordinary user here ({e.strerror})")
    expose = _expose_script([sys.executable, sys.prefix, sys.base_prefix, ROOT], stash)
    env = f"HOME={home} XDG_RUNTIME_DIR={home}/run PATH={os.path.dirname(sys.executable)}:/usr/bin:/bin"

    def run(script: str, timeout: float = 180) -> subprocess.CompletedProcess:
        inner = textwrap.dedent(f"""\
            set -e
            mount --bind {node} /dev/fuse
            {expose}
            exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups env -i {env} bash -c {shlex.quote(
                f'mkdir -p "$XDG_RUNTIME_DIR" && cd {home} && ' + script)}
            """)
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", inner],
                              capture_output=True, text=True, timeout=timeout)

    probe = run("cat /dev/null > /dev/fuse 2>/dev/null; python3 -c 1 2>/dev/null; "
                f"{shlex.quote(sys.executable)} -c 'import lfafs' && id -u")
    if probe.returncode != 0 or probe.stdout.strip() != str(NOBODY):
        shutil.rmtree(stash, ignore_errors=True)
        skip(f"cannot set up an ordinary user with FUSE here: {probe.stderr.strip() or probe.stdout}")
    yield run
    shutil.rmtree(stash, ignore_errors=True)


LFAFS = shlex.quote(sys.executable) + " -m lfafs"


def test_an_ordinary_user_runs_an_unmodified_script_under_lfafs_run(as_user):
    why = access.userns_problem() if os.geteuid() != 0 else None
    if why:
        skip(why)
    script = (f"cd /sys/firmware/lfa/{RMM} && id -u && stat -c %U activate && cat activation_pending pending_version"
              " && echo 1 > activate && cat current_version && lfafs ctl status | grep -c 'rmm 0.9 -> 1.2'")
    r = as_user(f"{LFAFS} run --stage rmm=1.2 -- sh -c {shlex.quote(script)}")
    # root in its own user namespace, as the script expects on hardware; the files are root's there
    assert r.stdout == "0\nroot\n1\n1.2\n1.2\n1\n", r.stderr
    assert r.returncode == 0


def test_an_ordinary_user_mounts_drives_and_unmounts(as_user):
    m = f"{LFAFS} ctl --mount m"
    r = as_user(f"""mkdir m && {LFAFS} mount m >/dev/null && {m} stage rmm --version 1.1 >/dev/null
        cat m/lfa/{RMM}/activation_pending && echo 1 > m/lfa/{RMM}/activate && cat m/lfa/{RMM}/current_version
        {LFAFS} logs --kernel m | grep -c 'successfully activated'
        run_dir=$(dirname "$({LFAFS.replace(' -m lfafs', '')} -c 'from lfafs.service.control import socket_path; print(socket_path("m"))')")
        {LFAFS} umount m && grep -c ' - fuse.lfafs .*/m ' /proc/self/mountinfo; test -e "$run_dir" || echo gone""")
    assert r.stdout == "1\n1.1\n1\n0\ngone\n", r.stderr


def test_the_fixtures_work_for_an_ordinary_user(as_user, home):
    with open(os.path.join(home, "test_tool.py"), "w") as f:
        f.write(textwrap.dedent("""\
            def test_stage_and_activate(lfafs_mount):
                lfafs_mount.stage("rmm", "1.5")
                assert lfafs_mount.read("rmm", "activation_pending") == "1\\n"
                lfafs_mount.write("rmm", "activate")
                assert lfafs_mount.read("rmm", "current_version") == "1.5\\n"
            """))
    r = as_user(f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider --lfafs-require "
                f"--rootdir {home} test_tool.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
