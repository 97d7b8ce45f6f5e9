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
import tempfile

from lfafs.platform import DEFAULT_PROFILE
from lfafs.service import spawn


class RunError(RuntimeError):
    pass


def run(command: list[str], *, profile: str = DEFAULT_PROFILE, abi: str = "v3", cpus: int | None = None) -> int:
    """Run ``command`` against an emulated /sys/firmware; return its exit status."""
    if not command:
        raise RunError("give a command after --, e.g. lfafs run -- cat /sys/firmware/lfa/*/name")
    if shutil.which("unshare") is None:
        raise RunError("util-linux's unshare is missing: apt-get install util-linux")
    tmp = tempfile.mkdtemp(prefix="lfafs-run-")
    mnt = os.path.join(tmp, "firmware")
    os.mkdir(mnt)
    try:
        with spawn.running(mnt, profile=profile, abi=abi, cpus=cpus, passthrough=True):
            inner = f"mount --bind {shlex.quote(mnt)} /sys/firmware && exec \"$@\""
            proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner,
                                   "lfafs-run", *command])
            return proc.returncode
    except spawn.SpawnError as e:
        raise RunError(str(e)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
