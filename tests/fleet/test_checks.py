"""Invariants over events: in flight, stop after N failures, failed RMMs, the expected failures."""

from lfafs.fleet.checks import Invariants, evaluate


def run(*spans, failed=(), rmm=()):
    """Events of activations given as (node, start, end); failed: nodes whose activation failed."""
    evs, seq = [], 0
    for node, t0, t1 in spans:
        seq += 1
        evs.append({"seq": seq, "t": t0, "shard": 0, "node": node, "kind": "activation.started"})
        start = seq
        seq += 1
        evs.append({"seq": seq, "t": t1, "shard": 0, "node": node, "start_seq": start,
                    "kind": "activation.failed" if node in failed else "activation.succeeded"})
    for node, t in rmm:
        seq += 1
        evs.append({"seq": seq, "t": t, "shard": 0, "node": node, "kind": "rmm.failed"})
    return evs


def test_in_flight_counts_overlapping_activations_across_nodes():
    evs = run(("a", 0, 10), ("b", 1, 11), ("c", 2, 12), ("d", 12, 20))
    assert evaluate(evs, Invariants(max_in_flight=3)).ok
    r = evaluate(evs, Invariants(max_in_flight=2))
    assert not r.ok and r.max_in_flight == 3 and "at most 3 in flight" in r.outcomes[0].detail


def test_an_activation_that_never_ended_stays_in_flight():
    evs = run(("a", 0, 10))[:1] + run(("b", 1, 2))
    evs[1]["seq"], evs[2]["seq"] = 5, 6
    evs[2]["start_seq"] = 5
    r = evaluate(evs, Invariants(max_in_flight=1))
    assert not r.ok and "never ended" in r.outcomes[0].detail


def test_no_activation_may_start_after_the_nth_failure():
    evs = run(("a", 0, 1), ("b", 2, 3), ("c", 4, 5), failed={"a", "b"})
    r = evaluate(evs, Invariants(stop_after_failures=2))
    assert not r.ok and "1 activations started after it" in r.outcomes[0].detail
    assert evaluate(evs, Invariants(stop_after_failures=3)).ok
    assert evaluate(run(("a", 0, 1), ("b", 2, 3), failed={"a", "b"}), Invariants(stop_after_failures=2)).ok


def test_a_node_left_with_a_failed_rmm_is_reported_unless_it_recovered():
    evs = run(("a", 0, 1), rmm=[("a", 1), ("b", 2)])
    evs.append({"seq": 99, "t": 3, "shard": 0, "node": "b", "kind": "rmm.recovered"})
    r = evaluate(evs, Invariants(no_failed_rmm=True))
    assert not r.ok and r.failed_rmm_nodes == ("a",)


def test_exactly_the_expected_nodes_must_fail():
    evs = run(("a", 0, 1), ("b", 0, 1), ("c", 0, 1), failed={"a", "b"})
    assert evaluate(evs, Invariants(expect_failed={"a", "b"})).ok
    r = evaluate(evs, Invariants(expect_failed={"a", "c"}))
    assert not r.ok and "did not fail: c" in r.outcomes[0].detail and "failed unexpectedly: b" in r.outcomes[0].detail
