"""Which line of a TOML file holds a field: tomllib gives values, not positions.

Good enough for the files people write by hand (scenarios, profiles):
table headers ``[a.b]`` and ``[[a]]`` (each one a new element of the array
``a``), and ``key = value`` lines, bare or quoted keys, dotted keys. A field
it cannot place is reported at its table's header, or with no line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_MULTILINE = ('"""', "'''")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", dotted))


class Lines:
    """Field path -> line number (1-based) for one TOML text."""

    def __init__(self, text: str) -> None:
        self._at: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        table: tuple = ()
        in_string = None
        for number, line in enumerate(text.splitlines(), 1):
            if in_string:  # inside a multi-line string: only its end matters
                if in_string in line:
                    in_string = None
                continue
            m = _HEADER.match(line)
            if m:
                path = _parts(m.group(2))
                if m.group(1) == "[[":
                    index = counts.get(path, 0)
                    counts[path] = index + 1
                    table = (*path, index)
                else:
                    table = path
                self._at.setdefault(table, number)
                continue
            m = _KEY.match(line)
            if m:
                self._at.setdefault((*table, *_parts(m.group(1))), number)
                rest = line[m.end():]
                for quote in _MULTILINE:
                    if rest.count(quote) == 1:
                        in_string = quote

    def line(self, *path) -> int | None:
        """The line of ``path`` (keys and array indexes), else of its nearest enclosing table."""
        path = tuple(path)
        while path:
            if path in self._at:
                return self._at[path]
            path = path[:-1]
        return None
