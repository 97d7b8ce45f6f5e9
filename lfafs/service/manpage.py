"""`lfafs man`: the manual page, in roff, generated from the command tree.

Every command and option comes from the parser, whose ``lfafs ctl`` part
the control-command registry builds, so the page lists what exists;
docs/lfafs.1 is this output (``make man``), and tests/service/test_cli.py
holds both to every command. ``lfafs man | man -l -`` reads it.
"""

from __future__ import annotations

import argparse

import lfafs
from lfafs.service._argtree import Node, Option, tree

ENVIRONMENT = (
    ("LFAFS_SOCKET", "The control socket lfafs ctl uses when given no --mount or --socket. lfafs run sets it "
                     "for its command to the socket of the daemon behind the emulated /sys/firmware."),
    ("LFAFS_MOUNT", "Set by lfafs run: where the emulated tree is mounted outside the command's namespace."),
    ("XDG_RUNTIME_DIR", "An ordinary user's daemons keep their control socket and log under "
                        "$XDG_RUNTIME_DIR/lfafs, or /tmp/lfafs-UID when it is unset (root's: /run/lfafs). "
                        "A directory another user owns or may write is refused."),
)


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line if line[:1] in ".'" else line) for line in text.splitlines())


def _option(o: Option) -> str:
    flags = ", ".join(f"\\fB{_roff(f)}\\fR" for f in o.flags)
    if o.takes_value:
        value = "{" + ",".join(o.choices) + "}" if o.choices else (o.metavar or "VALUE")
        flags += f" \\fI{_roff(value)}\\fR"
    return f".TP\n{flags}\n{_roff(o.help or '')}"


def _command(n: Node) -> list[str]:
    out = [f".SS {_roff(' '.join(n.path))}", _roff(n.description or n.help), ".PP", _roff(n.usage)]
    for p in n.positionals:
        out.append(_option(p))
    for o in n.options:
        if o.flags[0] not in ("-h", "--help"):
            out.append(_option(o))
    return out


def manpage(parser: argparse.ArgumentParser) -> str:
    root = tree(parser)
    out = [
        f'.TH LFAFS 1 "" "lfafs {lfafs.__version__}" "User Commands"',
        ".ad l",  # left-aligned: usage lines are long
        ".SH NAME",
        "lfafs \\- an emulated Arm platform with Live Firmware Activation, served as /sys/firmware/lfa",
        ".SH SYNOPSIS",
        *(f"\\fBlfafs {_roff(c.path[-1])}\\fR ...\n.br" for c in root.children),
        ".SH DESCRIPTION",
        _roff(root.description),
        ".PP",
        _roff("A Trio daemon owns the emulated platform (TF-A's EL3 LFA agent, the firmware components and a "
              "TF-RMM model) and serves the Linux lfa_fw.c driver's files over FUSE. Tools that hard-code "
              "/sys/firmware/lfa run unmodified under lfafs run."),
        ".SH COMMANDS",
    ]
    for node in root.walk():
        if node is root or (node.children and not node.options[1:] and not node.positionals):
            continue  # the root, and groups that only hold subcommands
        out += _command(node)
    out.append(".SH OPTIONS")
    out += [_option(o) for o in root.options if o.flags[0] not in ("-h", "--help")]
    out.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        out += [f".TP\n\\fB{name}\\fR", _roff(text)]
    out += [
        ".SH EXIT STATUS",
        _roff("0 on success; 1 with one line on stderr saying what was wrong and what to do. lfafs run exits "
              "with its command's status, 128+N for a command killed by signal N."),
        ".SH FILES",
        ".TP\n\\fI/run/lfafs/\\fR\\,HASH\\/\\fI/\\fR (root), \\fI$XDG_RUNTIME_DIR/lfafs/\\fR\\,HASH\\/\\fI/\\fR "
        "or \\fI/tmp/lfafs-\\fR\\,UID\\/\\fI/\\fR\\,HASH\\/\\fI/\\fR",
        _roff("control.sock and daemon.log of the daemon serving one mountpoint; removed when it stops."),
        ".SH SEE ALSO",
        _roff("docs/usage.md, docs/testing-your-tool.md and docs/control-protocol.md in the lfafs sources; "
              "fusermount3(1), unshare(1)."),
    ]
    return "\n".join(out) + "\n"
