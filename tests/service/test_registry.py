"""Each control command is declared once; the CLI, the socket and the protocol document agree.

The command list is read three independent ways: from the ``lfafs ctl``
argparse tree, from a real daemon's answers on its socket, and from the
'Commands' table of docs/control-protocol.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import socket
import subprocess
import sys

import pytest
import trio

from lfafs.service import cli
from lfafs.service.commands import COMMANDS
from lfafs.service.control import ControlError, socket_path
from lfafs.service.registry import Arg, Registry

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "control-protocol.md"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """``lfafs ctl`` subcommands as protocol names: ``component add`` is ``component-add``."""
    ctl = _subcommands(cli.parser())["ctl"]
    out = {}
    for word, p in _subcommands(ctl).items():
        nested = _subcommands(p)
        if nested:
            out.update({f"{word}-{action}": q for action, q in nested.items()})
        else:
            out[word] = p
    return out


def doc_commands() -> dict[str, set[str]]:
    """The 'Commands' table of docs/control-protocol.md: command -> the argument names in its args column."""
    text = DOC.read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`([a-z-]+)`\s*\|([^|]*)\|", line)
        if m:
            out[m[1]] = set(re.findall(r"`([a-z_]+)`", m[2]))
    return out


def request(mnt: str, obj: dict) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(socket_path(mnt))
        s.sendall(json.dumps(obj).encode() + b"\n")
        return json.loads(s.makefile().readline())


def test_the_cli_the_socket_and_the_document_list_the_same_commands(daemon):
    declared = set(COMMANDS.names())
    assert set(cli_commands()) == declared

    reply = request(daemon.mountpoint, {"cmd": "no-such-command"})
    assert reply["error"]["code"] == "unknown-command"
    assert set(reply["error"]["message"].split("commands: ", 1)[1].split(", ")) == declared

    assert set(doc_commands()) == declared


def test_each_command_takes_the_documented_arguments_on_the_socket(daemon):
    documented = doc_commands()
    for name in COMMANDS.names():
        reply = request(daemon.mountpoint, {"cmd": name, "args": {"no_such_argument": 1}})
        assert reply["error"]["code"] == "bad-request", name
        known = reply["error"]["message"].split("(known: ", 1)[1].rstrip(")")
        assert (set() if known == "none" else set(known.split(", "))) == documented[name], name


def test_lfafs_ctl_help_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "lfafs", "ctl", "--help"], capture_output=True, text=True)
    listed = set(re.findall(r"^    (\S+)", r.stdout, re.MULTILINE))
    assert listed == {c.words[0] for c in COMMANDS}


def test_lfafs_ctl_ping(daemon):
    r = subprocess.run([sys.executable, "-m", "lfafs", "ctl", "--mount", daemon.mountpoint, "ping"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "pong\n"


# -- the machinery, on a registry of one made-up command ------------------------------------------------


def toy() -> Registry:
    reg = Registry()

    @reg.command("frob", help="frobnicate a component", args=(
        Arg("component", required=True, positional=True), Arg("on", bool, required=True, positional=True),
        Arg("level", int, choices=(1, 2)), Arg("speed", float), Arg("colour", cli_default="red"),
        Arg("loud", bool)), exclusive=("level", "speed"))
    async def frob(s, component, on, level=None, speed=None, colour=None, loud=False):
        return {"component": component, "on": on, "level": level, "speed": speed, "colour": colour, "s": s}

    return reg


def toy_parser(reg: Registry) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    reg.add_parsers(p.add_subparsers(dest="cmd", required=True))
    return p


def test_a_declared_command_gets_a_cli_subcommand_and_its_request():
    reg = toy()
    ns = toy_parser(reg).parse_args(["frob", "rmm", "off", "--level", "2"])
    assert ns.ctl.request(ns) == {"component": "rmm", "on": False, "level": 2, "colour": "red"}


@pytest.mark.parametrize(("args", "words"), [
    ({"on": True}, "component is required"),
    ({"component": "rmm", "on": "yes"}, "on must be bool"),
    ({"component": "rmm", "on": True, "level": 3}, "level must be one of"),
    ({"component": "rmm", "on": True, "level": True}, "level must be int"),
    ({"component": "rmm", "on": True, "level": 1, "speed": 2}, "not both"),
    ({"component": "rmm", "on": True, "size": 1}, "unknown argument 'size'"),
])
def test_the_socket_checks_come_from_the_declaration(args, words):
    with pytest.raises(ControlError) as e:
        toy().check("frob", args)
    assert e.value.code == "bad-request" and words in e.value.message


def test_a_checked_request_reaches_the_handler():
    command = toy().check("frob", {"component": "rmm", "on": True, "speed": 1})  # an int is a float

    async def go():
        return await command.run("session", {"component": "rmm", "on": True, "speed": 1}, None)

    assert trio.run(go)["s"] == "session"


def test_an_unknown_command_lists_the_commands():
    with pytest.raises(ControlError) as e:
        toy().check("nope", {})
    assert e.value.code == "unknown-command" and e.value.message.endswith("commands: frob")


def test_a_declaration_must_match_its_handler():
    reg = Registry()
    with pytest.raises(ValueError, match="takes no level"):
        reg.command("x", help="x", args=(Arg("level", int),))(lambda s: None)
    reg.command("y", help="y")(lambda s: None)
    with pytest.raises(ValueError, match="declared twice"):
        reg.command("y", help="y")(lambda s: None)
