"""The ``lfafs`` command line.

``lfafs ctl`` has no code per command: its subcommands, the request each
sends and how the reply is printed come from the control commands'
declarations (commands.py, registry.py). The shell completion
(completion.py) and the man page (manpage.py) are generated from the
parser built here, so they list what exists.
"""

from __future__ import annotations

import argparse
import os
import sys

import lfafs
from lfafs.driver.abi import ABIS
from lfafs.fleet.cli import add_parser as add_fleet_parser
from lfafs.platform import DEFAULT_PROFILE
from lfafs.service.commands import COMMANDS
from lfafs.service.env import LFAFS_SOCKET as ENV_SOCKET  # set by lfafs run: lfafs ctl then needs no --mount


def _bench(args: argparse.Namespace) -> int:
    from lfafs.service import bench

    names = sorted(bench.SUITES) if args.suite == "all" else [args.suite]
    missing = [n for n in names if n not in bench.SUITES]
    if missing:
        print(f"lfafs bench: unknown benchmark {missing[0]!r}; available: {', '.join(sorted(bench.SUITES))}, all",
              file=sys.stderr)
        return 2
    print(bench.run(names, args.json))
    return 0


def _sources(args: argparse.Namespace):
    from lfafs.service.scenario import Sources

    return Sources(args.scenario, tuple(args.stage or ()), tuple(args.fail or ()))


def _mount(args: argparse.Namespace) -> int:
    import trio

    from lfafs.service import daemon, spawn
    from lfafs.service.scenario import ScenarioError

    mnt = os.path.abspath(args.mountpoint)
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else None
    sources = _sources(args)
    profile = args.profile if args.profile is not None or sources else DEFAULT_PROFILE
    if not args.foreground:  # the same command in the foreground, detached; back once it answers
        try:
            d = spawn.start(mnt, profile=profile, abi=args.kernel_abi, cpus=args.cpus,
                            passthrough=args.passthrough, state_dir=state_dir, scenario=sources,
                            allow_other=args.allow_other)
        except spawn.SpawnError as e:
            print(f"lfafs mount: {e}", file=sys.stderr)
            return 1
        print(f"lfafs: serving the platform at {mnt} (pid {d.pid}); stop with: lfafs umount {mnt}")
        return 0
    why = daemon.preflight(mnt, profile=profile, cpus=args.cpus, state_dir=state_dir, scenario=sources)
    if why:
        print(f"lfafs mount: {why}", file=sys.stderr)
        return 1
    try:
        scenario = sources.load(profile) if sources else None
    except ScenarioError as e:
        print(f"lfafs mount: {e}", file=sys.stderr)
        return 1
    passthrough = "/sys/firmware" if args.passthrough else None
    # The log (stderr) says it too, timestamped; a terminal also gets the plain line.
    announce = print if sys.stdout.isatty() else (lambda _line: None)
    return trio.run(lambda: daemon.serve_foreground(mnt, profile=profile or DEFAULT_PROFILE, abi=args.kernel_abi,
                                                    cpus=args.cpus, passthrough=passthrough, state_dir=state_dir,
                                                    announce=announce, scenario=scenario,
                                                    allow_other=args.allow_other))


def _umount(args: argparse.Namespace) -> int:
    from lfafs.service import spawn

    mnt = os.path.abspath(args.mountpoint)
    why = spawn.why_not_unmountable(mnt)  # not mounted, or another filesystem: never unmounted here
    if why:
        print(f"lfafs umount: {why}", file=sys.stderr)
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
    if args.mount:
        client = Client(mount=args.mount)
    elif args.socket or os.environ.get(ENV_SOCKET):
        client = Client(socket_file=args.socket or os.environ[ENV_SOCKET])
    else:
        print(f"{where}: which daemon? give --mount MOUNTPOINT or --socket PATH "
              f"(inside lfafs run, ${ENV_SOCKET} names it)", file=sys.stderr)
        return 1
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
        return run(command, profile=args.profile, abi=args.kernel_abi, cpus=args.cpus,
                   state_dir=os.path.abspath(args.state_dir) if args.state_dir else None,
                   passthrough=args.passthrough, scenario=_sources(args))
    except RunError as e:
        print(f"lfafs run: {e}", file=sys.stderr)
        return 1


def _logs(args: argparse.Namespace) -> int:
    from lfafs.service import logs

    try:
        for line in logs.read(args.mountpoint, kernel=args.kernel, follow=args.follow):
            print(line, flush=True)
    except FileNotFoundError:
        print(f"lfafs logs: no daemon log for {os.path.abspath(args.mountpoint)} ({logs.log_path(args.mountpoint)}): "
              "a daemon started in the background keeps one while it runs, or after it failed; "
              "a --foreground daemon logs to its stderr", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _capture(args: argparse.Namespace) -> int:
    from lfafs.service.capture import CaptureError, capture

    try:
        text = capture(args.source, name=args.name, dmesg=not args.no_dmesg, cpus=args.cpus)
    except CaptureError as e:
        print(f"lfafs capture: {e}", file=sys.stderr)
        return 1
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w") as f:
            f.write(text)
    except OSError as e:
        print(f"lfafs capture: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 1
    serve = next((line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# Serve it with: ")),
                 "lfafs mount --profile FILE MOUNTPOINT")
    print(f"lfafs: wrote {args.output}; serve it with: {serve.replace('FILE', args.output, 1)}", file=sys.stderr)
    return 0


def _completion(args: argparse.Namespace) -> int:
    from lfafs.service.completion import script

    sys.stdout.write(script(args.shell, parser()))
    return 0


def _man(args: argparse.Namespace) -> int:
    from lfafs.service.manpage import manpage

    sys.stdout.write(manpage(parser()))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from lfafs.service.demo import demo

    return demo()


def _profiles(args: argparse.Namespace) -> int:
    """The embedded profiles, one line each: name, CPUs, DRAM, components, what it is."""
    from lfafs.platform import DEFAULT_PROFILE, embedded_names, load_profile

    for name in embedded_names():
        p = load_profile(name)
        dram = f"{p.dram_size >> 40} TB" if p.dram_size >= 1 << 40 and not p.dram_size % (1 << 40) else \
            f"{p.dram_size >> 30} GB"
        mark = " (default)" if name == DEFAULT_PROFILE else ""
        comps = ",".join(c.name for c in p.components)
        print(f"{name + mark:<24} {p.cpus:>3} CPUs {dram:>8}  {comps:<36} {p.description}")
    return 0


def _platform_options(p: argparse.ArgumentParser, *, run: bool) -> None:
    """What the emulated platform is: the same options for ``mount`` and ``run``."""
    p.add_argument("--profile", metavar="NAME|FILE",
                   help=f"embedded profile name or TOML file (default: the scenario's, else {DEFAULT_PROFILE})")
    p.add_argument("--kernel-abi", default="v3", choices=list(ABIS),
                   help="which Linux driver series to present (default: v3)")
    p.add_argument("--cpus", type=int, default=None, help="override the profile's CPU count")
    if run:
        p.add_argument("--passthrough", action=argparse.BooleanOptionalAction, default=True,
                       help="show the host's other /sys/firmware entries, read-only (default: on)")
    else:
        p.add_argument("--passthrough", action="store_true",
                       help="also show the host's other /sys/firmware entries, read-only")
    p.add_argument("--state-dir", metavar="DIR",
                   help="keep the platform's flash (versions, staged images, components) here across restarts")
    p.add_argument("--scenario", metavar="FILE",
                   help="a TOML scenario: profile, staged images, faults, CPUs off, timed events")
    p.add_argument("--stage", action="append", metavar="COMPONENT=VERSION",
                   help="stage an image before the driver probes, e.g. rmm=1.2 (repeatable)")
    p.add_argument("--fail", action="append", metavar="COMPONENT:STAGE[:STATUS][:once]",
                   help="arm a fault, e.g. rmm:load:LFA_AUTH_ERROR:once; also call-again=N, latency=S, "
                        "beyond-tf-a (repeatable)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lfafs",
        description="An emulated Arm platform with Live Firmware Activation, "
                    "served as /sys/firmware/lfa over FUSE.",
    )
    p.add_argument("--version", action="version", version=f"lfafs {lfafs.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = sub.add_parser("mount", help="serve an emulated platform as /sys/firmware at MOUNTPOINT",
                       description="Serve an emulated platform as /sys/firmware at MOUNTPOINT; return once "
                                   "the mount and its control socket answer (or stay attached with --foreground).")
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    _platform_options(m, run=False)
    m.add_argument("--foreground", action="store_true", help="stay attached (for systemd and make run)")
    m.add_argument("--allow-other", action="store_true",
                   help="let every user use the mount, with the modes and owners /sys/firmware has "
                        "(default: only the user who mounted it)")
    m.set_defaults(func=_mount)
    u = sub.add_parser("umount", help="stop the lfafs mount at MOUNTPOINT")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.set_defaults(func=_umount)
    c = sub.add_parser("ctl", help="drive a running mount: stage updates, inject faults, read the trace")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--mount", metavar="MOUNTPOINT", help="the mountpoint of the daemon")
    where.add_argument("--socket", metavar="PATH",
                       help=f"the daemon's control socket (default: ${ENV_SOCKET}, which lfafs run sets)")
    cs = c.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    COMMANDS.add_parsers(cs)
    c.set_defaults(func=_ctl)
    r = sub.add_parser("run", help="run COMMAND with the emulated tree as /sys/firmware (private namespace)",
                       description="Run COMMAND, unmodified, in a private mount namespace whose /sys/firmware/lfa "
                                   f"is emulated; ${ENV_SOCKET} names the control socket, so lfafs ctl works inside.")
    _platform_options(r, run=True)
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    r.set_defaults(func=_run)
    lg = sub.add_parser("logs", help="print the log of the daemon serving MOUNTPOINT (and its kernel log)")
    lg.add_argument("mountpoint", metavar="MOUNTPOINT")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing as lines arrive (Ctrl-C stops)")
    lg.add_argument("--kernel", action="store_true", help="only the modelled kernel log (what dmesg would show)")
    lg.set_defaults(func=_logs)
    cap = sub.add_parser("capture", help="record a machine's /sys/firmware/lfa (or a copy of it) as a profile",
                         description="Read /sys/firmware/lfa (or a directory copied from it with cp -r) and write "
                                     "a profile that lfafs mount --profile FILE serves back.")
    cap.add_argument("source", nargs="?", default="/sys/firmware/lfa", metavar="DIR",
                     help="the lfa directory to read (default: /sys/firmware/lfa)")
    cap.add_argument("-o", "--output", metavar="FILE", help="write the profile here (default: standard output)")
    cap.add_argument("--name", help="the profile's name (default: captured-<hostname>)")
    cap.add_argument("--cpus", type=int, help="the CPU count to record (default: this machine's for the live "
                     "directory, else the default profile's)")
    cap.add_argument("--no-dmesg", action="store_true", help="do not read the LFA driver's lines from dmesg")
    cap.set_defaults(func=_capture)
    d = sub.add_parser("demo", help="a short guided tour on the embedded default platform")
    d.set_defaults(func=_demo)
    pr = sub.add_parser("profiles", help="list the embedded platform profiles, one line each")
    pr.set_defaults(func=_profiles)
    add_fleet_parser(sub)
    b = sub.add_parser("bench", help="run benchmarks and print their figures")
    b.add_argument("suite", nargs="?", default="all",
                   help="which benchmark: native, activation, fs, scale, fleet, efi, or all (the default)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=_bench)
    comp = sub.add_parser("completion", help="print a shell completion script",
                          description="Print a completion script: eval \"$(lfafs completion bash)\", or save "
                                      "lfafs completion zsh as _lfafs in a directory of $fpath.")
    comp.add_argument("shell", choices=["bash", "zsh"])
    comp.set_defaults(func=_completion)
    man = sub.add_parser("man", help="print the manual page (roff): lfafs man | man -l -")
    man.set_defaults(func=_man)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback for the person: one line, and where to report it
        where = getattr(args, "command", None) or "lfafs"
        print(f"lfafs {where}: internal error: {type(e).__name__}: {e}; please report it with the command line"
              .replace("lfafs lfafs", "lfafs"), file=sys.stderr)
        return 70  # EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
