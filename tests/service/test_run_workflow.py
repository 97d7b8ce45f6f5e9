"""The tool author's workflow with `lfafs run`: an unmodified script that hard-codes
/sys/firmware/lfa, given something to activate (flags or a scenario), driving the
platform from inside, and nothing left behind however `run` ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lfafs.service import access
from tests.service.daemons import daemon_pids

LFAFS = [sys.executable, "-m", "lfafs"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"

# What a fleet agent's update script does on hardware: it knows only /sys/firmware/lfa.
UPDATE_SCRIPT = """\
#!/bin/sh
# find the RMM by name, check an update is pending, activate it, report
for d in /sys/firmware/lfa/*/; do
    [ "$(cat "$d/name")" = TF-RMM ] && rmm=$d
done
[ -n "$rmm" ] || { echo "no RMM" >&2; exit 2; }
echo "pending $(cat "$rmm/activation_pending") $(cat "$rmm/current_version") -> $(cat "$rmm/pending_version")"
echo 1 > "$rmm/activate" || { echo "activation failed" >&2; exit 3; }
echo "now $(cat "$rmm/current_version") pending $(cat "$rmm/activation_pending")"
"""


@pytest.fixture(autouse=True)
def needs_fuse():
    why = access.fuse_problem()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "update-firmware.sh"
    path.write_text(UPDATE_SCRIPT)
    path.chmod(0o755)
    return str(path)


def run(*args, tmp=None, timeout=120):
    """lfafs run; with ``tmp``, its temporary mountpoint is made there (TMPDIR), to be checked afterwards."""
    env = {**os.environ, "TMPDIR": str(tmp)} if tmp is not None else None
    return subprocess.run([*LFAFS, "run", *args], capture_output=True, text=True, timeout=timeout, env=env)


def lfafs_mounts(under) -> list[str]:
    """lfafs mounts under a directory (other tests may run lfafs elsewhere at the same time)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if " - fuse.lfafs " in line and f" {under}/" in line]


def left_in(tmp) -> list[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("lfafs-run-"))


def test_an_unmodified_script_activates_the_rmm_staged_with_a_flag(script, tmp_path):
    r = run("--stage", "rmm=1.2", "--", script, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pending 1 0.9 -> 1.2\nnow 1.2 pending 0\n"
    assert lfafs_mounts(tmp_path) == [] and left_in(tmp_path) == []


def test_a_scenario_fault_gives_the_script_the_drivers_error(script, tmp_path):
    scenario = tmp_path / "auth-fails.toml"
    scenario.write_text(textwrap.dedent("""\
        [[stage]]
        component = "rmm"
        version = "1.2"

        [[fault]]
        component = "rmm"
        at = "load"
        status = "LFA_AUTH_ERROR"
        once = true
        """))
    r = run("--scenario", str(scenario), "--", "sh", "-c", f"bash {script}; echo status $?; lfafs ctl dmesg")
    assert r.returncode == 0, r.stderr
    assert "pending 1 0.9 -> 1.2\nstatus 3\n" in r.stdout
    assert "write error: Operation canceled" in r.stderr  # ECANCELED, as lfa_fw.c answers
    assert "LFA_PRIME for image TF-RMM failed: LFA_AUTH_ERROR" in r.stdout


def test_a_fault_on_the_third_prime_spares_the_first_two(tmp_path):
    scenario = tmp_path / "third-prime.toml"
    scenario.write_text(textwrap.dedent("""\
        [[event]]
        before_prime = 3
        action = "fail"
        component = "rmm"
        at = "prime"
        status = "LFA_BUSY"
        once = true
        """))
    one = (f"lfafs ctl stage rmm --version 1.$i >/dev/null; cat {RMM}/activation_pending >/dev/null; "
           f"echo 1 > {RMM}/activate 2>/dev/null; echo \"$i $?\"")
    r = run("--scenario", str(scenario), "--", "sh", "-c",
            f"cd /sys/firmware/lfa; for i in 1 2 3 4; do {one}; done")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["1 0", "2 0", "3 1", "4 0"]


def test_lfafs_ctl_inside_run_drives_the_platform_without_mount(tmp_path):
    r = run("--", "sh", "-c", f'test -S "$LFAFS_SOCKET" && lfafs ctl stage rmm --version 1.1 && '
                              f'cat /sys/firmware/lfa/{RMM}/activation_pending /sys/firmware/lfa/{RMM}/pending_version')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "staged rmm 1.1: it reports activation pending\n1\n1.1\n"


def test_run_takes_the_mount_options_and_keeps_a_state_directory(tmp_path):
    state = tmp_path / "state"
    r = run("--state-dir", str(state), "--stage", "rmm=1.3", "--",
            "sh", "-c", f"cd /sys/firmware/lfa/{RMM} && cat activation_pending >/dev/null && echo 1 > activate")
    assert r.returncode == 0, r.stderr
    r = run("--state-dir", str(state), "--cpus", "2", "--kernel-abi", "v1", "--no-passthrough", "--",
            "sh", "-c", f"cat /sys/firmware/lfa/{RMM}/current_version; ls /sys/firmware; "
                        f"ls /sys/firmware/lfa/{RMM} | grep -c auto_activate; lfafs ctl status | grep cpus")
    assert r.stdout == "1.3\nefi\nlfa\n0\ncpus: 0:on 1:on\n", r.stderr  # efi/: the platform boots UEFI


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_a_command_killed_by_a_signal_gives_128_plus_n(signum):
    r = run("--", "sh", "-c", f"kill -{signum.value} $$")
    assert r.returncode == 128 + signum.value



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_run_leaves_nothing_behind(signum, tmp_path):
    proc = subprocess.Popen([*LFAFS, "run", "--", "sh", "-c", 'echo "$LFAFS_MOUNT $LFAFS_SOCKET"; exec sleep 60'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    mountpoint, sock = proc.stdout.readline().split()
    assert os.path.ismount(mountpoint) and os.path.exists(sock) and daemon_pids(mountpoint)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 128 + signum.value  # the command died of it: 128+N
    end = time.monotonic() + 10
    while daemon_pids(mountpoint) and time.monotonic() < end:
        time.sleep(0.05)
    assert not daemon_pids(mountpoint)  # the daemon stopped
    assert lfafs_mounts(tmp_path) == []  # nothing mounted
    assert left_in(tmp_path) == []  # the temporary mountpoint is gone
    assert not os.path.exists(os.path.dirname(sock))  # and the daemon's runtime directory


@pytest.mark.parametrize("args, said", [
    (["--stage", "rmm=x"], "--stage rmm=x: version: expected a version MAJOR.MINOR"),
    (["--stage", "rmm"], "--stage rmm: expected COMPONENT=VERSION"),
    (["--stage", "nope=1.0"], "--stage nope=1.0: component: unknown component 'nope'"),
    (["--fail", "rmm:nowhere"], "--fail rmm:nowhere: at: 'nowhere' is not one of load, prime"),
    (["--fail", "rmm:activate:LFA_BUSY"], "TF-A cannot return LFA_BUSY from the activate stage"),
    (["--scenario", "/nonexistent.toml"], "/nonexistent.toml: cannot be read"),
    (["--profile", "nope"], "nope"),
])
def test_bad_input_is_one_line_and_the_command_never_runs(args, said, tmp_path):
    marker = tmp_path / "ran"
    r = run(*args, "--", "touch", str(marker), tmp=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("lfafs run: ") and said in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not marker.exists() and lfafs_mounts(tmp_path) == [] and left_in(tmp_path) == []
