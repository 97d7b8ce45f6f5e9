"""Observability: the SMC trace and the activation reports."""

from __future__ import annotations

import collections

import attrs

from lfafs.smccc import fid_name

TRACE_CAPACITY = 4096


@attrs.frozen
class SmcRecord:
    seq: int
    cpu: int
    world: str
    fid: int
    args: tuple[int, ...]  # x1..x4 as the caller set them
    result: tuple[int, ...]  # x0..x5 after the call
    start: float  # platform clock (trio), seconds
    duration: float

    @property
    def name(self) -> str:
        return fid_name(self.fid)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "cpu": self.cpu, "world": self.world, "fid": self.fid, "name": self.name,
                "args": list(self.args), "result": list(self.result), "start": self.start,
                "duration": self.duration}


class SmcTrace:
    """A bounded ring of the last SMCs, oldest first."""

    def __init__(self, capacity: int = TRACE_CAPACITY) -> None:
        self._ring: collections.deque[SmcRecord] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._t0: float | None = None

    def add(self, cpu: int, world: str, fid: int, args: tuple[int, ...], result: tuple[int, ...],
            start: float, duration: float) -> SmcRecord:
        if self._t0 is None:  # start times count from the first SMC
            self._t0 = start
        start -= self._t0
        self._seq += 1
        rec = SmcRecord(self._seq, cpu, world, fid, args, result, start, duration)
        self._ring.append(rec)
        return rec

    def records(self, since: int = 0) -> list[SmcRecord]:
        return [r for r in self._ring if r.seq > since]

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def last_seq(self) -> int:
        return self._seq


@attrs.define
class ActivationReport:
    """What one activation round did and where its time went.

    ``*_s`` fields are on the platform clock (they include modelled
    latencies); ``boot_phases`` are seconds of real compute in the leader's
    boot of the new image.
    """

    component: str
    from_version: tuple[int, int]
    to_version: tuple[int, int]
    status: int = 0
    cpus: int = 0
    leader_cpu: int = -1
    prime_s: float = 0.0
    rendezvous_s: float = 0.0
    leader_boot_s: float = 0.0
    warm_boots_s: float = 0.0
    total_s: float = 0.0
    boot_phases: dict[str, float] = attrs.field(factory=dict)
    dynamic_pages_preserved: int = 0
    tlb_invalidations: int = 0
    fw_img_sequence: int = 0
    reason: str = ""
    # bookkeeping while the round runs
    started_at: float = 0.0
    round_started_at: float = 0.0
    leader_at: float = 0.0
    filed: bool = False

    def to_dict(self) -> dict:
        d = attrs.asdict(self)
        for key in ("started_at", "round_started_at", "leader_at", "filed"):
            d.pop(key)
        d["from_version"] = "{}.{}".format(*self.from_version)
        d["to_version"] = "{}.{}".format(*self.to_version)
        return d
