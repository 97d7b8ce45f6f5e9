"""Fault rules to armed faults: which node gets which fault, drawn once from the seed.

A rule (a description's ``[[fault]]`` or ``lfafs fleet ctl fail``) selects
nodes by label, draws a ratio or a count of them with a seed (roster.draw),
and arms on each one fault at one stage of one component: a status, a
call-again count, or only a latency (modelled time), drawn per node
(latency.py). The platform keeps one fault per component and stage, so
the rules that meet there are merged in order: a later status or
call-again replaces an earlier one, latencies add up.

Each rule is checked against what TF-A can produce for the component's
activator (lfafs.platform.faults.make_fault) before anything is armed,
so a bad rule is an error naming the rule, never a surprise in one node.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from lfafs.fleet.description import DescriptionError, FaultRule
from lfafs.fleet.latency import Latency, rng_for
from lfafs.fleet.roster import NodeSpec, Roster, draw
from lfafs.fleet.selector import Selector
from lfafs.platform import FaultError
from lfafs.platform.faults import make_fault


@attrs.frozen
class Rule:
    """What a rule needs, wherever it came from (a description, a ctl command)."""

    name: str  # for errors and events: "fault[3]" or "ctl fail"
    select: Selector
    component: str
    at: str
    status: str | None = None
    call_again: int = 0
    latency: Latency | None = None
    ratio: float | None = None
    count: int | None = None
    seed: object = 0
    once: bool = False
    beyond_tf_a: bool = False

    @classmethod
    def from_description(cls, rule: FaultRule, fleet_seed: int) -> Rule:
        return cls(rule.field, rule.select, rule.component, rule.at, rule.status, rule.call_again, rule.latency,
                   rule.ratio, rule.count, (fleet_seed if rule.seed is None else rule.seed, rule.field),
                   rule.once, rule.beyond_tf_a)


@attrs.define
class Armed:
    """The fault one node gets at one stage of one component (what Platform.inject takes)."""

    component: str
    at: str
    status: str | None = None
    call_again: int = 0
    latency: float = 0.0
    once: bool = False
    beyond_tf_a: bool = False
    rules: list[str] = attrs.Factory(list)

    def inject_args(self) -> dict:
        return {"status": self.status, "call_again": self.call_again, "latency": self.latency, "once": self.once,
                "beyond_tf_a": self.beyond_tf_a}

    def merge(self, rule: Rule, latency: float) -> None:
        if rule.status is not None or rule.call_again:
            self.status, self.call_again = rule.status, rule.call_again
        self.latency = min(3600.0, self.latency + latency)
        self.once = self.once or rule.once
        self.beyond_tf_a = self.beyond_tf_a or rule.beyond_tf_a
        self.rules.append(rule.name)


class RuleError(ValueError):
    """A rule that cannot be armed on some node it selects: which rule, which node, why."""


def targets(roster: Roster, rule: Rule) -> list[NodeSpec]:
    """The nodes ``rule`` hits, in roster order: the same answer in every shard."""
    matching = roster.select(rule.select)
    ids = draw([n.id for n in matching], rule.ratio, rule.count, rule.seed)
    hit = set(ids)
    return [n for n in matching if n.id in hit]


def check(roster: Roster, rule: Rule, nodes: Iterable[NodeSpec]) -> None:
    """RuleError unless TF-A could produce ``rule`` on every one of ``nodes``."""
    seen: set[tuple[str, str]] = set()
    profiles = roster.description.profiles
    for n in nodes:
        if (n.profile, rule.component) in seen:
            continue
        seen.add((n.profile, rule.component))
        profile = profiles[n.profile]
        try:
            spec = profile.component(rule.component)
        except KeyError:
            raise RuleError(f"{rule.name}: node {n.id} ({profile.name}) has no component {rule.component!r}") from None
        try:
            make_fault(rule.at, kind=spec.activator, status=rule.status, call_again=rule.call_again,
                       latency=1.0 if rule.latency is not None else 0.0, once=rule.once,
                       beyond_tf_a=rule.beyond_tf_a)
        except FaultError as e:
            raise RuleError(f"{rule.name}: {e}") from None


def arm(roster: Roster, rules: Iterable[Rule], *, only: set[str] | None = None) -> dict[str, list[Armed]]:
    """The faults each node gets from ``rules``, merged per component and stage.

    ``only`` limits the result to those node ids (a shard's own); the draw
    is still over the whole roster, so shards agree.
    """
    out: dict[str, dict[tuple[str, str], Armed]] = {}
    for rule in rules:
        hit = targets(roster, rule)
        check(roster, rule, hit)
        for n in hit:
            if only is not None and n.id not in only:
                continue
            lat = rule.latency.draw(rng_for(rule.seed, "latency", n.id)) if rule.latency is not None else 0.0
            slot = out.setdefault(n.id, {})
            key = (rule.component, rule.at)
            armed = slot.get(key)
            if armed is None:
                armed = slot[key] = Armed(rule.component, rule.at)
            armed.merge(rule, lat)
    return {node: list(faults.values()) for node, faults in out.items()}


def description_rules(roster: Roster) -> list[Rule]:
    d = roster.description
    return [Rule.from_description(r, d.seed) for r in d.faults]


def check_description(roster: Roster) -> None:
    """DescriptionError for the first fault rule that cannot be armed where it points."""
    for rule in description_rules(roster):
        try:
            check(roster, rule, roster.select(rule.select))
        except RuleError as e:
            raise DescriptionError(roster.description.source, rule.name, str(e).split(": ", 1)[1]) from None
