"""What this user may do here: mount FUSE (as root, or through fusermount3), and make the
private namespace of ``lfafs run`` (as root, or in an unprivileged user namespace).

Each check answers None or one sentence naming what is missing and how to
get it, so the person sees the cause instead of a failed mount.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess

FUSE_DEVICE = "/dev/fuse"


def fusermount3() -> str | None:
    return shutil.which("fusermount3") or next(
        (p for p in ("/usr/bin/fusermount3", "/bin/fusermount3") if os.path.exists(p)), None)


def fuse_problem() -> str | None:
    """Why this process cannot mount a FUSE filesystem here, or None."""
    if not os.path.exists(FUSE_DEVICE):
        return f"{FUSE_DEVICE} is missing: load the fuse module (modprobe fuse) or run where FUSE is available"
    helper = fusermount3()
    if helper is None:
        return "fusermount3 is missing: install fuse3 (apt-get install fuse3)"
    if os.geteuid() == 0:
        return None
    if not os.access(FUSE_DEVICE, os.R_OK | os.W_OK):
        mode = stat.S_IMODE(os.stat(FUSE_DEVICE).st_mode)
        return (f"{FUSE_DEVICE} is mode {mode:04o}, so an ordinary user cannot open it: as root, "
                f"chmod 0666 {FUSE_DEVICE} (Debian's default), or run lfafs as root")
    st = os.stat(helper)
    if st.st_uid != 0 or not st.st_mode & stat.S_ISUID:
        return f"{helper} is not setuid root, so an ordinary user cannot mount with it: as root, chmod u+s {helper}"
    return None


@functools.cache
def userns_problem() -> str | None:
    """Why an ordinary user cannot create the user and mount namespace ``lfafs run`` needs, or None."""
    if os.geteuid() == 0:
        return None
    for path, bad, fix in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"),
        ("/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=10000"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
         "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
    ):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return (f"unprivileged user namespaces are disabled here ({path} is {bad}): "
                            f"as root, {fix}; or run as root")
        except OSError:
            pass
    if shutil.which("unshare") is None:
        return "util-linux's unshare is missing: apt-get install util-linux"
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return (f"this kernel refuses an unprivileged user namespace ({r.stderr.strip() or 'unshare failed'}); "
                "run lfafs run as root")
    return None
