"""Real clients, unmodified, against an lfafs mount seen at /sys/firmware in a private mount namespace."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.fs.efi_harness import EfiMounted, efi_mounts
from tests.fs.harness import fuse_unavailable

# libefivar's efivarfs probe compares statfs().f_type with EFIVARFS_MAGIC; FUSE reports its own, so the
# library's documented override (src/efivarfs.c, EFIVARFS_PATH, which must end in "/") is set instead.
EFIVARFS_ENV = {"EFIVARFS_PATH": "/sys/firmware/efi/efivars/"}
# fwupd keeps its history and device cache under /var: in the command's private mount namespace they
# go to tmpfs, so a test leaves the host's fwupd state as it was
FWUPD_PRIVATE_STATE = "mount -t tmpfs none /var/lib/fwupd && mount -t tmpfs none /var/cache/fwupd && "


def run_in_namespace(mount: EfiMounted, command: str, *, env: dict | None = None, pid1: bool = False,
                     timeout: float = 120) -> subprocess.CompletedProcess:
    """``command`` (a shell line) with the mount over /sys/firmware and efivars a mount point of its own.

    With ``pid1`` the command runs as PID 1 of a new PID namespace with ``container`` set empty,
    which systemd's detect_container() takes as "not in a container".
    """
    setup = f"mount --bind {mount.mnt} /sys/firmware && mount --bind {mount.efivars} /sys/firmware/efi/efivars"
    argv = ["unshare", "--mount", "--propagation", "private"]
    if pid1:
        argv += ["--pid", "--fork", "--mount-proc"]
        command = f"exec env container= {command}"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*argv, "sh", "-c", f"{setup} && {command}"], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def efi_client_mount():
    why = fuse_unavailable() or (None if shutil.which("unshare") else "no unshare")
    if why:
        pytest.skip(f"needs a real FUSE mount and unshare: {why}")
    with efi_mounts("lfafs-clients-") as make:
        yield make


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian: efivar, efibootmgr, mokutil, fwupd, systemd-boot)")
