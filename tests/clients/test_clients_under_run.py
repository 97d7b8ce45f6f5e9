"""The real EFI clients, unmodified, under `lfafs run`: what a CI job or a person types.

`lfafs run` binds the emulated tree over /sys/firmware, makes efi/efivars a
mount point of its own (read-only for `mainline`) and exports EFIVARFS_PATH
(docs/efi.md, "Real clients"); nothing here sets up a namespace itself.
Changes go through efivarfs to the variable SP's NV store, which a state
directory keeps across daemon restarts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from lfafs.service import access

from .conftest import FWUPD_PRIVATE_STATE, need

LFAFS = [sys.executable, "-m", "lfafs"]
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


@pytest.fixture(autouse=True)
def needs_fuse():
    why = access.fuse_problem() or (None if shutil.which("unshare") else "no unshare")
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")


def run(script: str, *options: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``script`` (sh) under ``lfafs run [options]``."""
    return subprocess.run([*LFAFS, "run", *options, "--", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def uefi_profile(tmp_path, **uefi) -> str:
    lines = "\n".join(f"{k} = {v!r}".replace("True", "true").replace("'", '"') for k, v in uefi.items())
    path = tmp_path / "uefi.toml"
    path.write_text(f'name = "uefi-test"\nbase = "fvp-den0147"\n\n[uefi]\n{lines}\n')
    return str(path)


@pytest.fixture
def gpt_disk(tmp_path):
    """A loop device with a GPT and one partition: what `efibootmgr -c/-C` builds its HD() path from."""
    if shutil.which("losetup") is None or shutil.which("sfdisk") is None:
        pytest.skip("needs losetup and sfdisk (util-linux, fdisk)")
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    os.truncate(image, 64 << 20)
    subprocess.run(["sfdisk", "-q", str(image)], input="label: gpt\n,32M,U\n", text=True, check=True)
    r = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    yield r.stdout.strip()
    subprocess.run(["losetup", "-d", r.stdout.strip()], check=False)


def test_efivar_lists_and_prints_the_variables():
    need("efivar")
    r = run(f"efivar -l && efivar -p -n {EFI_GLOBAL}-BootOrder")
    assert r.returncode == 0, r.stderr
    assert f"{EFI_GLOBAL}-BootOrder" in r.stdout.split() and f"{EFI_GLOBAL}-SecureBoot" in r.stdout.split()
    assert "Non-Volatile" in r.stdout and "Runtime Service Access" in r.stdout and "01 00 00 00" in r.stdout


def test_efivars_is_a_mount_point_and_libefivar_gets_its_path():
    r = run('findmnt -n -o TARGET,OPTIONS /sys/firmware/efi/efivars; echo "path=$EFIVARFS_PATH"')
    assert r.stdout.startswith("/sys/firmware/efi/efivars rw,"), r.stdout + r.stderr
    assert "path=/sys/firmware/efi/efivars/" in r.stdout


def test_efibootmgr_lists_the_entries():
    need("efibootmgr")
    r = run("efibootmgr -v")
    assert r.returncode == 0, r.stderr
    assert "BootOrder: 0001,0000" in r.stdout and "Timeout: 5 seconds" in r.stdout
    assert "Boot0000* UEFI Shell\tFile(\\EFI\\BOOT\\BOOTAA64.EFI)" in r.stdout
    assert "Boot0001* debian\tFile(\\EFI\\debian\\shimaa64.efi)" in r.stdout


def test_efibootmgr_changes_persist_across_two_runs_with_a_state_dir(tmp_path, gpt_disk):
    need("efibootmgr")
    state = str(tmp_path / "state")
    script = textwrap.dedent(f"""\
        set -e
        efibootmgr -C -d {gpt_disk} -p 1 -L lfafs-test -l '\\EFI\\lfafs\\grubaa64.efi' >/dev/null
        efibootmgr -b 0000 -B >/dev/null
        efibootmgr -o 0002,0001 >/dev/null
        efibootmgr -n 0002 >/dev/null
        efibootmgr -t 3 >/dev/null
        efibootmgr -v
        """)
    first = run(script, "--state-dir", state)
    assert first.returncode == 0, first.stderr
    second = run("efibootmgr -v", "--state-dir", state)  # a new daemon boots from the saved flash
    assert second.returncode == 0, second.stderr
    for out in (first.stdout, second.stdout):
        assert "BootNext: 0002" in out and "BootOrder: 0002,0001" in out and "Timeout: 3 seconds" in out, out
        assert "Boot0000" not in out
        assert "Boot0002* lfafs-test\tHD(1,GPT," in out and "/File(\\EFI\\lfafs\\grubaa64.efi)" in out
    third = run("efibootmgr -N >/dev/null && efibootmgr -T >/dev/null && efibootmgr", "--state-dir", state)
    assert "BootNext" not in third.stdout and "Timeout" not in third.stdout, third.stdout + third.stderr
    assert "BootNext" not in run("efibootmgr", "--state-dir", state).stdout


def test_without_a_state_dir_each_run_boots_the_factory_variables():
    need("efibootmgr")
    assert run("efibootmgr -t 7 >/dev/null && efibootmgr").stdout.count("Timeout: 7 seconds") == 1
    assert "Timeout: 5 seconds" in run("efibootmgr").stdout


def test_a_variable_set_out_of_band_shows_after_a_reset():
    """`lfafs ctl var set` writes the store as a setup menu would; the kernel lists it after its next boot."""
    need("efibootmgr")
    entry = "01000000" + "0400" + "730065007400750070000000" + "7fff0400"  # active, "setup", end of path
    r = run(f"lfafs ctl var set Boot0007 --data {entry} >/dev/null && efibootmgr | grep -c Boot0007 || true; "
            "lfafs ctl reset && efibootmgr")
    assert r.stdout.startswith("0\n"), r.stdout + r.stderr  # efivarfs lists what was there at mount
    assert "Boot0007* setup\n" in r.stdout, r.stdout + r.stderr


def test_mainline_mounts_efivars_read_only(tmp_path):
    need("efibootmgr")
    profile = uefi_profile(tmp_path, configuration="mainline")
    r = run("findmnt -n -o OPTIONS /sys/firmware/efi/efivars; efibootmgr; efibootmgr -t 9; echo rc=$?",
            "--profile", profile)
    assert r.stdout.startswith("ro,"), r.stdout + r.stderr
    assert "BootOrder: 0001,0000" in r.stdout and "rc=0" not in r.stdout
    assert "Read-only file system" in r.stderr


def test_mokutil_reads_the_secure_boot_state(tmp_path):
    need("mokutil")
    r = run("mokutil --sb-state")
    assert r.stdout.splitlines() == ["SecureBoot disabled", "Platform is in Setup Mode"], r.stdout + r.stderr
    r = run("mokutil --sb-state", "--profile", uefi_profile(tmp_path, secure_boot=True))
    assert r.stdout.splitlines() == ["SecureBoot enabled"], r.stdout + r.stderr


def test_fwupdtool_shows_the_esrt_devices_through_uefi_capsule(tmp_path):
    need("fwupdtool")
    esp = tmp_path / "esp"
    (esp / "EFI").mkdir(parents=True)
    r = run(FWUPD_PRIVATE_STATE + "fwupdtool get-devices --plugins uefi-capsule",
            env={"FWUPD_UEFI_ESP_PATH": str(esp)})
    out = r.stdout
    assert out.count("UEFI System Resource Table device (Updated via capsule-on-disk)") == 2, out + r.stderr
    assert "d6d0eea7-fcea-d54b-9782-9934f234b6e4" in out and "132710410" in out  # bl33 2025.10
    assert "05d0e189-53dc-1347-8d2b-500a4b7a3e38" in out


def test_bootctl_status_as_pid1_of_a_pid_namespace(tmp_path):
    """bootctl refuses EFI variables in a container (detect_container()); PID 1 with container= empty is not one."""
    need("bootctl")
    r = run("unshare --pid --fork --mount-proc env container= bootctl status --no-pager")
    assert "Not booted with EFI" not in r.stdout, r.stdout + r.stderr
    assert "Secure Boot: disabled (setup)" in r.stdout
    r = run("unshare --pid --fork --mount-proc env container= bootctl status --no-pager",
            "--profile", uefi_profile(tmp_path, secure_boot=True))
    assert "Secure Boot: enabled (user)" in r.stdout, r.stdout + r.stderr
