"""Observability: the SMC trace, and the activation reports with their one owner, the Recorder."""

from __future__ import annotations

import collections
from collections.abc import Callable

import attrs
import trio

from lfafs.platform.ffa import ffa_fid_name
from lfafs.platform.psci import PsciFid
from lfafs.smccc import LfaStatus, Version, fid_name, s64

TRACE_CAPACITY = 4096


class TraceText:
    """Trace text that is put together only when someone reads it.

    Parts are strings or thunks (callables returning one). The FF-A and MM
    path records a decoded line for every exchange, but decoding the MM
    buffer costs more than the exchange itself, and almost every record
    leaves the ring unread: so the buffer is copied at the time (what the
    line must describe) and decoded whenever the line is read.
    """

    __slots__ = ("_parts",)

    def __init__(self, *parts: str | Callable[[], str] | TraceText) -> None:
        self._parts = tuple(q for p in parts for q in (p._parts if isinstance(p, TraceText) else (p,)))

    def __add__(self, other: str | TraceText) -> TraceText:
        return TraceText(self, other)

    def __radd__(self, other: str) -> TraceText:
        return TraceText(other, *self._parts)

    def __bool__(self) -> bool:
        return bool(self._parts)

    def __str__(self) -> str:
        return "".join(p if isinstance(p, str) else p() for p in self._parts)


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
    mpidr: int = 0  # the CPU's MPIDR_EL1 (topology.py)
    detail: str | TraceText = ""  # FF-A and MM exchanges: what the registers and the MM buffer said

    @property
    def decoded(self) -> str:
        return self.detail if isinstance(self.detail, str) else str(self.detail)

    @property
    def name(self) -> str:
        try:
            return f"PSCI_{PsciFid(self.fid & 0xFFFF_FFFF).name}"
        except ValueError:
            return ffa_fid_name(self.fid) or fid_name(self.fid)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "cpu": self.cpu, "mpidr": f"{self.mpidr:#x}", "world": self.world, "fid": self.fid,
                "name": self.name, "args": list(self.args), "result": list(self.result), "start": self.start,
                "duration": self.duration, **({"decoded": self.decoded} if self.detail else {})}


class SmcTrace:
    """A bounded ring of the last SMCs, oldest first."""

    def __init__(self, capacity: int = TRACE_CAPACITY, mpidr_of: Callable[[int], int] | None = None) -> None:
        self._ring: collections.deque[SmcRecord] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._t0: float | None = None
        self.mpidr_of = mpidr_of
        self.boot_records: list[SmcRecord] = []  # the firmware's SMCs of the last power-on

    def add(self, cpu: int, world: str, fid: int, args: tuple[int, ...], result: tuple[int, ...],
            start: float, duration: float, *, decoded: str | TraceText = "", boot: bool = False) -> SmcRecord:
        """Record one SMC.

        ``boot`` SMCs (the firmware's own at power-on, before any clock runs) go to
        ``boot_records`` instead, with seq 0 and start 0: the ring and its sequence
        numbers count the SMCs of the running platform only.
        """
        if boot:
            mpidr = self.mpidr_of(cpu) if self.mpidr_of is not None else 0
            rec = SmcRecord(0, cpu, world, fid, args, result, 0.0, duration, mpidr, decoded)
            self.boot_records.append(rec)
            return rec
        if self._t0 is None:  # start times count from the first SMC
            self._t0 = start
        start -= self._t0
        self._seq += 1
        mpidr = self.mpidr_of(cpu) if self.mpidr_of is not None else 0
        rec = SmcRecord(self._seq, cpu, world, fid, args, result, start, duration, mpidr, decoded)
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
        d["from_version"] = str(Version(*self.from_version))
        d["to_version"] = str(Version(*self.to_version))
        return d


# Statuses with which an ACTIVATE is refused before it joins a round (TF-A lfa_main.c,
# lfa_activate_prepare() and the lock paths of lfa_smc_handler()).
_PRE_ROUND = frozenset({LfaStatus.BUSY, LfaStatus.INVALID_PARAMETERS, LfaStatus.COMPONENT_WRONG_STATE,
                        LfaStatus.NOT_SUPPORTED})


class Recorder:
    """Owns every activation report from opening to filing.

    A report opens at the first PRIME of a component (or at an ACTIVATE
    that starts a new round without a new PRIME, a retry after a failure),
    collects what the activators and the RMMD tell it while the round runs,
    and is filed in ``reports`` when the round's last CPU leaves ACTIVATE.
    """

    def __init__(self) -> None:
        self.reports: list[ActivationReport] = []
        self._open: ActivationReport | None = None

    @property
    def current(self) -> ActivationReport | None:
        """The report of the activation being prepared or run."""
        return self._open if self._open is not None and not self._open.filed else None

    @property
    def last(self) -> ActivationReport | None:
        return self.reports[-1] if self.reports else None

    def forget_open(self) -> None:
        """A platform reset: an activation being prepared is gone with the RAM."""
        self._open = None

    def prime_started(self, component: str, from_version: tuple[int, int], to_version: tuple[int, int]) -> None:
        if self._open is None or self._open.filed or self._open.component != component:
            self._open = ActivationReport(component=component, from_version=from_version, to_version=to_version,
                                          started_at=trio.current_time())

    def prime_returned(self) -> None:
        if self._open is not None:
            self._open.prime_s = trio.current_time() - self._open.started_at

    def enter_activate(self, component: str, retry: tuple[tuple[int, int], tuple[int, int]] | None
                       ) -> ActivationReport | None:
        """One CPU enters ACTIVATE of ``component``; the report it counts in, if any.

        ``retry`` is (from, to) when the call may start a new round without a
        new PRIME (the agent is idle on this primed component).
        """
        report = self._open
        if report is not None and not report.filed and report.component != component:
            report = None
        elif (report is None or report.filed) and retry is not None:
            report = self._open = ActivationReport(component=component, from_version=retry[0],
                                                   to_version=retry[1], started_at=trio.current_time())
        elif report is not None and report.filed:
            report = None
        if report is not None:
            if report.cpus == 0:
                report.round_started_at = trio.current_time()
            report.cpus += 1
        return report

    def leave_activate(self, report: ActivationReport | None, x0: int, x1: int, warm_reset: bool) -> None:
        """A CPU leaves ACTIVATE with x0/x1; the round's last one files the report."""
        if report is None or report.filed:
            return
        status = s64(x0)
        if x1 == 1 and status == 0:  # call again: the round stays open
            return
        if status in _PRE_ROUND:
            report.cpus -= 1  # refused before the round: not part of it
            return
        if report.leader_at:
            report.rendezvous_s = report.leader_at - report.round_started_at
        # A CPU that warm-reset into NS got x0 = its context id, not a status.
        report.status = 0 if warm_reset else status
        report.total_s = trio.current_time() - report.started_at
        report.filed = True
        self.reports.append(report)

    def leader(self, cpu: int) -> None:
        if self._open is not None:
            self._open.leader_cpu = cpu
            self._open.leader_at = trio.current_time()

    def reason(self, text: str) -> None:
        if self._open is not None:
            self._open.reason = text

    def committed(self, version: tuple[int, int]) -> None:
        if self._open is not None:
            self._open.to_version = version
