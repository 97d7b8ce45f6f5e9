"""How a control command is declared, once, and what is derived from that declaration.

A ``Command`` names the command, its arguments (``Arg``: protocol name,
type, required, choices, and how ``lfafs ctl`` spells it), its handler,
its help text, whether it streams events, and how the command line prints
its result. From the ``Registry`` of commands come:

- the control socket's argument checks (``Registry.check``), so a bad
  request is refused before anything changes (docs/control-protocol.md,
  'Framing');
- the dispatch to the handler (``Command.run``);
- the ``lfafs ctl`` subcommands (``Registry.add_parsers``) and the request
  each one sends (``Command.request``);
- the command table of docs/control-protocol.md, which
  tests/service/test_registry.py holds to the same list.

The commands themselves are in commands.py.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs

from lfafs.service.control import ControlError

# Destinations the ``lfafs ctl`` parser uses itself; no argument may take them.
_RESERVED = frozenset({"mount", "socket", "command", "func", "ctl"})


@attrs.frozen
class Arg:
    """One argument of a control command.

    On the socket it is ``name`` with a JSON value of ``type`` (a float also
    accepts an integer). On the command line it is ``--name-with-dashes``
    (plus ``flags``) or, when ``positional``, a word; a positional bool is
    spelled on|off. ``cli_default`` fills an option the person left out;
    ``from_cli`` turns what they typed into the protocol value (it raises
    ValueError with a sentence when it cannot).
    """

    name: str
    type: type = str
    required: bool = False
    choices: tuple[Any, ...] | None = None
    help: str | None = None
    positional: bool = False
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    cli_default: Any = None
    from_cli: Callable[[Any], Any] | None = None

    @property
    def accepts(self) -> tuple[type, ...]:
        return (int, float) if self.type is float else (self.type,)

    def check(self, command: str, value: Any) -> None:
        types = self.accepts
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ControlError("bad-request", f"{command}: {self.name} must be {'/'.join(t.__name__ for t in types)}")
        if self.choices is not None and value not in self.choices:
            raise ControlError("bad-request",
                               f"{command}: {self.name} must be one of "
                               f"{', '.join(map(str, self.choices))}, not {value!r}")

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        """Add this argument to an argparse parser (or mutually exclusive group)."""
        kw: dict[str, Any] = {}
        if self.help or self.cli_default is not None:
            shown = f"default: {self.cli_default}" if self.cli_default is not None else ""
            kw["help"] = f"{self.help} ({shown})" if self.help and shown else self.help or shown
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.positional:
            if self.type is bool:
                kw["choices"] = ("on", "off")
            else:
                kw["type"] = self.type
                if self.choices:
                    kw["choices"] = self.choices
            if not self.required:
                kw["nargs"] = "?"
            parser.add_argument(self.name, **kw)
            return
        names = ["--" + self.name.replace("_", "-"), *self.flags]
        if self.type is bool:
            parser.add_argument(*names, dest=self.name, action="store_true", default=None, **kw)
            return
        if self.choices:
            kw["choices"] = self.choices
        if self.cli_default is not None:
            kw["default"] = self.cli_default
        elif self.required:
            kw["required"] = True
        parser.add_argument(*names, dest=self.name, type=self.type, **kw)

    def value_from(self, ns: argparse.Namespace) -> Any:
        """The protocol value for what was typed, or None to leave the argument out."""
        value = getattr(ns, self.name)
        if value is None:
            return None
        if self.positional and self.type is bool:
            value = value == "on"
        return self.from_cli(value) if self.from_cli else value


Handler = Callable[..., Awaitable[Any]]
Printer = Callable[[Any, argparse.Namespace], None]


@attrs.frozen
class Command:
    """One control command: everything the socket, the dispatch and ``lfafs ctl`` need."""

    name: str
    help: str
    handler: Handler
    args: tuple[Arg, ...] = ()
    streams: bool = False  # with "follow": true the reply is a stream of {"event": ...} lines
    exclusive: tuple[str, ...] = ()  # at most one of these arguments
    cli: tuple[str, ...] = ()  # the words of ``lfafs ctl`` (default: the name)
    cli_options: tuple[Arg, ...] = ()  # options that only change how the result is printed
    show: Printer | None = None  # print a result
    show_event: Callable[[dict], str] | None = None  # one line per streamed event

    @property
    def words(self) -> tuple[str, ...]:
        return self.cli or (self.name,)

    def check(self, args: dict) -> None:
        spec = {a.name: a for a in self.args}
        for name, value in args.items():
            if name not in spec:
                raise ControlError("bad-request",
                                   f"{self.name}: unknown argument {name!r} (known: {', '.join(spec) or 'none'})")
            spec[name].check(self.name, value)
        for a in self.args:
            if a.required and a.name not in args:
                raise ControlError("bad-request", f"{self.name}: {a.name} is required")
        given = [n for n in self.exclusive if n in args]
        if len(given) > 1:
            raise ControlError("bad-request", f"{self.name}: give {' or '.join(self.exclusive)}, not both")

    async def run(self, session: Any, args: dict, event: Callable[[dict], Awaitable[bool]]) -> Any:
        """Call the handler with checked ``args``; ``event`` sends one streamed event."""
        if self.streams:
            return await self.handler(session, event, **args)
        return await self.handler(session, **args)

    def request(self, ns: argparse.Namespace) -> dict:
        """The request arguments for a parsed ``lfafs ctl`` command line."""
        out = {}
        for a in self.args:
            value = a.value_from(ns)
            if value is not None:
                out[a.name] = value
        return out

    def add_parser(self, sub: Any, word: str) -> None:
        p = sub.add_parser(word, help=self.help, description=self.help)
        group = p.add_mutually_exclusive_group() if self.exclusive else None
        for a in (*self.args, *self.cli_options):
            a.add_to(group if group is not None and a.name in self.exclusive else p)
        p.set_defaults(ctl=self)


def _follow() -> Arg:
    return Arg("follow", bool, flags=("-f",), help="keep printing as new entries arrive (Ctrl-C stops)")


@attrs.define
class Registry:
    """The control commands by name; ``groups`` gives the help of a multi-word ``lfafs ctl`` command."""

    groups: dict[str, str] = attrs.field(factory=dict)
    _commands: dict[str, Command] = attrs.field(factory=dict, init=False)

    def command(self, name: str, *, help: str, args: tuple[Arg, ...] = (), streams: bool = False,
                **rest: Any) -> Callable[[Handler], Handler]:
        """Declare the decorated coroutine as the handler of ``name``.

        It is called as ``handler(session, **args)``, or for a streaming
        command ``handler(session, event, **args)`` where ``await event(obj)``
        sends one event and returns False once the client has gone.
        """

        def register(handler: Handler) -> Handler:
            if name in self._commands:
                raise ValueError(f"control command {name!r} is declared twice")
            full = (*args, _follow()) if streams else args
            taken = _RESERVED.intersection(a.name for a in (*full, *rest.get("cli_options", ())))
            if taken:
                raise ValueError(f"{name}: argument names {sorted(taken)} are used by the lfafs ctl parser")
            params = set(inspect.signature(handler).parameters)
            missing = {a.name for a in full} - params
            if missing:
                raise ValueError(f"{name}: the handler takes no {', '.join(sorted(missing))}")
            self._commands[name] = Command(name, help, handler, full, streams, **rest)
            return handler

        return register

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._commands

    def names(self) -> list[str]:
        return sorted(self._commands)

    def check(self, cmd: Any, args: dict) -> Command:
        """The command ``cmd`` names, once ``args`` fit its schema; ControlError otherwise."""
        if not isinstance(cmd, str) or cmd not in self._commands:
            raise ControlError("unknown-command", f"unknown command {cmd!r}; commands: {', '.join(self.names())}")
        command = self._commands[cmd]
        command.check(args)
        return command

    def add_parsers(self, sub: Any) -> None:
        """One ``lfafs ctl`` subcommand per command; multi-word ones share a parent parser."""
        nested: dict[str, Any] = {}
        for c in self:
            if len(c.words) == 1:
                c.add_parser(sub, c.words[0])
                continue
            first, word = c.words
            if first not in nested:
                parent = sub.add_parser(first, help=self.groups.get(first), description=self.groups.get(first))
                nested[first] = parent.add_subparsers(dest=f"{first}_action", required=True, metavar="ACTION")
            c.add_parser(nested[first], word)
