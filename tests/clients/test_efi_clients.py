"""Real EFI clients, unmodified, against the mount: efivar, efibootmgr, mokutil, fwupdtool, bootctl.

Sources: rhboot/efivar src/efivarfs.c (efivarfs_probe() compares statfs's
f_type, EFIVARFS_PATH overrides it), rhboot/efibootmgr src/efibootmgr.c
(exit 2 without EFI variables), lcp/mokutil (exit 1 without them;
--sb-state reads SecureBoot and SetupMode), fwupd
plugins/uefi-capsule/fu-uefi-capsule-backend-linux.c (the ESRT, efivars as a
mount point, OsIndicationsSupported for capsule-on-disk), systemd
src/bootctl/bootctl-status.c and src/basic/efivars.c (the fixed path).
The clients run in a private mount namespace where the mount is /sys/firmware
and efivars a mount point of its own.
"""

from __future__ import annotations

import os
import struct

from lfafs.smccc import Fid
from tests.fs.efi_harness import EFI_GLOBAL

from .conftest import EFIVARFS_ENV, FWUPD_PRIVATE_STATE, need, run_in_namespace


def var(m, name: str) -> bytes | None:
    path = m.var(name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def test_without_the_override_libefivar_finds_no_efivarfs_on_fuse(efi_client_mount):
    """efivarfs_probe() wants f_type 0xde5e81e4; FUSE reports 0x65735546, so the clients say "unsupported"."""
    for tool in ("efivar", "efibootmgr", "mokutil"):
        need(tool)
    m = efi_client_mount()
    r = run_in_namespace(m, "efivar -l")
    assert "Function not implemented" in r.stderr
    r = run_in_namespace(m, "efibootmgr")
    assert (r.returncode, r.stderr.strip()) == (2, "EFI variables are not supported on this system.")
    r = run_in_namespace(m, "mokutil --sb-state")
    assert r.returncode == 1 and "EFI variables are not supported on this system" in r.stderr


def test_efivar_lists_prints_and_writes_variables(efi_client_mount):
    need("efivar")
    m = efi_client_mount()
    r = run_in_namespace(m, "efivar -l", env=EFIVARFS_ENV)
    listed = set(r.stdout.split())
    assert f"{EFI_GLOBAL}-BootOrder" in listed and f"{EFI_GLOBAL}-SecureBoot" in listed
    r = run_in_namespace(m, f"efivar -p -n {EFI_GLOBAL}-BootOrder", env=EFIVARFS_ENV)
    assert r.returncode == 0
    assert "Non-Volatile" in r.stdout and "Runtime Service Access" in r.stdout
    assert "01 00 00 00" in r.stdout
    data = "/tmp/lfafs-efivar-data"
    with open(data, "wb") as f:
        f.write(b"lfafs")
    r = run_in_namespace(m, f"efivar -n {EFI_GLOBAL}-LfafsTest -w -t 7 -f {data}", env=EFIVARFS_ENV)
    assert r.returncode == 0, r.stderr
    assert var(m, "LfafsTest") == struct.pack("<I", 7) + b"lfafs"


def test_efibootmgr_shows_the_boot_entries(efi_client_mount):
    need("efibootmgr")
    m = efi_client_mount()
    r = run_in_namespace(m, "efibootmgr -v", env=EFIVARFS_ENV)
    assert r.returncode == 0, r.stderr
    assert "BootOrder: 0001,0000" in r.stdout and "Timeout: 5 seconds" in r.stdout
    assert "Boot0001* debian\tFile(\\EFI\\debian\\shimaa64.efi)" in r.stdout


def test_efibootmgr_changes_order_next_timeout_and_deletes_an_entry(efi_client_mount):
    need("efibootmgr")
    m = efi_client_mount()
    steps = [("-o 0000,0001", "BootOrder", b"\x00\x00\x01\x00"), ("-n 0001", "BootNext", b"\x01\x00"),
             ("-N", "BootNext", None), ("-t 9", "Timeout", b"\x09\x00"), ("-T", "Timeout", None),
             ("-b 0001 -B", "Boot0001", None)]
    for args, name, value in steps:
        r = run_in_namespace(m, f"efibootmgr {args}", env=EFIVARFS_ENV)
        assert r.returncode == 0, (args, r.stderr)
        got = var(m, name)
        assert (got[4:] if got else None) == value, args
    assert var(m, "BootOrder")[4:] == b"\x00\x00"  # -B also took 0001 out of BootOrder


def test_mokutil_reads_the_secure_boot_state(efi_client_mount):
    need("mokutil")
    r = run_in_namespace(efi_client_mount(), "mokutil --sb-state", env=EFIVARFS_ENV)
    assert r.stdout.splitlines() == ["SecureBoot disabled", "Platform is in Setup Mode"]
    r = run_in_namespace(efi_client_mount(uefi={"secure_boot": True}), "mokutil --sb-state", env=EFIVARFS_ENV)
    assert r.stdout.splitlines() == ["SecureBoot enabled"]


def test_after_a_naive_sp_activation_mokutil_cannot_read_secure_boot(efi_client_mount):
    """The file stays (efivarfs's listing is a mount-time snapshot) but reads nothing: mokutil gives up."""
    need("mokutil")
    m = efi_client_mount(uefi={"live_state": "naive"})

    async def activate():
        p = m.platform
        p.stage("sp2", version=(2, 0))
        await p.smc(Fid.LFA_GET_INVENTORY, 5)
        await p.smc(Fid.LFA_PRIME, 5)
        return (await p.smc(Fid.LFA_ACTIVATE, 5, 1)).x0
    assert m.acall(activate) == 0
    r = run_in_namespace(m, "mokutil --sb-state", env=EFIVARFS_ENV)
    assert 'Strange data size 0 for "SecureBoot" variable' in r.stderr + r.stdout
    assert "Cannot determine secure boot state." in r.stderr + r.stdout


def test_fwupdtool_lists_the_esrt_devices_of_the_uefi_capsule_plugin(efi_client_mount, tmp_path):
    need("fwupdtool")
    m = efi_client_mount()
    esp = tmp_path / "esp"
    (esp / "EFI").mkdir(parents=True)
    r = run_in_namespace(m, FWUPD_PRIVATE_STATE + "fwupdtool get-devices --plugins uefi-capsule",
                         env={"FWUPD_UEFI_ESP_PATH": str(esp)})
    out = r.stdout
    assert out.count("UEFI System Resource Table device (Updated via capsule-on-disk)") == 2, out + r.stderr
    assert "d6d0eea7-fcea-d54b-9782-9934f234b6e4" in out and "132710410" in out  # bl33 2025.10
    assert "05d0e189-53dc-1347-8d2b-500a4b7a3e38" in out


def test_bootctl_status_reads_the_variables_at_the_fixed_path(efi_client_mount):
    need("bootctl")
    m = efi_client_mount()
    r = run_in_namespace(m, "bootctl status --no-pager", pid1=True)
    assert "Not booted with EFI" not in r.stdout, r.stdout + r.stderr
    assert "Secure Boot: disabled (setup)" in r.stdout
    assert "Boot into FW: not supported" in r.stdout  # OsIndicationsSupported has no BOOT_TO_FW_UI
    r = run_in_namespace(efi_client_mount(uefi={"secure_boot": True}), "bootctl status --no-pager", pid1=True)
    assert "Secure Boot: enabled (user)" in r.stdout
