"""Invariants over a run, from its events: what a CI job asserts an orchestrator did.

- ``max_in_flight``: never more than K activations at once, fleet-wide.
  An activation runs from its ``activation.started`` event to the end
  event that names it; one never ended is in flight until the last event.
- ``stop_after_failures``: after the N-th failed activation, no activation
  starts (those already in flight may finish), as Ansible's
  ``max_fail_percentage`` or SSM's ``MaxErrors`` stop a rollout.
- ``no_failed_rmm``: no node is left with its Realm world disabled (its
  last ``rmm.failed`` was not followed by ``rmm.recovered``).
- ``expect_failed``: exactly these nodes had a failed activation (for
  example the nodes a fault rule drew: ``lfafs fleet plan``).

Pure: events in, a report out.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from lfafs.fleet.events import FAILED, RMM_FAILED, RMM_RECOVERED, STARTED, SUCCEEDED


def _optional_count(_inst, attr, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attr.name} must be a count >= 1, got {value!r}")


@attrs.frozen
class Invariants:
    max_in_flight: int | None = attrs.field(default=None, validator=_optional_count)
    stop_after_failures: int | None = attrs.field(default=None, validator=_optional_count)
    no_failed_rmm: bool = False
    expect_failed: frozenset[str] | None = attrs.field(default=None, converter=lambda v: None if v is None
                                                       else frozenset(v))


@attrs.frozen
class Outcome:
    name: str
    ok: bool
    detail: str


@attrs.frozen
class Report:
    outcomes: tuple[Outcome, ...]
    started: int
    succeeded: int
    failed: int
    max_in_flight: int
    failed_nodes: tuple[str, ...]
    failed_rmm_nodes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "invariants": [attrs.asdict(o) for o in self.outcomes],
                "activations": {"started": self.started, "succeeded": self.succeeded, "failed": self.failed,
                                "max_in_flight": self.max_in_flight},
                "failed_nodes": list(self.failed_nodes), "failed_rmm_nodes": list(self.failed_rmm_nodes)}


def _key(ev: dict) -> tuple:
    return (ev.get("shard", 0), ev.get("start_seq", ev.get("seq")))


def evaluate(events: Iterable[dict], invariants: Invariants) -> Report:
    evs = sorted(events, key=lambda ev: (ev["t"], ev.get("shard", 0), ev.get("seq", 0)))
    starts = [ev for ev in evs if ev["kind"] == STARTED]
    ends = [ev for ev in evs if ev["kind"] in (SUCCEEDED, FAILED)]
    failures = [ev for ev in ends if ev["kind"] == FAILED]
    last_t = evs[-1]["t"] if evs else 0.0

    # in flight: +1 at each start, -1 at each end, in the order the shards logged them
    # (a mock clock gives many events one time stamp; their sequence keeps cause before effect)
    ended = {_key(ev) for ev in ends}
    level = peak = 0
    peak_at = None
    for ev in evs:
        if ev["kind"] == STARTED:
            level += 1
        elif ev["kind"] in (SUCCEEDED, FAILED) and "start_seq" in ev:
            level -= 1
        if level > peak:
            peak, peak_at = level, ev["t"]
    open_count = sum(1 for ev in starts if _key(ev) not in ended)

    realm: dict[str, bool] = {}
    for ev in evs:
        if ev["kind"] in (RMM_FAILED, RMM_RECOVERED) and "node" in ev:
            realm[ev["node"]] = ev["kind"] == RMM_FAILED
    failed_rmm = tuple(sorted(n for n, bad in realm.items() if bad))
    failed_nodes = tuple(sorted({ev["node"] for ev in failures if "node" in ev}))

    outcomes = []
    k = invariants.max_in_flight
    if k is not None:
        detail = f"at most {peak} in flight" + (f" (at t={peak_at:.3f})" if peak_at is not None else "")
        if open_count:
            detail += f"; {open_count} never ended (in flight until t={last_t:.3f})"
        outcomes.append(Outcome(f"never more than {k} activations in flight", peak <= k, detail))
    n = invariants.stop_after_failures
    if n is not None:
        name = f"stopped after {n} failures"
        if len(failures) < n:
            outcomes.append(Outcome(name, True, f"{len(failures)} failures: the threshold was not reached"))
        else:
            t_stop = failures[n - 1]["t"]
            late = [ev for ev in starts if ev["t"] > t_stop]
            detail = f"failure {n} at t={t_stop:.3f}; " + (
                f"{len(late)} activations started after it (first: {late[0].get('node')} at t={late[0]['t']:.3f})"
                if late else "no activation started after it")
            outcomes.append(Outcome(name, not late, detail))
    if invariants.no_failed_rmm:
        outcomes.append(Outcome("no node left with a failed RMM", not failed_rmm,
                                f"{len(failed_rmm)} nodes with the Realm world disabled"
                                + (f": {', '.join(failed_rmm[:10])}" + (" ..." if len(failed_rmm) > 10 else "")
                                   if failed_rmm else "")))
    if invariants.expect_failed is not None:
        want = invariants.expect_failed
        got = set(failed_nodes)
        missing, extra = sorted(want - got), sorted(got - want)
        detail = f"{len(got)} nodes failed, {len(want)} expected"
        if missing:
            detail += f"; did not fail: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
        if extra:
            detail += f"; failed unexpectedly: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else "")
        outcomes.append(Outcome("exactly the expected nodes failed", not missing and not extra, detail))
    return Report(tuple(outcomes), len(starts), sum(1 for ev in ends if ev["kind"] == SUCCEEDED), len(failures),
                  peak, failed_nodes, failed_rmm)
