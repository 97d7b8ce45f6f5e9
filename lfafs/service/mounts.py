"""What the kernel's mount table says about a path: is it mounted, and is it an lfafs mount?

``lfafs umount`` and the control client ask before they act, so that they
never unmount someone else's filesystem and can tell "not mounted", "not
lfafs" and "the daemon is gone" apart (docs/control-protocol.md).
"""

from __future__ import annotations

import os
import re

import attrs

FSTYPE = "fuse.lfafs"  # libfuse's fstype for subtype=lfafs (lfafs/fs.py, mount_options)
FSNAME = "lfafs"  # the mount source, fsname=lfafs
_ESCAPE = re.compile(r"\\([0-7]{3})")


@attrs.frozen
class MountEntry:
    """One line of /proc/self/mountinfo (proc(5))."""

    mountpoint: str
    fstype: str
    source: str
    super_options: dict[str, str]

    @property
    def is_lfafs(self) -> bool:
        return self.fstype == FSTYPE or (self.fstype.startswith("fuse") and self.source == FSNAME)

    @property
    def owner_uid(self) -> int | None:
        """The uid that mounted a FUSE filesystem (user_id=), the daemon's."""
        try:
            return int(self.super_options["user_id"])
        except (KeyError, ValueError):
            return None


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m[1], 8)), field)


def _parse(line: str) -> MountEntry | None:
    fields = line.split()
    try:
        sep = fields.index("-", 6)
    except ValueError:
        return None
    if len(fields) < sep + 3:
        return None
    opts = {}
    for opt in fields[sep + 3].split(",") if len(fields) > sep + 3 else ():
        key, _, value = opt.partition("=")
        opts[key] = value
    return MountEntry(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2]), opts)


def find(path: str, mountinfo: str = "/proc/self/mountinfo") -> MountEntry | None:
    """The topmost mount at ``path`` (after resolving symlinks), or None when nothing is mounted there."""
    target = os.path.realpath(path)
    found = None
    try:
        with open(mountinfo) as f:
            for line in f:
                entry = _parse(line)
                if entry is not None and entry.mountpoint == target:
                    found = entry  # later lines are mounted on top of earlier ones
    except OSError:
        return None
    return found


def why_not_lfafs(path: str) -> str | None:
    """Why ``path`` is not an lfafs mount, as a sentence, or None when it is one."""
    entry = find(path)
    if entry is None:
        return f"{path} is not mounted"
    if not entry.is_lfafs:
        return f"{path} is a {entry.fstype} mount ({entry.source}), not an lfafs mount: lfafs leaves it alone"
    return None
