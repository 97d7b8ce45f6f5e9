"""The kernel's EFI side over an emulated platform: EFI runtime, efivarfs and /sys/firmware/efi, as Linux boots them."""

from __future__ import annotations

import os

from lfafs.driver.efi_sysfs import efi_tree
from lfafs.platform import Platform
from lfafs.platform.profile import profile_from_dict

GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SP2_GUID = "c3ff2127-7e41-a9f8-05af-24a1afa33474"  # the variable SP of fvp-den0147
SP2 = {"name": "sp2", "guid": SP2_GUID, "activator": "sp", "version": "1.0"}


def platform(cpus: int | None = None, sp2_latency: float = 0.0, **uefi) -> Platform:
    data = {"base": "fvp-den0147", "uefi": uefi}
    if sp2_latency:
        data["component"] = [{**SP2, "latency": {"activate": sp2_latency}}]
    return Platform(profile_from_dict(data, "<efivarfs test>"), cpus=cpus)


async def boot(p: Platform | None = None, *, abi: str = "v6.14", **uefi):
    """(platform, tree): Linux booted on ``p`` with efivarfs mounted."""
    p = p or platform(**uefi)
    return p, await efi_tree(p.uefi.runtime, p.uefi.system_table, abi=abi)


def name(var: str, guid: str = GLOBAL) -> str:
    return f"{var}-{guid}"


async def read_all(fs, fname: str, uid: int = 0) -> bytes:
    f = fs.open(fname, os.O_RDONLY)
    try:
        return await fs.read(f, 1 << 20, 0, uid)
    finally:
        fs.release(f)


async def write_once(fs, fname: str, data: bytes, *, create: bool = False) -> int:
    f = fs.create(fname, 0o644, os.O_WRONLY | os.O_CREAT) if create else fs.open(fname, os.O_WRONLY)
    try:
        return await fs.write(f, data)
    finally:
        fs.release(f)


async def staged(rig, version=(2, 0)) -> None:
    """A new image of the variable SP staged out of band, and the driver told of it (activation_pending)."""
    rig.platform.stage("sp2", version=version)
    await rig.read(SP2_GUID, "activation_pending")
