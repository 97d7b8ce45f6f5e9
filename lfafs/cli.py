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
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else None
    if state_dir:
        from lfafs.platform import Platform, PlatformError
        from lfafs.state import StateDir, StateError

        try:  # check the saved flash before detaching, so errors reach the person
            saved = StateDir(state_dir).load()
            if saved is not None:
                Platform.from_profile(args.profile, cpus=args.cpus).restore_flash(*saved)
        except (StateError, PlatformError) as e:
            print(f"lfafs mount: {e}", file=sys.stderr)
            return 1
    if args.foreground:
        return trio.run(lambda: daemon.serve_foreground(mnt, profile=args.profile, abi=args.kernel_abi,
                                                        cpus=args.cpus, passthrough=passthrough,
                                                        state_dir=state_dir))
    # Background: the same command in the foreground, detached; return once the mount answers.
    cmd = [sys.executable, "-m", "lfafs", "mount", "--foreground", "--profile", str(args.profile),
           "--kernel-abi", args.kernel_abi, mnt]
    if args.cpus:
        cmd[5:5] = ["--cpus", str(args.cpus)]
    if args.passthrough:
        cmd.insert(4, "--passthrough")
    if state_dir:
        cmd[4:4] = ["--state-dir", state_dir]
    log = open(os.devnull, "wb")
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.monotonic() + 30
    from lfafs.control import Client, ControlError

    while time.monotonic() < deadline:
        if os.path.ismount(mnt):
            try:
                Client(mount=mnt, timeout=5).call("ping")
            except ControlError:
                pass
            else:
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


def _print_status(st: dict) -> None:
    print(f"platform {st['profile']} at {st['mountpoint']} (kernel ABI {st['kernel_abi']})")
    print("cpus: " + " ".join(f"{c['cpu']}:{'on' if c['on'] else 'off'}" for c in st["cpus"]))
    print(f"{'component':<10} {'version':<9} {'staged':<9} {'activator':<9} guid")
    for c in st["components"]:
        print(f"{c['name']:<10} {c['version']:<9} {c['staged_version'] or '-':<9} {c['activator']:<9} {c['guid']}"
              + (f"  faults: {'; '.join(c['faults'])}" if c["faults"] else ""))
    a = st["agent"]
    print(f"agent: {a['component'] or 'idle'} prime={a['prime']} in_progress={a['activation_in_progress']}")
    print(f"realm world: {'enabled' if st['realm']['enabled'] else 'DISABLED: ' + st['realm']['failure']}")
    r = st["last_report"]
    if r:
        print(f"last activation: {r['component']} {r['from_version']} -> {r['to_version']} status {r['status']}"
              f" on {r['cpus']} CPUs, {r['total_s'] * 1e3:.1f} ms"
              f" (prime {r['prime_s'] * 1e3:.1f}, rendezvous {r['rendezvous_s'] * 1e3:.1f},"
              f" boot {r['leader_boot_s'] * 1e3:.1f}), {r['dynamic_pages_preserved']} dynamic pages kept"
              + (f"; {r['reason']}" if r["reason"] else ""))


def _ctl(args: argparse.Namespace) -> int:
    import base64
    import json

    from lfafs.control import Client, ControlError

    client = Client(mount=args.mount, socket_file=None) if args.mount else Client(socket_file=args.socket)
    c = args.ctl_command
    try:
        if c == "status":
            st = client.status()
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
            return 0
        if c == "stage":
            kw: dict = {"component": args.component}
            if args.version:
                kw["version"] = args.version
            if args.image:
                try:
                    with open(args.image, "rb") as f:
                        kw["image"] = base64.b64encode(f.read()).decode()
                except OSError as e:
                    print(f"lfafs ctl stage: cannot read {args.image}: {e.strerror}", file=sys.stderr)
                    return 1
            r = client.call("stage", **kw)
            print(f"staged {r['component']} {r['staged_version']}: it reports activation pending")
            return 0
        if c == "unstage":
            client.call("unstage", component=args.component)
            return 0
        if c == "fail":
            kw = {"component": args.component, "at": args.at, "once": args.once}
            if args.status:
                kw["status"] = args.status
            if args.call_again:
                kw["call_again"] = args.call_again
            if args.latency:
                kw["latency"] = args.latency
            r = client.call("fail", **kw)
            print(f"{r['component']}: {r['fault']}")
            return 0
        if c == "clear-faults":
            kw = {}
            if args.component:
                kw["component"] = args.component
            if args.at:
                kw["at"] = args.at
            client.call("clear-faults", **kw)
            return 0
        if c == "notify":
            r = client.call("notify")
            for rep in r["activations"]:
                print(f"activated {rep['component']} {rep['from_version']} -> {rep['to_version']} status {rep['status']}")
            return 0
        if c == "cpu":
            client.call("cpu", cpu=args.cpu, on=args.state == "on")
            return 0
        if c in ("trace", "dmesg"):
            if args.follow:
                try:
                    for ev in client.follow(c):
                        print(_trace_line(ev) if c == "trace" else ev["line"], flush=True)
                except KeyboardInterrupt:
                    return 0
                return 0
            if c == "trace":
                for ev in client.call("trace", limit=args.limit):
                    print(_trace_line(ev))
            else:
                for line in client.call("dmesg"):
                    print(line)
            return 0
        if c == "reset":
            client.call("reset")
            return 0
        if c == "component":
            if args.action == "add":
                kw = {"name": args.name, "guid": args.guid, "version": args.version, "activator": args.activator,
                      "cpu_rendezvous": args.cpu_rendezvous, "may_reset_cpu": args.may_reset_cpu}
                r = client.call("component-add", **kw)
                print(f"added {r['component']} as seq id {r['index']} (seen by the driver at its next rescan)")
            else:
                client.call("component-remove", component=args.name)
            return 0
    except ControlError as e:
        print(f"lfafs ctl {c}: {e.message}", file=sys.stderr)
        return 1
    print(f"lfafs ctl: unknown command {c}", file=sys.stderr)
    return 2


def _trace_line(ev: dict) -> str:
    args = " ".join(f"{a:#x}" for a in ev["args"])
    res = " ".join(f"{r:#x}" for r in ev["result"])
    return f"{ev['start']:12.6f} cpu{ev['cpu']} {ev['world']:<6} {ev['name']:<22} ({args}) -> ({res}) {ev['duration'] * 1e6:.0f}us"


def _run(args: argparse.Namespace) -> int:
    from lfafs.runner import RunError, run

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    try:
        return run(command, profile=args.profile, abi=args.kernel_abi, cpus=args.cpus)
    except RunError as e:
        print(f"lfafs run: {e}", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    from lfafs.demo import demo

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
    m.add_argument("--profile", default="fvp", help="embedded profile name or TOML file (default: fvp)")
    m.add_argument("--kernel-abi", default="v3", choices=["v1", "v2", "v3"],
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
    st = cs.add_parser("status", help="components, versions, pending, agent state, last activation")
    st.add_argument("--json", action="store_true")
    sg = cs.add_parser("stage", help="deliver a new image: the component reports activation pending")
    sg.add_argument("component", help="GUID or name")
    sg.add_argument("--version", help="MAJOR.MINOR (a signed image is built when no --image is given)")
    sg.add_argument("--image", help="an image file to stage as is (authenticated at PRIME)")
    us = cs.add_parser("unstage", help="withdraw a staged image")
    us.add_argument("component")
    fl = cs.add_parser("fail", help="inject a fault at a stage of a component's activation")
    fl.add_argument("component")
    fl.add_argument("--at", required=True, choices=["load", "prime", "notify", "activate", "boot"])
    kind = fl.add_mutually_exclusive_group(required=False)
    kind.add_argument("--status", help="an LFA status, e.g. LFA_AUTH_ERROR")
    kind.add_argument("--call-again", type=int, metavar="N", help="answer 'call again' N times")
    fl.add_argument("--latency", type=float, metavar="SECONDS", help="added time at that stage")
    fl.add_argument("--once", action="store_true", help="only the next time (default: until cleared)")
    cf = cs.add_parser("clear-faults", help="remove injected faults")
    cf.add_argument("component", nargs="?")
    cf.add_argument("--at", choices=["load", "prime", "notify", "activate", "boot"])
    cs.add_parser("notify", help="the platform notification behind auto_activate (ACPI ARML0003 / arm,lfa IRQ)")
    cp = cs.add_parser("cpu", help="power a CPU on or off (PSCI)")
    cp.add_argument("cpu", type=int)
    cp.add_argument("state", choices=["on", "off"])
    tr = cs.add_parser("trace", help="the SMC trace")
    tr.add_argument("--follow", "-f", action="store_true")
    tr.add_argument("--limit", type=int, default=50)
    dm = cs.add_parser("dmesg", help="the driver's kernel log")
    dm.add_argument("--follow", "-f", action="store_true")
    cs.add_parser("reset", help="platform cold reset: RAM state is lost, flash is kept")
    co = cs.add_parser("component", help="add or remove a component of the LFA table")
    co.add_argument("action", choices=["add", "remove"])
    co.add_argument("name")
    co.add_argument("--guid")
    co.add_argument("--version", default="1.0")
    co.add_argument("--activator", default="generic", choices=["none", "generic", "sp"])
    co.add_argument("--cpu-rendezvous", default="required", choices=["required", "optional"])
    co.add_argument("--may-reset-cpu", action="store_true")
    c.set_defaults(func=_ctl)
    r = sub.add_parser("run", help="run COMMAND with the emulated tree as /sys/firmware (private namespace)")
    r.add_argument("--profile", default="fvp")
    r.add_argument("--kernel-abi", default="v3", choices=["v1", "v2", "v3"])
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
