"""The ``lfafs`` command line.

``lfafs ctl`` has no code per command: its subcommands, the request each
sends and how the reply is printed come from the control commands'
declarations (commands.py, registry.py).
"""

from __future__ import annotations

import argparse
import sys

from lfafs.driver.abi import ABIS
from lfafs.platform import DEFAULT_PROFILE
from lfafs.service.commands import COMMANDS


def _bench(args: argparse.Namespace) -> int:
    from lfafs.service import bench

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

    import trio

    from lfafs.service import daemon, spawn

    mnt = os.path.abspath(args.mountpoint)
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else None
    if not args.foreground:  # the same command in the foreground, detached; back once it answers
        try:
            d = spawn.start(mnt, profile=args.profile, abi=args.kernel_abi, cpus=args.cpus,
                            passthrough=args.passthrough, state_dir=state_dir)
        except spawn.SpawnError as e:
            print(f"lfafs mount: {e}", file=sys.stderr)
            return 1
        print(f"lfafs: serving the platform at {mnt} (pid {d.pid}); stop with: lfafs umount {mnt}")
        return 0
    why = daemon.preflight(mnt, profile=args.profile, cpus=args.cpus, state_dir=state_dir)
    if why:
        print(f"lfafs mount: {why}", file=sys.stderr)
        return 1
    passthrough = "/sys/firmware" if args.passthrough else None
    return trio.run(lambda: daemon.serve_foreground(mnt, profile=args.profile, abi=args.kernel_abi,
                                                    cpus=args.cpus, passthrough=passthrough,
                                                    state_dir=state_dir))


def _umount(args: argparse.Namespace) -> int:
    import os

    from lfafs.service import spawn

    mnt = os.path.abspath(args.mountpoint)
    if not os.path.ismount(mnt):
        print(f"lfafs umount: {mnt} is not mounted", file=sys.stderr)
        return 1
    err = spawn.unmount(mnt)
    if err:
        print(f"lfafs umount: {err}; files may be open under {mnt}", file=sys.stderr)
        return 1
    return 0


def _ctl(args: argparse.Namespace) -> int:
    """Any control command: its request from the registry entry, its reply printed by the entry."""
    from lfafs.service.control import Client, ControlError

    command = args.ctl
    where = "lfafs ctl " + " ".join(command.words)
    client = Client(mount=args.mount) if args.mount else Client(socket_file=args.socket)
    try:
        request = command.request(args)
        if command.streams and request.pop("follow", False):
            try:
                for ev in client.follow(command.name, **request):
                    print(command.show_event(ev), flush=True)
            except KeyboardInterrupt:
                pass
            return 0
        result = client.call(command.name, **request)
    except (ControlError, ValueError) as e:
        print(f"{where}: {getattr(e, 'message', e)}", file=sys.stderr)
        return 1
    if command.show is not None:
        command.show(result, args)
    return 0


def _run(args: argparse.Namespace) -> int:
    from lfafs.service.runner import RunError, run

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    try:
        return run(command, profile=args.profile, abi=args.kernel_abi, cpus=args.cpus)
    except RunError as e:
        print(f"lfafs run: {e}", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    from lfafs.service.demo import demo

    return demo()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lfafs",
        description="An emulated Arm platform with Live Firmware Activation, "
                    "served as /sys/firmware/lfa over FUSE.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = sub.add_parser("mount", help="serve an emulated platform as /sys/firmware at MOUNTPOINT")
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    m.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"embedded profile name or TOML file (default: {DEFAULT_PROFILE})")
    m.add_argument("--kernel-abi", default="v3", choices=list(ABIS),
                   help="which Linux driver series to present (default: v3)")
    m.add_argument("--cpus", type=int, default=None, help="override the profile's CPU count")
    m.add_argument("--passthrough", action="store_true",
                   help="also show the host's other /sys/firmware entries, read-only")
    m.add_argument("--state-dir", metavar="DIR",
                   help="keep the platform's flash (versions, staged images, components) here across restarts")
    m.add_argument("--foreground", action="store_true", help="stay attached (for systemd and make run)")
    m.set_defaults(func=_mount)
    u = sub.add_parser("umount", help="stop the lfafs mount at MOUNTPOINT")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.set_defaults(func=_umount)
    c = sub.add_parser("ctl", help="drive a running mount: stage updates, inject faults, read the trace")
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument("--mount", metavar="MOUNTPOINT", help="the mountpoint of the daemon")
    where.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    cs = c.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    COMMANDS.add_parsers(cs)
    c.set_defaults(func=_ctl)
    r = sub.add_parser("run", help="run COMMAND with the emulated tree as /sys/firmware (private namespace)")
    r.add_argument("--profile", default=DEFAULT_PROFILE)
    r.add_argument("--kernel-abi", default="v3", choices=list(ABIS))
    r.add_argument("--cpus", type=int, default=None)
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    r.set_defaults(func=_run)
    d = sub.add_parser("demo", help="a short guided tour on the embedded default platform")
    d.set_defaults(func=_demo)
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
