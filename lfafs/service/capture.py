"""`lfafs capture`: record a real machine's /sys/firmware/lfa as a profile lfafs serves back.

As umockdev-record does for devices: read each image directory (its GUID,
name, flags and versions), the CPU count and, where readable, the LFA
driver's kernel log lines, and write a profile TOML (the machine shape of
the default profile, with the captured components) that ``lfafs mount
--profile FILE`` serves. The source may be the live directory or a copy
made with ``cp -r /sys/firmware/lfa DIR`` (``activate`` and ``cancel`` are
write-only and are not copied; nothing needs them), so captures can be
shared.

What a profile cannot hold is written as comments and said on stderr: an
image pending on the captured machine (serve it with ``--stage``), and the
kernel ABI the files suggest (``--kernel-abi``). A tree whose versions all
read 0.0 and whose capable images are all pending with no pending version
is what TF-A's own FVP port shows; it is captured with that port's
``inventory_versions = false`` and ``activation_pending = "hardwired"``. Component names are the
embedded profiles' for known GUIDs, else made from the ``name`` file; the
``name`` lfafs shows comes from the driver's table of GUIDs, as on Linux.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import subprocess
import tomllib
import uuid

import attrs

import lfafs
from lfafs.platform import DEFAULT_PROFILE, ProfileError, embedded_names, load_profile
from lfafs.platform.profile import Profile, profile_from_dict
from lfafs.smccc import Version

LIVE = "/sys/firmware/lfa"
DMESG_TAG = "Arm LFA: "
_READABLE = ("name", "current_version", "pending_version", "activation_capable", "activation_pending",
             "may_reset_cpu", "cpu_rendezvous", "force_cpu_rendezvous", "auto_activate")


class CaptureError(ValueError):
    """Input that cannot be captured: the path and what is wrong."""


@attrs.frozen
class Captured:
    guid: str
    files: dict[str, str]  # attribute -> its text, stripped

    def flag(self, attr: str, default: bool = False) -> bool:
        value = self.files.get(attr)
        if value is None:
            return default
        if value not in ("0", "1"):
            raise CaptureError(f"{self.guid}/{attr}: expected 0 or 1, got {value!r}")
        return value == "1"

    def version(self, attr: str) -> Version | None:
        value = self.files.get(attr)
        if value in (None, "N/A", ""):
            return None
        try:
            return Version.parse(value)
        except ValueError:
            raise CaptureError(f"{self.guid}/{attr}: expected MAJOR.MINOR, got {value!r}") from None


def read_tree(source: str) -> list[Captured]:
    """The image directories of an lfa/ directory (live or copied), sorted by GUID."""
    if not os.path.isdir(source):
        raise CaptureError(f"{source} is not a directory: give /sys/firmware/lfa or a copy of it (cp -r)")
    images = []
    for entry in sorted(os.listdir(source)):
        path = os.path.join(source, entry)
        if not os.path.isdir(path):
            continue
        try:
            guid = str(uuid.UUID(entry))
        except ValueError:
            raise CaptureError(f"{path}: an lfa/ directory holds one directory per image GUID, "
                               f"and {entry!r} is not a GUID") from None
        files = {}
        for attr in _READABLE:
            try:
                with open(os.path.join(path, attr)) as f:
                    files[attr] = f.read().strip()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise CaptureError(f"{os.path.join(path, attr)}: cannot be read: {e.strerror}") from None
        if "current_version" not in files or "activation_capable" not in files:
            raise CaptureError(f"{path}: no current_version or activation_capable: not an LFA image directory")
        images.append(Captured(guid, files))
    if not images:
        raise CaptureError(f"{source} has no image directories: is the LFA driver loaded (modprobe lfa_fw)?")
    return images


def read_dmesg() -> list[str]:
    """The LFA driver's kernel log lines, if this user may read the kernel log."""
    try:
        r = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if r.returncode != 0:
        return []
    return [line for line in r.stdout.splitlines() if DMESG_TAG in line]


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _known_names() -> dict[str, tuple[str, str]]:
    """GUID -> (component name, activator) from the embedded profiles."""
    out: dict[str, tuple[str, str]] = {}
    for name in embedded_names():
        for c in load_profile(name).components:
            out.setdefault(str(c.guid), (c.name, c.activator))
    return out


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:32]
    return s if s and s[0].isalnum() else ""


def _abi_hint(images: list[Captured]) -> str:
    files = set().union(*(i.files for i in images))
    names = {i.guid: i.files.get("name", "") for i in images}
    if "auto_activate" not in files:
        return "nvidia-v1" if any(n == g for g, n in names.items()) else "v1"
    return "v2" if any(n == "" for n in names.values()) else "v3"


def _component(img: Captured, name: str, known: dict) -> dict:
    capable = img.flag("activation_capable")
    activator = known.get(img.guid, (None, "generic"))[1] if capable else "none"
    rendezvous = img.flag("cpu_rendezvous", True)
    if activator in ("rmm", "bl31") and not rendezvous:
        activator = "generic"  # what TF-A's activator could not report: keep the flags, not the kind
    version = img.version("current_version")
    if version is None:
        raise CaptureError(f"{img.guid}/current_version: no version to serve")
    out = {"name": name, "guid": img.guid, "activator": activator, "version": str(version)}
    if capable:
        out["may_reset_cpu"] = img.flag("may_reset_cpu")
        out["cpu_rendezvous"] = "required" if rendezvous else "optional"
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v > 4096 else str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def capture(source: str = LIVE, *, name: str | None = None, dmesg: bool = True, cpus: int | None = None) -> str:
    """A profile TOML for the lfa/ directory at ``source``; CaptureError for input that is not one."""
    images = read_tree(source)
    live = os.path.realpath(source) == LIVE
    log = read_dmesg() if dmesg and live else []
    known = _known_names()
    taken: set[str] = set()
    components = []
    for i, img in enumerate(images):
        base = known.get(img.guid, (None,))[0] or _slug(img.files.get("name", "")) or f"fw{i}"
        cname, n = base, 1
        while cname in taken:
            n += 1
            cname = f"{base[:29]}-{n}"
        taken.add(cname)
        components.append(_component(img, cname, known))
    host = socket.gethostname() or "machine"
    name = name or _slug(f"captured-{host}") or "captured"
    default: Profile = load_profile(DEFAULT_PROFILE)
    ncpus = cpus or (online_cpus() if live else default.cpus)
    notification = ("acpi" if any("ACPI notification" in line for line in log)
                    else "dt" if any("DT notification" in line for line in log) else default.notification)
    capable = [img for img in images if img.flag("activation_capable")]
    # TF-A's own FVP port leaves x4/x5 alone (every version reads 0.0) and hard-wires pending
    # (docs/smc-abi.md, "Profiles"): a capture that looks like that is served the same way.
    versions = not capable or any(img.files.get("current_version") != "0.0" for img in capable)
    policy = "hardwired" if capable and all(
        img.flag("activation_pending") and img.version("pending_version") is None for img in capable) else "staged"
    doc = {
        "name": name,
        "description": f"captured from {os.path.abspath(source)} on {host}",
        "cpus": min(ncpus, 512),
        "dram_base": default.dram_base, "dram_size": default.dram_size,
        "secure_dram_size": default.secure_dram_size,
        "dram2_base": default.dram2_base, "dram2_size": default.dram2_size,
        "inventory_versions": versions, "activation_pending": policy, "notification": notification,
        "auth_key": default.auth_key.decode(),
    }
    r = default.rmm
    rmm = {"va_pool_size": r.va_pool_size, "compat_reserve_mem": r.compat_reserve_mem, "base": r.base,
           "payload_size": r.payload_size, "limit": r.limit, "release": r.release,
           "version": next((c["version"] for c in components if c["activator"] == "rmm"), str(Version(*r.version)))}
    pending = [] if policy == "hardwired" else [
        (c["name"], v) for c, img in zip(components, images, strict=True)
        if img.flag("activation_pending") and (v := img.version("pending_version")) is not None]
    lines = [f"# Captured by lfafs capture {lfafs.__version__} on "
             f"{datetime.datetime.now().isoformat(timespec='seconds')} from {os.path.abspath(source)}",
             f"# Serve it with: lfafs mount --profile FILE --kernel-abi {_abi_hint(images)} MOUNTPOINT"
             + "".join(f" --stage {n}={v}" for n, v in pending)]
    if pending:
        lines.append("# Pending there (a profile holds no staged image): "
                     + ", ".join(f"{n} {v}" for n, v in pending))
    lines += [f"# dmesg: {line}" for line in log]
    lines += [f"{k} = {_toml_value(v)}" for k, v in doc.items()]
    lines += ["", "[rmm]"] + [f"{k} = {_toml_value(v)}" for k, v in rmm.items()]
    for c in components:
        lines += ["", "[[component]]"] + [f"{k} = {_toml_value(v)}" for k, v in c.items()]
    text = "\n".join(lines) + "\n"
    try:  # what we write must load: the same checks as lfafs mount --profile
        profile_from_dict(tomllib.loads(text), "<captured>")
    except ProfileError as e:
        raise CaptureError(f"{source}: the captured components do not make a valid profile: {e}") from None
    return text
