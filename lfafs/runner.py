"""`lfafs run`: an unmodified command in a private mount namespace whose
/sys/firmware is the emulated tree (lfa/ emulated, everything else the host's).

A daemon serves a temporary mount with pass-through of the host's
/sys/firmware; util-linux's unshare creates a mount namespace with private
propagation and bind-mounts that tree over /sys/firmware inside it only;
the command runs there. Afterwards the daemon is stopped and the temporary
mountpoint removed: nothing is left in the host's mount table.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile



class RunError(RuntimeError):
    pass


def run(command: list[str], *, profile: str = "fvp", abi: str = "v3", cpus: int | None = None) -> int:
    """Run ``command`` against an emulated /sys/firmware; return its exit status."""
    if not command:
        raise RunError("give a command after --, e.g. lfafs run -- cat /sys/firmware/lfa/*/name")
    if shutil.which("unshare") is None:
        raise RunError("util-linux's unshare is missing: apt-get install util-linux")
    tmp = tempfile.mkdtemp(prefix="lfafs-run-")
    mnt = os.path.join(tmp, "firmware")
    os.mkdir(mnt)
    mount_cmd = [sys.executable, "-m", "lfafs", "mount", "--passthrough", "--profile", str(profile),
                 "--kernel-abi", abi, mnt]
    if cpus:
        mount_cmd[4:4] = ["--cpus", str(cpus)]
    r = subprocess.run(mount_cmd, capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(r.stderr.strip().removeprefix("lfafs mount: ") or "the daemon did not start")
    try:
        inner = f"mount --bind {shlex.quote(mnt)} /sys/firmware && exec \"$@\""
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "lfafs-run",
                               *command])
        return proc.returncode
    finally:
        subprocess.run([sys.executable, "-m", "lfafs", "umount", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
