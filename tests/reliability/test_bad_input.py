"""Bad input, as a table: command lines, profiles and state files a careless or hostile user gives.
Each one is one line on stderr and a non-zero exit, never a traceback, with nothing mounted and the
state directory exactly as it was (contents and times)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from lfafs.platform import ComponentSpec, Platform
from lfafs.service.state import StateDir
from tests.reliability.conftest import pick
from tests.service.test_state import CORRUPTIONS, NEW_GUID

LFAFS = [sys.executable, "-m", "lfafs"]

PROFILES = {
    "deep nesting": "a = " + "[" * 100_000 + "]" * 100_000,
    "not UTF-8": b"\xff\xfe\x00\x01garbage",
    "not TOML": "[[[[",
    "cpus 0": 'base = "fvp"\ncpus = 0\n',
    "cpus 100000": 'base = "fvp"\ncpus = 100000\n',
    "cpus a string": 'base = "fvp"\ncpus = "four"\n',
    "dram_size nonsense": 'base = "fvp"\ndram_size = "16Q"\n',
    "dram_size tiny": 'base = "fvp"\ndram_size = 4096\n',
    "unknown field": 'base = "fvp"\ncolour = "red"\n',
    "unknown base": 'base = "no-such-base"\n',
    "component without guid": 'base = "fvp"\n[[component]]\nname = "x"\nversion = "1.0"\n',
    "component bad version": 'base = "fvp"\n[[component]]\nname = "x"\nguid = "11111111-2222-3333-4444-555555555555"\n'
                             'version = "1.x"\n',
    "huge integer": 'base = "fvp"\ncpus = ' + "9" * 5000 + "\n",
    "empty": "",
}

ARGS = {
    "cpus 0": ["mount", "--cpus", "0", "{mnt}"],
    "cpus -1": ["mount", "--cpus", "-1", "{mnt}"],
    "cpus 513": ["mount", "--cpus", "513", "{mnt}"],
    "cpus not a number": ["mount", "--cpus", "x", "{mnt}"],
    "cpus huge": ["mount", "--cpus", "9" * 5000, "{mnt}"],
    "unknown abi": ["mount", "--kernel-abi", "v9", "{mnt}"],
    "missing profile": ["mount", "--profile", "/nonexistent.toml", "{mnt}"],
    "profile is a directory": ["mount", "--profile", "/tmp", "{mnt}"],
    "mountpoint missing": ["mount", "{mnt}/nope"],
    "mountpoint is a file": ["mount", "{file}"],
    "state dir is the mountpoint": ["mount", "--state-dir", "{mnt}", "{mnt}"],
    "state dir inside the mountpoint": ["mount", "--state-dir", "{mnt}/state", "{mnt}"],
    "state dir is a file": ["mount", "--state-dir", "{file}", "{mnt}"],
    "foreground cpus 0": ["mount", "--foreground", "--cpus", "0", "{mnt}"],
    "umount of a plain directory": ["umount", "{mnt}"],
    "umount of a tmpfs": ["umount", "{tmpfs}"],
    "ctl of a plain directory": ["ctl", "--mount", "{mnt}", "status"],
    "ctl of a tmpfs": ["ctl", "--mount", "{tmpfs}", "ping"],
    "ctl of a missing socket": ["ctl", "--socket", "{mnt}/none.sock", "ping"],
    "run with cpus 0": ["run", "--cpus", "0", "--", "true"],
    "run without a command": ["run"],
    "unknown command": ["explode"],
}


def _snapshot(path: pathlib.Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()}


def _judge(r: subprocess.CompletedProcess, what: str, wrong: list[str]) -> None:
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith(("usage:", " "))]
    if r.returncode == 0 or "Traceback" in r.stderr or len(lines) != 1:
        wrong.append(f"{what}: exit {r.returncode}, stderr {r.stderr[-300:]!r}")


@pytest.fixture
def tmpfs(public_dir):
    d = os.path.join(public_dir, "tmpfs")
    os.mkdir(d)
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    yield d
    subprocess.run(["umount", "-l", d])


def test_bad_input_table(mountpoint, public_dir, tmpfs, rng, seed, figures):
    wrong: list[str] = []
    file = os.path.join(public_dir, "a-file")
    pathlib.Path(file).write_text("x")
    cases = 0
    for name, argv in ARGS.items():
        args = [a.format(mnt=mountpoint, file=file, tmpfs=tmpfs) for a in argv]
        r = subprocess.run([*LFAFS, *args], capture_output=True, text=True, timeout=120)
        _judge(r, f"args {name}", wrong)
        cases += 1
    for name, text in PROFILES.items():
        path = pathlib.Path(public_dir, "bad.toml")
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        for fg in ([], ["--foreground"]):
            r = subprocess.run([*LFAFS, "mount", *fg, "--profile", str(path), mountpoint], capture_output=True,
                               text=True, timeout=120)
            _judge(r, f"profile {name} {fg}", wrong)
            cases += 1
    state = pathlib.Path(public_dir, "state")
    sd = StateDir(state)
    p = Platform.from_profile()
    sd.attach(p)
    p.stage("rmm", version="1.0")
    p.add_component(ComponentSpec(name="scp", guid=NEW_GUID, activator="generic", version="1.0",
                                  may_reset_cpu=False, cpu_rendezvous_required=True))
    sd.release()
    good = json.loads((state / "flash.json").read_text())
    corruptions = list(CORRUPTIONS)
    chosen = corruptions if pick(True, False) else rng.sample(corruptions, 12)
    for name in chosen:
        doc = json.loads(json.dumps(good))
        out = CORRUPTIONS[name][0](doc)
        if isinstance(out, tuple) and out[:1] == ("replace",):
            doc = out[1]
        (state / "flash.json").write_text(json.dumps(doc))
        before = _snapshot(state)
        for fg in ([], ["--foreground"]):
            r = subprocess.run([*LFAFS, "mount", *fg, "--state-dir", str(state), mountpoint], capture_output=True,
                               text=True, timeout=120)
            _judge(r, f"state file {name} {fg}", wrong)
            if _snapshot(state) != before:
                wrong.append(f"state file {name} {fg}: the refused start changed the state directory")
            cases += 1
    if os.path.ismount(mountpoint):
        wrong.append("something was left mounted")
    figures.update(seed=seed, cases=cases, wrong=len(wrong))
    assert not wrong, "\n".join(wrong)
