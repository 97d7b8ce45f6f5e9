"""What refuses a start: every bad command-line or profile input is one line on stderr and a non-zero
exit, with nothing mounted and nothing written; no lfafs command ever shows a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lfafs.service import cli, daemon

LFAFS = [sys.executable, "-m", "lfafs"]


def lfafs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LFAFS, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def profiles(tmp_path):
    def write(name: str, text: str | bytes) -> str:
        p = tmp_path / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(p)
    return write


def _one_line(r: subprocess.CompletedProcess) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, r.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--cpus", "0"], "between 1 and"),
    (["--cpus", "-1"], "between 1 and"),
    (["--cpus", "100000"], "between 1 and"),
    (["--cpus", "two"], "invalid int"),
    (["--kernel-abi", "v9"], "invalid choice"),
    (["--profile", "no-such-profile"], "profile"),
])
def test_bad_mount_options_are_one_line_and_mount_nothing(mnt, args, words):
    for extra in ([], ["--foreground"]):
        r = lfafs("mount", *args, *extra, mnt)
        _one_line(r)
        assert words in r.stderr and not os.path.ismount(mnt)


@pytest.mark.parametrize(("text", "words"), [
    ("a = " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (b"\xff\xfe\x00\x01garbage", "profile"),
    ('base = "fvp"\ncpus = 0\n', "cpus"),
    ('base = "fvp"\ncpus = "four"\n', "cpus"),
    ('base = "fvp"\ndram_size = "16Q"\n', "dram_size"),
    ('base = "fvp"\ncolour = "red"\n', "colour"),
    ('base = "no-such-base"\n', "base"),
    ('base = "fvp"\n[[component]]\nname = "x"\n', "component"),
])
def test_bad_profiles_are_one_line_and_mount_nothing(mnt, profiles, text, words):
    path = profiles("bad.toml", text)
    r = lfafs("mount", "--profile", path, mnt)
    _one_line(r)
    assert words in r.stderr and path in r.stderr and not os.path.ismount(mnt)


def test_a_profile_that_is_a_directory_is_one_line(mnt, tmp_path):
    r = lfafs("mount", "--profile", str(tmp_path), mnt)
    _one_line(r)


@pytest.mark.parametrize("cpus", [65, 256, 512])
def test_cpu_counts_the_platform_supports_start(tmp_path, cpus):
    assert daemon.preflight(str(tmp_path), cpus=cpus) is None


def test_a_size_with_a_unit_is_a_valid_dram_size(tmp_path, profiles):
    assert daemon.preflight(str(tmp_path), profile=profiles("p.toml", 'base = "fvp"\ndram_size = "16G"\n')) is None


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_a_state_dir_and_mountpoint_that_contain_one_another_are_refused(mnt, where):
    state = {"same": mnt, "inside": os.path.join(mnt, "state"), "around": os.path.dirname(mnt)}[where]
    before = sorted(os.listdir(os.path.dirname(mnt)))
    r = lfafs("mount", "--state-dir", state, mnt)
    _one_line(r)
    assert "contain one another" in r.stderr and not os.path.ismount(mnt)
    assert sorted(os.listdir(os.path.dirname(mnt))) == before


def test_a_state_dir_that_is_a_file_is_refused(mnt, tmp_path):
    f = tmp_path / "state"
    f.write_text("not a directory")
    r = lfafs("mount", "--state-dir", str(f), mnt)
    _one_line(r)
    assert "not a directory" in r.stderr and f.read_text() == "not a directory"


def test_run_with_bad_cpus_is_one_line():
    r = lfafs("run", "--cpus", "0", "--", "true")
    _one_line(r)
    assert "between 1 and" in r.stderr


def test_a_bug_is_one_line_not_a_traceback(monkeypatch, capsys, tmp_path):
    def explode(args):
        raise RuntimeError("something lfafs did not expect")

    monkeypatch.setattr(cli, "_umount", explode)
    parser = cli.parser
    monkeypatch.setattr(cli, "parser", lambda: _with_func(parser(), "umount", explode))
    assert cli.main(["umount", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "something lfafs did not expect" in err


def _with_func(p, name, func):
    p._subparsers._group_actions[0].choices[name].set_defaults(func=func)
    return p
