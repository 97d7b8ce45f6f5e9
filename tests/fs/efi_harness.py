"""A real FUSE mount with efi/ beside lfa/: platform, LFA driver, efivarfs and the FUSE operations.

Wired as harness.Mounted wires lfa/, plus the kernel's EFI side: the
platform's system table and runtime services go to efi_tree() (the boot-time
Linux of lfafs/driver/efi_sysfs.py), and the tree to SysfsOps. The mount
allows other users, so tests can act as a non-root user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

from lfafs.driver.efi_sysfs import efi_tree
from lfafs.platform import Platform
from lfafs.platform.profile import profile_from_dict

from .harness import PROFILE, Mounted

EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


class EfiMounted(Mounted):
    """``uefi`` (a [uefi] table) and ``efivarfs_abi`` choose the firmware and the kernel build."""

    def __init__(self, mountpoint, *, uefi: dict | None = None, efivarfs_abi: str = "v6.14", cpus: int | None = None,
                 abi: str = "v3", profile: str = PROFILE) -> None:
        self._uefi, self._efivarfs_abi = uefi, efivarfs_abi
        self.efi = os.path.join(str(mountpoint), "efi")
        self.efivars = os.path.join(self.efi, "efivars")
        super().__init__(mountpoint, profile=profile, abi=abi, cpus=cpus)

    def var(self, name: str, guid: str = EFI_GLOBAL) -> str:
        return os.path.join(self.efivars, f"{name}-{guid}")

    allow_other = True  # tests act as a non-root user too

    def _platform(self) -> Platform:
        if self._uefi is None:
            return Platform.from_profile(self._profile, cpus=self._cpus)
        return Platform(profile_from_dict({"base": self._profile, "uefi": self._uefi}, "<efi test>"), cpus=self._cpus)

    async def _efi_tree(self, p: Platform):
        """The boot-time Linux's efi/ (lfafs/driver/efi_sysfs.py), when the firmware has UEFI."""
        if p.uefi is None:
            return None
        return await efi_tree(p.uefi.runtime, p.uefi.system_table, abi=self._efivarfs_abi)


@contextlib.contextmanager
def efi_mounts(prefix: str = "lfafs-efi-") -> Iterator[Callable[..., EfiMounted]]:
    """A factory of EfiMounted (its keywords), under a directory every user can reach (pytest's
    tmp_path is root's alone, and some tests act as another user); every mount closed on exit."""
    made: list[EfiMounted] = []
    shared = tempfile.mkdtemp(prefix=prefix)
    os.chmod(shared, 0o755)

    def make(**kw) -> EfiMounted:
        m = EfiMounted(os.path.join(shared, f"firmware{len(made)}"), **kw)
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in made:
            m.close()
        shutil.rmtree(shared, ignore_errors=True)
