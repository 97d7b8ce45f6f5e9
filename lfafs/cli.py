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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lfafs",
        description="An emulated Arm platform with Live Firmware Activation, "
                    "served as /sys/firmware/lfa over FUSE.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
