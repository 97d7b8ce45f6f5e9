"""Label selectors, as Kubernetes spells them: which nodes a command or a rule applies to.

The grammar is that of Kubernetes label selectors (apimachinery
pkg/labels/selector.go): requirements separated by commas, all of which
must hold::

    model=vera            model==vera         model!=grace
    rack in (r1, r2)      rack notin (r3)
    canary                !canary             (the label exists / does not)

The empty selector matches every node. Every node carries the labels its
cohort gives it plus ``node`` (its id), ``cohort``, ``shard``, ``profile``
and ``abi``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

_KEY = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
OPERATORS = ("=", "==", "!=", "in", "notin", "exists", "!")


class SelectorError(ValueError):
    """A selector that does not parse: the text, where, and what was expected."""


@attrs.frozen
class Requirement:
    """One requirement: ``key`` ``op`` ``values`` (op is one of OPERATORS, "==" folded into "=")."""

    key: str
    op: str = attrs.field(validator=attrs.validators.in_(OPERATORS))
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin match a missing label, as Kubernetes


@attrs.frozen
class Selector:
    """A parsed selector; ``str()`` gives it back in canonical form."""

    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Selector:
    """Parse ``text``; SelectorError says where it went wrong and what was expected."""
    if not isinstance(text, str):
        raise SelectorError(f"a selector is text, got {text!r}")
    parser = _Parser(text)
    reqs = parser.requirements()
    return Selector(tuple(reqs), text.strip())




def valid_key(key: str) -> bool:
    """A label key as Kubernetes allows one (name part): letters, digits, '-', '_', '.', '/'."""
    return bool(_KEY.fullmatch(key))


def valid_value(value: str) -> bool:
    return bool(_VALUE.fullmatch(value))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> SelectorError:
        got = self.text[self.pos:self.pos + 12] or "the end"
        return SelectorError(f"selector {self.text!r}: expected {expected} at character {self.pos + 1}, found {got!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.pos)

    def take(self, s: str) -> bool:
        if self.peek(s):
            self.pos += len(s)
            return True
        return False

    def match(self, pattern: re.Pattern, what: str) -> str:
        self.skip()
        m = pattern.match(self.text, self.pos)
        if m is None or (not m.group(0) and pattern is _KEY):
            raise self.fail(what)
        self.pos = m.end()
        return m.group(0)

    def word(self, w: str) -> bool:
        """``w`` as a whole word (so a key named 'inventory' is not the operator 'in')."""
        self.skip()
        end = self.pos + len(w)
        if self.text.startswith(w, self.pos) and (end == len(self.text) or not self.text[end].isalnum()):
            self.pos = end
            return True
        return False

    def requirements(self) -> list[Requirement]:
        self.skip()
        if self.pos == len(self.text):
            return []
        out = [self.requirement()]
        while self.take(","):
            out.append(self.requirement())
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("',' or the end")
        return out

    def requirement(self) -> Requirement:
        if self.take("!"):
            return Requirement(self.match(_KEY, "a label key"), "!")
        key = self.match(_KEY, "a label key")
        if self.take("=="):
            return Requirement(key, "=", frozenset({self.match(_VALUE, "a value")}))
        if self.take("!="):
            return Requirement(key, "!=", frozenset({self.match(_VALUE, "a value")}))
        if self.take("="):
            return Requirement(key, "=", frozenset({self.match(_VALUE, "a value")}))
        for op in ("notin", "in"):
            if self.word(op):
                return Requirement(key, op, frozenset(self.value_set()))
        self.skip()
        if self.pos == len(self.text) or self.peek(","):
            return Requirement(key, "exists")
        raise self.fail("=, ==, !=, in, notin, ',' or the end")

    def value_set(self) -> list[str]:
        if not self.take("("):
            raise self.fail("'('")
        values = [self.match(_VALUE, "a value")]
        while self.take(","):
            values.append(self.match(_VALUE, "a value"))
        if not self.take(")"):
            raise self.fail("',' or ')'")
        if values == [""]:
            raise self.fail("at least one value")
        return values
