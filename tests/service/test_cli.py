"""The command line as a package user meets it: --version, completion, the man page, lfafs ctl
without --mount, lfafs logs, nothing left under the runtime directory, make install and systemd."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import lfafs
from lfafs.service import access, logs, spawn
from lfafs.service._argtree import tree
from lfafs.service.cli import parser
from lfafs.service.commands import COMMANDS
from lfafs.service.completion import script
from lfafs.service.manpage import manpage

ROOT = pathlib.Path(__file__).resolve().parents[2]
LFAFS = [sys.executable, "-m", "lfafs"]


def lfafs_cli(*args, env=None, **kw):
    return subprocess.run([*LFAFS, *args], capture_output=True, text=True, timeout=60, env=env, **kw)


def test_version_is_the_packages():
    r = lfafs_cli("--version")
    assert r.returncode == 0 and r.stdout == f"lfafs {lfafs.__version__}\n"


def every_command() -> list[str]:
    return [" ".join(n.path) for n in tree(parser()).walk()][1:]


def test_the_man_page_lists_every_command_and_ctl_command():
    page = manpage(parser())
    for command in every_command():
        assert f".SS {command.replace('-', chr(92) + '-')}" in page or command == "lfafs ctl component", command
    for c in COMMANDS:  # the registry's commands, each under its lfafs ctl words
        assert f".SS lfafs ctl {' '.join(c.words)}".replace("-", "\\-") in page, c.name
    assert "LFAFS_SOCKET" in page


def test_the_man_page_in_docs_is_current():
    assert (ROOT / "docs" / "lfafs.1").read_text() == manpage(parser()), "regenerate it: make man"


def test_the_man_page_renders():
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    page = manpage(parser())
    r = subprocess.run(["man", "-l", "-"], input=page, capture_output=True, text=True,
                       env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"})
    assert r.returncode == 0 and "lfafs ctl fail" in r.stdout and "warning" not in r.stderr.lower(), r.stderr


def complete_bash(*words: str) -> list[str]:
    prog = (script("bash", parser())
            + '\nCOMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _lfafs; printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "-c", prog, "complete", *words], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completes_commands_ctl_commands_and_choices():
    assert set(complete_bash("lfafs", "")) >= {"mount", "run", "ctl", "logs", "capture", "completion", "man",
                                               "--version"}
    assert set(complete_bash("lfafs", "ctl", "")) >= {*(c.words[0] for c in COMMANDS), "--mount", "--socket"}
    assert complete_bash("lfafs", "ctl", "component", "") == ["add", "remove", "-h", "--help"]
    assert complete_bash("lfafs", "ctl", "fail", "rmm", "--at", "") == ["load", "prime", "notify", "activate", "boot"]
    assert complete_bash("lfafs", "run", "--stage", "rmm=1.2", "--sc") == ["--scenario"]
    assert "v2" in complete_bash("lfafs", "mount", "--kernel-abi", "")


def test_zsh_completion_is_valid_zsh():
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    r = subprocess.run(["zsh", "-n"], input=script("zsh", parser()), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert script("zsh", parser()).startswith("#compdef lfafs\n")


def test_ctl_without_mount_or_socket_says_where_to_look(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LFAFS_SOCKET"}
    r = lfafs_cli("ctl", "status", env=env)
    assert r.returncode == 1 and "give --mount MOUNTPOINT or --socket PATH" in r.stderr and "LFAFS_SOCKET" in r.stderr


def test_ctl_uses_lfafs_socket(daemon):
    from lfafs.service.control import socket_path

    r = lfafs_cli("ctl", "ping", env={**os.environ, "LFAFS_SOCKET": socket_path(daemon.mountpoint)})
    assert r.returncode == 0 and r.stdout == "pong\n"


def test_a_background_daemon_logs_to_its_runtime_directory_and_leaves_nothing(tmp_path):
    why = access.fuse_problem()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")
    mnt = tmp_path / "firmware"
    mnt.mkdir()
    runtime = logs.runtime_dir(str(mnt))
    with spawn.running(str(mnt), scenario=spawn.Sources(stage=("rmm=1.4",))):
        rmm = mnt / "lfa" / "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
        (rmm / "activation_pending").read_text()
        with open(rmm / "activate", "w") as f:
            f.write("1")
        log = lfafs_cli("logs", str(mnt)).stdout
        assert re.search(r"^\S+ lfafs: serving the fvp-den0147 platform at .* \(pid \d+\)$", log, re.M), log
        assert re.search(r"^\S+ scenario <flags>: applied 1 staged", log, re.M), log
        assert re.search(r"^\S+ kernel: \[ *\d+\.\d+\] Arm LFA: TF-RMM: successfully activated$", log, re.M), log
        kernel = lfafs_cli("logs", "--kernel", str(mnt)).stdout.splitlines()
        assert kernel[0].endswith("Arm LFA: Live Firmware Activation: detected v1.0") and kernel[0].startswith("[")
        assert os.path.isdir(runtime)
    assert not os.path.exists(runtime)  # socket and log gone with the daemon: nothing left under /run/lfafs
    r = lfafs_cli("logs", str(mnt))
    assert r.returncode == 1 and "no daemon log" in r.stderr and r.stderr.count("\n") == 1


def test_make_install_puts_a_working_lfafs_where_the_systemd_unit_runs_it(tmp_path):
    if shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "lfafs").exists():
        pytest.skip("needs make and the repository's .venv (make run or make test sets it up)")
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"PREFIX={tmp_path}"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "bin" / "lfafs"), "--version"], capture_output=True,
                          text=True).stdout == f"lfafs {lfafs.__version__}\n"
    assert (tmp_path / "share" / "man" / "man1" / "lfafs.1").read_text().startswith(".TH LFAFS 1")
    assert (tmp_path / "share" / "bash-completion" / "completions" / "lfafs").exists()
    assert (tmp_path / "share" / "zsh" / "site-functions" / "_lfafs").exists()
    # root's default PREFIX is /usr/local, on the unit's PATH: its ExecStart finds that install's lfafs
    unit = (ROOT / "systemd" / "lfafs@.service").read_text()
    exec_start = re.search(r"^ExecStart=/usr/bin/env lfafs (.*)$", unit, re.M)
    path = re.search(r"^Environment=PATH=(\S+)$", unit, re.M).group(1)
    assert "/usr/local/bin" in path.split(":")
    assert "PREFIX ?= $(if $(filter 0,$(shell id -u)),/usr/local," in (ROOT / "Makefile").read_text()
    installed = path.replace("/usr/local/bin", str(tmp_path / "bin"))
    r = subprocess.run(["env", "-i", f"PATH={installed}", "/usr/bin/env", "lfafs", "--version"],
                       capture_output=True, text=True)
    assert r.stdout == f"lfafs {lfafs.__version__}\n", r.stderr
    args = exec_start.group(1).replace("%i", "x").replace("%f", "/run/lfafs/firmware").split()
    assert parser().parse_args(args).func.__name__ == "_mount"  # the unit's arguments parse
