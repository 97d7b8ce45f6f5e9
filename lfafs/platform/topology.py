"""CPU topology: sockets, clusters, cores and threads, and each CPU's MPIDR_EL1.

Linux numbers logical CPUs 0..N-1 in the order firmware lists them (MADT
or the DT cpu nodes), which on Arm servers is socket, then cluster, then
core, then thread. PSCI names a CPU by its MPIDR affinity fields; the
layout follows the Arm ARM's MPIDR_EL1 and TF-A's FVP port
(plat/arm/board/fvp/fvp_topology.c, fvp_core_pos_by_mpidr()): without
multithreading Aff0 is the core, Aff1 the cluster, Aff2 the socket; with
it (MT, bit 24) Aff0 is the thread and the rest move up one level.
"""

from __future__ import annotations

import attrs

MAX_CPUS = 512
MPIDR_MT = 1 << 24
_AFF_MAX = 256  # each affinity field is 8 bits


def _positive(_inst, attr, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _AFF_MAX:
        raise ValueError(f"topology.{attr.name} must be an integer in 1..{_AFF_MAX}, got {value!r}")


@attrs.frozen
class Topology:
    """How many of each level; every level is uniform, as on the servers lfafs models."""

    sockets: int = attrs.field(default=1, validator=_positive)
    clusters: int = attrs.field(default=1, validator=_positive)  # per socket
    cores: int = attrs.field(default=1, validator=_positive)  # per cluster
    threads: int = attrs.field(default=1, validator=_positive)  # per core

    def __attrs_post_init__(self) -> None:
        if self.cpus > MAX_CPUS:
            raise ValueError(f"topology gives {self.cpus} CPUs; at most {MAX_CPUS}")

    @property
    def cpus(self) -> int:
        return self.sockets * self.clusters * self.cores * self.threads

    @classmethod
    def flat(cls, cpus: int) -> Topology:
        """``cpus`` CPUs in clusters of up to 4 cores (the FVP's cluster size), one socket."""
        if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
            raise ValueError(f"cpus must be between 1 and {MAX_CPUS}, got {cpus!r}")
        for per_cluster in (4, 2, 1):
            if cpus % per_cluster == 0 and cpus // per_cluster <= _AFF_MAX:
                return cls(clusters=cpus // per_cluster, cores=per_cluster)
        raise ValueError(f"cannot lay out {cpus} CPUs")  # unreachable for cpus <= MAX_CPUS

    def position(self, cpu: int) -> tuple[int, int, int, int]:
        """(socket, cluster, core, thread) of logical CPU ``cpu``."""
        if not 0 <= cpu < self.cpus:
            raise ValueError(f"no CPU {cpu}: this topology has CPUs 0..{self.cpus - 1}")
        thread = cpu % self.threads
        core = cpu // self.threads % self.cores
        cluster = cpu // (self.threads * self.cores) % self.clusters
        socket = cpu // (self.threads * self.cores * self.clusters)
        return socket, cluster, core, thread

    def mpidr(self, cpu: int) -> int:
        """MPIDR_EL1 of logical CPU ``cpu`` (affinity fields and MT; RES1 bit 31 set)."""
        socket, cluster, core, thread = self.position(cpu)
        if self.threads > 1:
            return (1 << 31) | MPIDR_MT | (socket << 32) | (cluster << 16) | (core << 8) | thread
        return (1 << 31) | (socket << 16) | (cluster << 8) | core

    def cpu_of(self, mpidr: int) -> int | None:
        """The logical CPU whose affinity fields are those of ``mpidr``, or None."""
        if self.threads > 1:
            fields = ((mpidr >> 32) & 0xFF, (mpidr >> 16) & 0xFF, (mpidr >> 8) & 0xFF, mpidr & 0xFF)
        else:
            if (mpidr >> 32) & 0xFF:
                return None
            fields = ((mpidr >> 16) & 0xFF, (mpidr >> 8) & 0xFF, mpidr & 0xFF, 0)
        socket, cluster, core, thread = fields
        if socket >= self.sockets or cluster >= self.clusters or core >= self.cores or thread >= self.threads:
            return None
        return ((socket * self.clusters + cluster) * self.cores + core) * self.threads + thread

    def describe(self) -> str:
        parts = [f"{self.sockets} socket{'s' * (self.sockets > 1)}", f"{self.clusters} clusters",
                 f"{self.cores} cores", f"{self.threads} thread{'s' * (self.threads > 1)}"]
        return " x ".join(parts) + f" = {self.cpus} CPUs"
