"""``lfafs bench efi``: UEFI variables through the mount's efivarfs, efibootmgr, and a live SP activation.

docs/performance.md, 'UEFI variables' records the output. As in fs.py, the
lfafs mount and the floor (a constant mfusepy file of the variable's size,
readable and writable, at the same depth as efi/efivars/Name-guid) are
served in this process, so both pay for the same interpreter.

Three figures:

- read and write of one variable (4 attribute bytes + 16 data bytes) through
  efivarfs, against the floor;
- ``efibootmgr -v`` with 32 boot entries, made out of band before the kernel
  boots (lfafs/platform/uefi_setup.py, the setup menu), run in a private
  mount namespace with EFIVARFS_PATH as ``lfafs run`` runs it; beside it the
  same namespace running ``true``, the part that is not efibootmgr;
- reads and writes a second of that variable while the variable SP (sp2) is
  live-activated with ``force_cpu_rendezvous = 0`` (docs/efi.md: the SP is
  stopped, every request is FFA_ERROR BUSY, so ENOSPC) against idle.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import trio

from lfafs.service.bench._beside_floor import ConstantFloor, beside_floor

BENCH_GUID = uuid.UUID("6c666166-7300-4669-8c6c-0000000000be")
BENCH_NAME = "LfafsBench"
DATA = bytes(range(16))
NV_BS_RT = 0x7
VALUE = struct.pack("<I", NV_BS_RT) + DATA  # what efivarfs reads and writes: attributes, then data
BOOT_ENTRIES = 32
SP_GUID = "c3ff2127-7e41-a9f8-05af-24a1afa33474"  # sp2, the variable SP of fvp-den0147
ACTIVATION_SECONDS = 1.0
# 32 Boot#### + BootOrder + Timeout + U-Boot's ten + ours: over Trusted Services' 35 slots
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10  # linux/fs.h
# the SP stays stopped for latency.activate (spmd_lsp.py); an injected fault's latency comes before START
PROFILE = f"""name = "bench-efi"
base = "fvp-den0147"

[uefi]
max_variables = 64

[[component]]
name = "sp2"
guid = "{SP_GUID}"
activator = "sp"
version = "1.0"
latency = {{ activate = {ACTIVATION_SECONDS} }}
"""


def _read(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    finally:
        os.close(fd)


def _write(path: str, data: bytes = VALUE) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _make_mutable(path: str) -> None:
    """``chattr -i``: efivarfs makes a variable outside efivar_validate()'s list immutable, as efivar -w knows."""
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = bytearray(struct.pack("<l", 0))
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("<l", struct.unpack("<l", flags)[0] & ~FS_IMMUTABLE_FL))
    finally:
        os.close(fd)


def _per_op(op, path: str, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        op(path)
    return (time.perf_counter() - t0) / n


def _workload(path: str, seconds: float) -> tuple[int, int]:
    """Alternate reads and writes of ``path`` for ``seconds``: (succeeded, refused with ENOSPC)."""
    ok = refused = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for op in (_read, _write):
            try:
                op(path)
                ok += 1
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                refused += 1
    return ok, refused


def _in_namespace(mnt: str, command: str) -> tuple[float, subprocess.CompletedProcess]:
    """``command`` with the mount at /sys/firmware and efivars a mount point of its own, as lfafs run does."""
    setup = f"mount --bind {mnt} /sys/firmware && mount --bind {mnt}/efi/efivars /sys/firmware/efi/efivars"
    env = {**os.environ, "EFIVARFS_PATH": "/sys/firmware/efi/efivars/"}
    t0 = time.perf_counter()
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{setup} && {command}"],
                       capture_output=True, text=True, env=env, timeout=120)
    return time.perf_counter() - t0, r


def _boot_entries(platform) -> None:
    """Boot0000..Boot001F and a BootOrder naming them, set out of band before the kernel boots."""
    from lfafs.platform import uefi_setup
    from lfafs.platform.uefi_profile import load_option
    from lfafs.uefi import EFI_GLOBAL_VARIABLE

    for n in range(BOOT_ENTRIES):
        uefi_setup.set_variable(platform, f"Boot{n:04X}", EFI_GLOBAL_VARIABLE, NV_BS_RT,
                                load_option(f"bench entry {n}", f"\\EFI\\bench{n}\\grubaa64.efi"))
    uefi_setup.set_variable(platform, "BootOrder", EFI_GLOBAL_VARIABLE, NV_BS_RT,
                            struct.pack(f"<{BOOT_ENTRIES}H", *range(BOOT_ENTRIES)))
    uefi_setup.set_variable(platform, BENCH_NAME, BENCH_GUID, NV_BS_RT, DATA)


def efi(rounds: int = 7, n: int = 200, client_rounds: int = 5) -> dict:
    """Variable read/write against the floor, efibootmgr -v with 32 entries, a workload during an SP activation."""
    from lfafs.service.daemon import load_platform

    for tool in ("unshare", "efibootmgr"):
        if shutil.which(tool) is None:
            raise SystemExit(f"lfafs bench efi: needs {tool} (Debian: util-linux, efibootmgr)")
    tmp = tempfile.mkdtemp(prefix="lfafs-bench-efi-")
    profile = os.path.join(tmp, "bench-efi.toml")
    with open(profile, "w") as f:
        f.write(PROFILE)
    platform = load_platform(profile, cpus=2)
    _boot_entries(platform)
    try:
        floor_ops = ConstantFloor(VALUE, writable=True)
        with beside_floor("efi", floor_ops, tmp, opened=(platform, None)) as (m, lfa_mnt, floor_mnt):
            var = os.path.join(lfa_mnt, "efi", "efivars", f"{BENCH_NAME}-{BENCH_GUID}")
            const = os.path.join(floor_mnt, "efi", "efivars", f"{BENCH_NAME}-{BENCH_GUID}")
            with open(var, "rb") as f:
                if f.read() != VALUE:
                    raise SystemExit(f"lfafs bench efi: {var} does not read back what was set")
            _make_mutable(var)
            best = {k: float("inf") for k in ("floor_read", "read", "floor_write", "write")}
            for _ in range(rounds):  # interleaved: drift hits all four alike
                best["floor_read"] = min(best["floor_read"], _per_op(_read, const, n))
                best["read"] = min(best["read"], _per_op(_read, var, n))
                best["floor_write"] = min(best["floor_write"], _per_op(_write, const, n))
                best["write"] = min(best["write"], _per_op(_write, var, n))

            client = {"efibootmgr": float("inf"), "namespace": float("inf")}
            for _ in range(client_rounds):
                dt, r = _in_namespace(lfa_mnt, "efibootmgr -v")
                if r.returncode != 0 or r.stdout.count("bench entry") != BOOT_ENTRIES:
                    raise SystemExit(f"lfafs bench efi: efibootmgr -v failed ({r.returncode}): {r.stderr.strip()}")
                client["efibootmgr"] = min(client["efibootmgr"], dt)
                dt, r = _in_namespace(lfa_mnt, "true")
                client["namespace"] = min(client["namespace"], dt)

            idle_ok, idle_refused = _workload(var, ACTIVATION_SECONDS)

            def call(fn):
                return trio.from_thread.run_sync(fn, trio_token=m.token)

            major, minor = call(lambda: m.platform.component("sp2").version)
            call(lambda: m.platform.stage("sp2", (major, minor + 1)))
            sp = os.path.join(lfa_mnt, "lfa", SP_GUID)
            _read(os.path.join(sp, "activation_pending"))  # the agent learns of the update
            _write(os.path.join(sp, "force_cpu_rendezvous"), b"0\n")  # else no EFI call overlaps (docs/efi.md)
            outcome: dict = {}

            def activate() -> None:
                try:
                    _write(os.path.join(sp, "activate"), b"1\n")
                    outcome["activate"] = 0
                except OSError as e:
                    outcome["activate"] = e.errno

            writer = threading.Thread(target=activate)
            writer.start()
            time.sleep(0.1)
            t0 = time.perf_counter()
            during_ok, during_refused = _workload(var, ACTIVATION_SECONDS * 0.8)
            during_s = time.perf_counter() - t0
            writer.join()
            if outcome.get("activate") != 0:
                raise SystemExit(f"lfafs bench efi: the SP activation failed: errno {outcome.get('activate')}")
            after_ok, _ = _workload(var, 0.2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "efi_floor_read_us": best["floor_read"] * 1e6,
        "efi_read_us": best["read"] * 1e6,
        "efi_floor_write_us": best["floor_write"] * 1e6,
        "efi_write_us": best["write"] * 1e6,
        "efibootmgr_v_ms": client["efibootmgr"] * 1e3,
        "efibootmgr_namespace_ms": client["namespace"] * 1e3,
        "idle_ops_per_s": idle_ok / ACTIVATION_SECONDS,
        "during_activation_ok_per_s": during_ok / during_s,
        "during_activation_enospc_per_s": during_refused / during_s,
        "after_activation_ok": after_ok,
    }
    out["ratios"] = {"read_over_floor": best["read"] / best["floor_read"],
                     "write_over_floor": best["write"] / best["floor_write"],
                     "during_over_idle_attempts": (during_ok + during_refused) / during_s / out["idle_ops_per_s"]}
    out["targets"] = {"read_over_floor <= 1.5": out["ratios"]["read_over_floor"] <= 1.5,
                      "write_over_floor <= 1.5": out["ratios"]["write_over_floor"] <= 1.5}
    return out
