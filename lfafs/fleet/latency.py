"""Modelled time: a fixed, jittered or long-tailed latency, drawn per node from a seed.

As in KWOK's stages (a delay plus a jitter), a fleet rule says how long a
stage of an activation takes; each node draws its own value once, from a
random generator seeded by the fleet seed, the rule and the node id, so the
draw does not depend on which shard serves the node or in what order nodes
are built. Spelled in a fleet description as one of::

    latency = { fixed = 10 }                 # every node: 10 s
    latency = { min = 8, max = 12 }          # jittered: uniform in [8, 12] s
    latency = { median = 2, p99 = 30 }       # long-tailed: log-normal with that median and 99th percentile
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import attrs

MAX_SECONDS = 3600.0  # what the platform accepts for one stage (lfafs.platform.faults)
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def _seconds(_inst, attr, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"{attr.name}: expected seconds in [0, {MAX_SECONDS:g}], got {value!r}")


@attrs.frozen
class Fixed:
    fixed: float = attrs.field(validator=_seconds)

    def draw(self, rng: random.Random) -> float:
        return float(self.fixed)

    def describe(self) -> str:
        return f"{self.fixed:g} s"


@attrs.frozen
class Jittered:
    min: float = attrs.field(validator=_seconds)
    max: float = attrs.field(validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if self.max < self.min:
            raise ValueError(f"max ({self.max:g}) is below min ({self.min:g})")

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)

    def describe(self) -> str:
        return f"{self.min:g}..{self.max:g} s"


@attrs.frozen
class LongTailed:
    """Log-normal: half the nodes below ``median``, one in a hundred above ``p99`` (capped at an hour)."""

    median: float = attrs.field(validator=_seconds)
    p99: float = attrs.field(validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.median <= self.p99:
            raise ValueError(f"need 0 < median <= p99, got median {self.median:g}, p99 {self.p99:g}")

    def draw(self, rng: random.Random) -> float:
        sigma = math.log(self.p99 / self.median) / _Z99
        return min(MAX_SECONDS, rng.lognormvariate(math.log(self.median), sigma))

    def describe(self) -> str:
        return f"median {self.median:g} s, p99 {self.p99:g} s"


Latency = Fixed | Jittered | LongTailed

_SHAPES: dict[frozenset[str], type] = {
    frozenset({"fixed"}): Fixed,
    frozenset({"min", "max"}): Jittered,
    frozenset({"median", "p99"}): LongTailed,
}


def parse(raw: Any) -> Latency:
    """A latency from its table (see the module text); ValueError names what is wrong."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Fixed(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected seconds or a table such as {{ fixed = 10 }}, got {raw!r}")
    shape = _SHAPES.get(frozenset(raw))
    if shape is None:
        raise ValueError(f"give {{ fixed = S }}, {{ min = A, max = B }} or {{ median = M, p99 = P }}, "
                         f"not the keys {', '.join(sorted(raw)) or 'none'}")
    return shape(**raw)


def rng_for(*parts: object) -> random.Random:
    """The generator of one draw: seeded by its parts (fleet seed, rule, node), the same in every process."""
    return random.Random("/".join(map(str, parts)))


def parse_text(text: str) -> Latency:
    """A latency as typed on a command line: ``10`` (fixed), ``8..12`` (jittered), ``median=2,p99=30`` (long-tailed)."""
    t = text.strip()
    try:
        if ".." in t:
            lo, hi = t.split("..", 1)
            return Jittered(float(lo), float(hi))
        if "=" in t:
            parts = dict(p.split("=", 1) for p in t.replace(" ", "").split(","))
            return parse({k: float(v) for k, v in parts.items()})
        return Fixed(float(t))
    except (ValueError, TypeError) as e:
        raise ValueError(f"latency {text!r}: {e}; give 10, 8..12 or median=2,p99=30") from None
