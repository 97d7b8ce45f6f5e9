"""Fault rules: the nodes they hit come from the seed; latencies are fixed, jittered or long-tailed."""

import statistics

import pytest

from lfafs.fleet import latency
from lfafs.fleet.description import from_dict
from lfafs.fleet.faults import Rule, RuleError, arm, check, targets
from lfafs.fleet.roster import Roster, draw
from lfafs.fleet.selector import parse

ROSTER = Roster(from_dict({"fleet": {"seed": 3}, "cohort": [
    {"name": "vera", "count": 200, "labels": {"model": "vera"}},
    {"name": "grace", "count": 100, "labels": {"model": "grace"}}]}), 4)


def test_a_ratio_or_a_count_draws_the_same_nodes_in_every_shard_and_differs_by_seed():
    ids = [n.id for n in ROSTER.nodes]
    assert len(draw(ids, 0.02, None, 1)) == 6
    assert draw(ids, None, 5, 1) == draw(ids, None, 5, 1) != draw(ids, None, 5, 2)
    assert draw(ids, None, None, 1) == ids
    rule = Rule("r", parse("model=vera"), "rmm", "prime", "LFA_AUTH_ERROR", ratio=0.1, seed=9)
    hit = {n.id for n in targets(ROSTER, rule)}
    assert len(hit) == 20 and all(h.startswith("vera-") for h in hit)
    per_shard = [arm(ROSTER, [rule], only={n.id for n in ROSTER.slice(i)}) for i in range(4)]
    assert set().union(*per_shard) == hit


def test_rules_meeting_at_one_stage_merge_status_replaced_latencies_added():
    rules = [Rule("a", parse(""), "rmm", "prime", "LFA_AUTH_ERROR", latency=latency.Fixed(1)),
             Rule("b", parse(""), "rmm", "prime", "LFA_BUSY", latency=latency.Fixed(2)),
             Rule("c", parse(""), "rmm", "activate", latency=latency.Fixed(10))]
    armed = arm(ROSTER, rules)["vera-0000"]
    prime = next(a for a in armed if a.at == "prime")
    assert (prime.status, prime.latency, prime.rules) == ("LFA_BUSY", 3.0, ["a", "b"])
    assert next(a for a in armed if a.at == "activate").latency == 10.0


def test_a_rule_tf_a_cannot_produce_is_refused():
    with pytest.raises(RuleError, match="TF-A cannot return"):
        check(ROSTER, Rule("x", parse(""), "rmm", "activate", "LFA_BUSY"), ROSTER.nodes)
    with pytest.raises(RuleError, match="no component"):
        check(ROSTER, Rule("x", parse(""), "gpu", "prime", "LFA_BUSY"), ROSTER.nodes)


def test_latencies_are_drawn_per_node_as_their_shape_says():
    rng = latency.rng_for
    assert latency.parse({"fixed": 10}).draw(rng(1)) == 10.0
    jit = [latency.parse({"min": 8, "max": 12}).draw(rng(1, i)) for i in range(500)]
    assert 8 <= min(jit) and max(jit) <= 12 and 9.5 < statistics.mean(jit) < 10.5
    tail = sorted(latency.parse({"median": 2, "p99": 30}).draw(rng(2, i)) for i in range(4000))
    assert 1.7 < tail[2000] < 2.3 and 20 < tail[3960] < 45
    assert latency.parse_text("8..12") == latency.Jittered(8, 12)
    assert latency.parse_text("median=2,p99=30") == latency.LongTailed(2, 30)
    for bad in ({"fixed": 10, "min": 1}, {"min": 3, "max": 1}, {"median": 5, "p99": 1}, "ten"):
        with pytest.raises((ValueError, TypeError)):
            latency.parse(bad)
