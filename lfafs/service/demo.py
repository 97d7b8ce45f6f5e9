"""`lfafs demo`: a short guided tour on the embedded default platform."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from lfafs.service import spawn
from lfafs.service.control import Client

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _sh(cmd: str, cwd: str) -> None:
    print(f"$ {cmd.replace(sys.executable + ' -m lfafs', 'lfafs')}", flush=True)
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        print(out, flush=True)


def demo() -> int:
    tmp = tempfile.mkdtemp(prefix="lfafs-demo-")
    mnt = os.path.join(tmp, "firmware")
    os.mkdir(mnt)
    try:
        daemon = spawn.start(mnt)
    except spawn.SpawnError as e:
        print(f"lfafs demo: {e}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    t0 = time.monotonic()
    try:
        lfa = os.path.join(mnt, "lfa")
        _say(f"an emulated Arm FVP with TF-A's LFA agent and TF-RMM, mounted at {mnt} as /sys/firmware")
        _sh("ls lfa", mnt)
        _sh("grep . lfa/*/name", mnt)
        _say("the RMM's attributes, as the Linux driver shows them")
        _sh("grep . *", os.path.join(lfa, RMM))
        _say("deliver a new RMM image out of band (signed with the platform key)")
        _sh(f"{sys.executable} -m lfafs ctl --mount {mnt} stage rmm --version 0.10", mnt)
        _sh("cat activation_pending pending_version", os.path.join(lfa, RMM))
        _say("activate it: PRIME, then ACTIVATE on all 4 CPUs at once, the new RMM boots from the activation token")
        _sh("echo 1 > activate; echo exit status $?", os.path.join(lfa, RMM))
        _sh("cat current_version activation_pending pending_version", os.path.join(lfa, RMM))
        _say("what happened")
        rep = Client(mount=mnt).status()["last_report"]
        print(f"  {rep['component']} {rep['from_version']} -> {rep['to_version']}, status {rep['status']}, "
              f"{rep['cpus']} CPUs, leader CPU {rep['leader_cpu']}")
        print(f"  prime {rep['prime_s'] * 1e3:.2f} ms, rendezvous {rep['rendezvous_s'] * 1e3:.2f} ms, "
              f"new image boot {rep['leader_boot_s'] * 1e3:.2f} ms, total {rep['total_s'] * 1e3:.2f} ms")
        print(f"  {rep['dynamic_pages_preserved']} dynamic pages (glob_data, VA bitmap, granule array) kept "
              f"bit for bit; image sequence now {rep['fw_img_sequence']}")
        _sh(f"{sys.executable} -m lfafs ctl --mount {mnt} dmesg", mnt)
        _say("an error path: make the next activation fail in the new image's boot")
        _sh(f"{sys.executable} -m lfafs ctl --mount {mnt} stage rmm --version 0.11", mnt)
        _sh(f"{sys.executable} -m lfafs ctl --mount {mnt} fail rmm --at boot --status LFA_ACTIVATION_FAILED", mnt)
        _sh("cat activation_pending; echo 1 > activate; echo exit status $?", os.path.join(lfa, RMM))
        _sh(f"{sys.executable} -m lfafs ctl --mount {mnt} status | tail -2", mnt)
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n(demo done in {time.monotonic() - t0:.1f} s; `lfafs mount DIR` keeps a platform running)")
    return 0
