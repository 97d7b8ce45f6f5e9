"""The ``lfafs`` command line."""

from __future__ import annotations

import argparse
import sys


def _bench(args: argparse.Namespace) -> int:
    from lfafs import bench

    names = sorted(bench.SUITES) if args.suite == "all" else [args.suite]
    missing = [n for n in names if n not in bench.SUITES]
    if missing:
        print(f"lfafs bench: the {missing[0]} benchmark is not available yet; "
              f"available: {', '.join(sorted(bench.SUITES))}", file=sys.stderr)
        return 2
    print(bench.run(names, args.json))
    return 0


def _mount(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import time

    import trio

    from lfafs import daemon
    from lfafs.platform import ProfileError, load_profile

    mnt = os.path.abspath(args.mountpoint)
    why = daemon.check_can_mount(mnt)
    if why:
        print(f"lfafs mount: {why}", file=sys.stderr)
        return 1
    try:
        load_profile(args.profile)  # fail here, with the file and field, before anything starts
    except ProfileError as e:
        print(f"lfafs mount: bad profile: {e}", file=sys.stderr)
        return 1
    passthrough = "/sys/firmware" if args.passthrough else None
    if args.foreground:
        return trio.run(lambda: daemon.serve_foreground(mnt, profile=args.profile, abi=args.kernel_abi,
                                                        cpus=args.cpus, passthrough=passthrough))
    # Background: the same command in the foreground, detached; return once the mount answers.
    cmd = [sys.executable, "-m", "lfafs", "mount", "--foreground", "--profile", str(args.profile),
           "--kernel-abi", args.kernel_abi, mnt]
    if args.cpus:
        cmd[5:5] = ["--cpus", str(args.cpus)]
    if args.passthrough:
        cmd.insert(4, "--passthrough")
    log = open(os.devnull, "wb")
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.ismount(mnt):
            print(f"lfafs: serving the platform at {mnt} (pid {child.pid}); stop with: lfafs umount {mnt}")
            return 0
        if child.poll() is not None:
            err = child.stderr.read().decode(errors="replace").strip() if child.stderr else ""
            print(f"lfafs mount: the daemon exited ({child.returncode}): {err or 'no message'}", file=sys.stderr)
            return 1
        time.sleep(0.02)
    child.terminate()
    print(f"lfafs mount: {mnt} did not come up within 30 s", file=sys.stderr)
    return 1


def _umount(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import time

    mnt = os.path.abspath(args.mountpoint)
    if not os.path.ismount(mnt):
        print(f"lfafs umount: {mnt} is not mounted", file=sys.stderr)
        return 1
    r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"lfafs umount: {r.stderr.strip() or 'fusermount3 failed'}; files may be open under {mnt}",
              file=sys.stderr)
        return 1
    for _ in range(500):
        if not os.path.ismount(mnt):
            return 0
        time.sleep(0.01)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lfafs",
        description="An emulated Arm platform with Live Firmware Activation, "
                    "served as /sys/firmware/lfa over FUSE.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = sub.add_parser("mount", help="serve an emulated platform as /sys/firmware at MOUNTPOINT")
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    m.add_argument("--profile", default="fvp", help="embedded profile name or TOML file (default: fvp)")
    m.add_argument("--kernel-abi", default="v3", choices=["v1", "v2", "v3"],
                   help="which Linux driver series to present (default: v3)")
    m.add_argument("--cpus", type=int, default=None, help="override the profile's CPU count")
    m.add_argument("--passthrough", action="store_true",
                   help="also show the host's other /sys/firmware entries, read-only")
    m.add_argument("--foreground", action="store_true", help="stay attached (for systemd and make run)")
    m.set_defaults(func=_mount)
    u = sub.add_parser("umount", help="stop the lfafs mount at MOUNTPOINT")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.set_defaults(func=_umount)
    b = sub.add_parser("bench", help="run benchmarks and print their figures")
    b.add_argument("suite", nargs="?", default="all", choices=["native", "activation", "fs", "all"],
                   help="which benchmark (default: all)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
