"""Attribute fuzz: random opens (odd flags included), reads, writes and namespace operations on every
attribute of a real mount, each judged against what sysfs answers (docs/sysfs-abi.md, "File semantics":
kernfs and the VFS above it). The judge is written from the kernel's rules, not from lfafs's code.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from lfafs.driver import ATTRIBUTES
from lfafs.service.control import Client
from tests.reliability.conftest import pick

OPEN_FLAGS = [os.O_APPEND, os.O_NONBLOCK, os.O_SYNC, os.O_DSYNC, os.O_NOATIME, os.O_NOFOLLOW, os.O_CLOEXEC,
              os.O_TRUNC, os.O_CREAT, os.O_EXCL, os.O_DIRECTORY, os.O_DIRECT, os.O_PATH, 0o20000, 0o100000]
VALUE = {
    "name": re.compile(r".*\n", re.S), "activation_capable": re.compile(r"[01]\n"),
    "activation_pending": re.compile(r"[01]\n"), "may_reset_cpu": re.compile(r"[01]\n"),
    "cpu_rendezvous": re.compile(r"[01]\n"), "current_version": re.compile(r"\d+\.\d+\n"),
    "pending_version": re.compile(r"(\d+\.\d+|N/A)\n"), "force_cpu_rendezvous": re.compile(r"[01]\n"),
    "auto_activate": re.compile(r"[01]\n"),
}


def kstrtobool(data: bytes) -> bool | None:
    """lib/kstrtox.c, kstrtobool(): the first one or two characters; None for -EINVAL."""
    if not data:
        return None
    c = chr(data[0])
    if c in "yYtT1eE":
        return True
    if c in "nNfF0dD":
        return False
    if c in "oO" and len(data) > 1:
        return {"n": True, "N": True, "f": False, "F": False}.get(chr(data[1]))
    return None


def outcome(fn):
    try:
        value = fn()
    except OSError as e:
        return "EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode.get(e.errno, str(e.errno))
    return ("ok", value)


class Model:
    """What sysfs would answer root, for the files of one image directory and the directories above."""

    def __init__(self, mnt: str, guids: list[str]) -> None:
        self.mnt = mnt
        self.guids = guids
        self.mode = {(g, a): m for g in guids for a, m in ATTRIBUTES.items()}
        self.xattrs: dict[tuple, set] = {}
        self.value = {}

    def path(self, guid: str, attr: str | None = None) -> str:
        p = os.path.join(self.mnt, "lfa", guid)
        return p if attr is None else os.path.join(p, attr)

    # -- open --------------------------------------------------------------------------------------

    def open_expect(self, kind: str, key, flags: int) -> str:
        """open(2) as root on a sysfs ``kind`` ("file", "dir", "missing"): fs/open.c build_open_flags(),
        fs/namei.c do_open() and lookup_open(), do_dentry_open(), kernfs_fop_open()."""
        acc = flags & os.O_ACCMODE
        if flags & os.O_PATH:  # build_open_how(): O_PATH drops every flag but a few; nothing is opened
            if kind == "missing":
                return "ENOENT"
            return "ENOTDIR" if flags & os.O_DIRECTORY and kind == "file" else "ok"
        if flags & os.O_CREAT and flags & os.O_DIRECTORY:
            return "EINVAL"  # build_open_flags(), since Linux 6.4
        if kind == "missing":
            return "EACCES" if flags & os.O_CREAT else "ENOENT"  # kernfs has no ->create
        if flags & os.O_CREAT and flags & os.O_EXCL:
            return "EEXIST"
        if kind == "dir":
            if flags & os.O_CREAT or acc != os.O_RDONLY or flags & os.O_TRUNC:
                return "EISDIR"
            return "EINVAL" if flags & os.O_DIRECT else "ok"
        if flags & os.O_DIRECTORY:
            return "ENOTDIR"
        mode, base = self.mode[key], ATTRIBUTES[key[1]]
        reading = acc in (os.O_RDONLY, os.O_RDWR)
        writing = acc in (os.O_WRONLY, os.O_RDWR)
        if (writing and not (mode & 0o222 and base & 0o222)) or (reading and not (mode & 0o444 and base & 0o444)):
            return "EACCES"  # kernfs_fop_open()
        if flags & os.O_DIRECT:
            return "EINVAL"  # do_dentry_open(): no FMODE_CAN_ODIRECT
        return "ok"


def _random_flags(rng) -> int:
    flags = rng.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDONLY, os.O_WRONLY])
    for f in OPEN_FLAGS:
        if rng.random() < 0.12:
            flags |= f
    return flags


def _random_data(rng) -> bytes:
    kind = rng.random()
    if kind < 0.4:
        return rng.choice([b"1", b"0", b"y", b"N", b"on", b"off", b"oN", b"Of", b"o", b" 1", b"2", b"-1", b"x",
                           b"1\n", b"true", b"e", b"D", b"\x00", b"\n", b"yes please"])
    if kind < 0.8:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    return rng.choice([b"1", b"0", b"x"]) + bytes(rng.randrange(256) for _ in range(rng.randrange(4000, 9000)))


def test_attribute_fuzz(daemon, rng, seed, figures):
    mnt = daemon.mountpoint
    client = Client(mount=mnt)
    for name, version in (("rmm", "9.1"), ("sp1", "4.2"), ("bl33", "7.7")):
        client.stage(name, version=version)
    guids = sorted(os.listdir(os.path.join(mnt, "lfa")))
    model = Model(mnt, guids)
    ops = pick(4000, 400)
    wrong: list[str] = []
    counts: dict[str, int] = {}

    def check(what: str, got, want) -> None:
        if got != want:
            wrong.append(f"{what}: got {got!r}, sysfs answers {want!r}")

    def one(step: int) -> None:  # a function, so that each lambda binds this step's names
        guid = rng.choice(guids)
        attr = rng.choice(list(ATTRIBUTES))
        key = (guid, attr)
        path = model.path(guid, attr)
        op = rng.choice(["open", "open", "read", "read", "write", "stat", "namespace", "setattr", "xattr",
                         "listdir", "missing"])
        counts[op] = counts.get(op, 0) + 1
        where = f"step {step} {op} {guid[:8]}/{attr}"
        if op == "open":
            flags = _random_flags(rng)
            got = outcome(lambda: os.close(os.open(path, flags)))
            check(f"{where} flags {flags:#o}", got if isinstance(got, str) else "ok",
                  model.open_expect("file", key, flags))
        elif op == "missing":
            flags = _random_flags(rng)
            name = rng.choice(["nope", "Name", "activate2", "x" * 300, "y" * 1024, "z" * 2000, ".hidden"])
            got = outcome(lambda: os.close(os.open(model.path(guid, name), flags)))
            want = model.open_expect("missing", None, flags)  # kernfs has no name length limit
            check(f"{where} {name[:10]} flags {flags:#o}", got if isinstance(got, str) else "ok", want)
        elif op == "read":
            want = model.open_expect("file", key, os.O_RDONLY)
            got = outcome(lambda: _read(path))
            if want != "ok":
                check(where, got, want)
            elif not (isinstance(got, tuple) and VALUE[attr].fullmatch(got[1].decode(errors="replace"))):
                wrong.append(f"{where}: read {got!r}, not a value sysfs shows for {attr}")
            elif key in model.value and got[1] != model.value[key]:
                wrong.append(f"{where}: read {got!r} after writing {model.value[key]!r}")
        elif op == "write":
            data = _random_data(rng)
            want_open = model.open_expect("file", key, os.O_WRONLY)
            got = outcome(lambda: _write(path, data))
            if want_open != "ok":
                check(where, got, want_open)
            elif attr in ("force_cpu_rendezvous", "auto_activate"):
                parsed = kstrtobool(data[:4096])
                check(f"{where} {data[:12]!r}", got, ("ok", min(len(data), 4096)) if parsed is not None else "EINVAL")
                if parsed is not None:
                    model.value[key] = b"1\n" if parsed else b"0\n"
            elif attr == "activate":
                if got not in (("ok", min(len(data), 4096)), "ECANCELED"):
                    wrong.append(f"{where}: activate answered {got!r}")
            elif attr == "cancel":
                if got not in (("ok", min(len(data), 4096)), "EINVAL"):
                    wrong.append(f"{where}: cancel answered {got!r}")
        elif op == "stat":
            got = outcome(lambda: os.stat(path))
            if isinstance(got, tuple):
                st = got[1]
                check(where, (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_uid, st.st_nlink),
                      (stat.S_IFREG, model.mode[key], 4096, 0, 1))
            else:
                wrong.append(f"{where}: stat {got}")
        elif op == "namespace":
            new = model.path(guid, "new-" + str(rng.randrange(10)))
            image = model.path(guid)
            action, fn, want = rng.choice([
                ("mkdir", lambda: os.mkdir(new), "EPERM"),
                ("mkdir existing", lambda: os.mkdir(path), "EEXIST"),
                ("rmdir file", lambda: os.rmdir(path), "ENOTDIR"),
                ("rmdir image", lambda: os.rmdir(image), "EPERM"),
                ("unlink", lambda: os.unlink(path), "EPERM"),
                ("unlink dir", lambda: os.unlink(image), "EISDIR"),
                ("rename", lambda: os.rename(path, new), "EPERM"),
                ("rename over", lambda: os.rename(path, model.path(guid, "name")), "ok" if attr == "name" else "EPERM"),
                ("symlink", lambda: os.symlink("name", new), "EPERM"),
                ("link", lambda: os.link(path, new), "EPERM"),
                ("mknod file", lambda: os.mknod(new, stat.S_IFREG | 0o644), "EACCES"),
                ("mknod fifo", lambda: os.mknod(new, stat.S_IFIFO | 0o644), "EPERM"),
                ("truncate", lambda: os.truncate(path, rng.randrange(10_000)), "ok"),
            ])
            got = outcome(fn)
            check(f"{where} {action}", got if isinstance(got, str) else "ok", want)
        elif op == "setattr":
            mode = rng.choice([0o644, 0o444, 0o200, 0o000, 0o600, 0o777, ATTRIBUTES[attr]])
            check(f"{where} chmod {mode:o}", outcome(lambda: os.chmod(path, mode)), ("ok", None))
            model.mode[key] = mode
            check(f"{where} chown", outcome(lambda: os.chown(path, 0, 0)), ("ok", None))
            check(f"{where} touch", outcome(lambda: os.utime(path)), ("ok", None))
        elif op == "xattr":
            prefix = rng.choice(["trusted.", "security.", "user.", "system.", "other."])
            name = prefix + rng.choice(["a", "lfafs", "x" * 40])
            got = outcome(lambda: os.setxattr(path, name, b"v"))
            want = ("ok", None) if prefix in ("trusted.", "security.") else "EOPNOTSUPP"
            check(f"{where} set {name}", got, want)
            if got == ("ok", None):
                model.xattrs.setdefault(key, set()).add(name)
            check(f"{where} list", outcome(lambda: sorted(os.listxattr(path))), ("ok", sorted(model.xattrs.get(key, ()))))
            got = outcome(lambda: os.getxattr(path, "trusted.unset"))
            check(f"{where} get unset", got, "ENODATA")
        elif op == "listdir":
            got = outcome(lambda: os.listdir(model.path(guid)))
            check(where, sorted(got[1]) if isinstance(got, tuple) else got, sorted(ATTRIBUTES))

    for step in range(ops):
        one(step)
    for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDONLY | os.O_CREAT, os.O_DIRECTORY, os.O_RDONLY | os.O_DIRECT):
        for d in (os.path.join(mnt, "lfa"), model.path(guids[0])):
            got = outcome(lambda: os.close(os.open(d, flags)))  # noqa: B023 (called at once)
            check(f"directory {d[-12:]} flags {flags:#o}", got if isinstance(got, str) else "ok",
                  model.open_expect("dir", None, flags))
    figures.update(seed=seed, operations=ops, mismatches=len(wrong), **{f"ops_{k}": v for k, v in sorted(counts.items())})
    assert not wrong, f"{len(wrong)} answers differ from sysfs (seed {seed}):\n" + "\n".join(wrong[:25])


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)
