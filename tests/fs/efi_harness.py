"""A real FUSE mount with efi/ beside lfa/: platform, LFA driver, efivarfs and the FUSE operations.

Wired as harness.Mounted wires lfa/, plus the kernel's EFI side: the
platform's system table and runtime services go to efi_tree() (the boot-time
Linux of lfafs/driver/efi_sysfs.py), and the tree to SysfsOps. The mount
allows other users, so tests can act as a non-root user.
"""

from __future__ import annotations

import functools
import os

import trio

from lfafs.driver import LfaDriver
from lfafs.driver.efi_sysfs import efi_tree
from lfafs.driver.lfa import platform_conduit
from lfafs.fs import SysfsOps, serve
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

    async def _main(self) -> None:
        if self._uefi is None:
            p = Platform.from_profile(self._profile, cpus=self._cpus)
        else:
            p = Platform(profile_from_dict({"base": self._profile, "uefi": self._uefi}, "<efi test>"), cpus=self._cpus)
        conduit = platform_conduit(p)
        async with trio.open_nursery() as nursery:
            self.platform = p
            self.driver = LfaDriver(conduit, abi=self._abi, notification=p.profile.notification)
            await self.driver.probe(nursery)
            self.tree = await efi_tree(p.uefi.runtime, p.uefi.system_table, abi=self._efivarfs_abi) \
                if p.uefi is not None else None
            self.token = trio.lowlevel.current_trio_token()
            ops = SysfsOps(self.driver, self.token, efi=self.tree)

            async def fuse_loop() -> None:
                try:
                    await trio.to_thread.run_sync(functools.partial(serve, ops, self.mnt, allow_other=True),
                                                  abandon_on_cancel=True)
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(fuse_loop)
            with trio.fail_after(30):
                while not await trio.to_thread.run_sync(os.path.ismount, self.mnt):
                    await trio.sleep(0.01)
            self._ready.set()
