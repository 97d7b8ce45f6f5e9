"""The ``lfafs`` command tree, read from its argparse parser (whose ``ctl`` part the command
registry builds): what the shell completion and the man page are generated from."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import attrs

VALUE_FILES = ("FILE", "DIR", "PATH", "MOUNTPOINT", "NAME|FILE")  # metavars that name a path


@attrs.frozen
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    metavar: str | None
    choices: tuple[str, ...] | None

    @property
    def names_a_path(self) -> bool:
        return self.metavar in VALUE_FILES


@attrs.frozen
class Node:
    """One command: its words from ``lfafs``, help, options, positionals and subcommands."""

    path: tuple[str, ...]
    help: str
    description: str
    usage: str
    options: tuple[Option, ...]
    positionals: tuple[Option, ...]
    children: tuple[Node, ...]

    def walk(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.walk()


def _option(a: argparse.Action) -> Option:
    takes = a.nargs != 0
    choices = tuple(map(str, a.choices)) if a.choices is not None and not isinstance(a.choices, dict) else None
    metavar = a.metavar if isinstance(a.metavar, str) else None
    help_text = "" if a.help in (None, argparse.SUPPRESS) else a.help
    if "%(" in help_text:
        help_text = help_text % {"default": a.default}
    flags = tuple(a.option_strings) or (a.dest,)
    if isinstance(a, argparse.BooleanOptionalAction):
        takes = False
    return Option(flags, help_text or "", takes, metavar, choices)


def tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("lfafs",), help_text: str = "") -> Node:
    options, positionals, children = [], [], []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in a._choices_actions}
            for name, sub in a.choices.items():
                children.append(tree(sub, (*path, name), helps.get(name, "")))
        elif a.option_strings:
            options.append(_option(a))
        elif a.nargs != argparse.REMAINDER:
            o = _option(a)
            positionals.append(attrs.evolve(o, flags=(o.metavar or a.dest,), takes_value=False))
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return Node(path, help_text, parser.description or help_text, " ".join(usage.split()), tuple(options),
                tuple(positionals), tuple(children))
