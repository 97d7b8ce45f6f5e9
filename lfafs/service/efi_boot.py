"""The kernel's EFI side of one mount: /sys/firmware/efi and efivarfs, booted with the platform.

Linux reads the system table and mounts efivarfs once per boot
(lfafs/driver/efi_sysfs.py, ``efi_tree``). The daemon boots it after the
LFA driver's probe when the platform has UEFI, and again after every
platform reset (``lfafs ctl reset``, a scenario's ``reset`` event): the
firmware booted again, so the kernel does too, and the handles of the old
efivarfs are gone (``SysfsOps.reboot_efi``). A flash restored from a state
directory is applied before the first boot, so that boot already sees it.
"""

from __future__ import annotations

import attrs

from lfafs.driver.efi_sysfs import EfiTree, efi_tree
from lfafs.driver.efivarfs import DEFAULT_ABI
from lfafs.fs import SysfsOps
from lfafs.platform import Platform


async def boot_efi(platform: Platform, abi: str = DEFAULT_ABI) -> EfiTree | None:
    """The tree Linux builds from this boot's firmware, or None when the platform boots without UEFI."""
    stack = getattr(platform, "uefi", None)
    if stack is None:
        return None
    return await efi_tree(stack.runtime, stack.system_table, abi=abi)


@attrs.define
class EfiKernel:
    """What a mount with efi/ needs to boot its kernel's EFI side again."""

    platform: Platform
    ops: SysfsOps
    tree: EfiTree  # this boot's
    abi: str = DEFAULT_ABI

    @property
    def read_only(self) -> bool:
        """efivarfs mounted read-only: the firmware does not offer SetVariable at runtime (``mainline``)."""
        return self.tree.efivarfs is None or self.tree.efivarfs.read_only

    async def reboot(self) -> None:
        """After a platform reset: efi_tree() of the new boot, handed to the FUSE operations."""
        tree = await boot_efi(self.platform, self.abi)
        if tree is not None:
            self.tree = tree
            self.ops.reboot_efi(tree)
