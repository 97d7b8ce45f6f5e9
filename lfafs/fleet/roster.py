"""The roster: every node a description makes, in order, and which shard owns which.

Nodes are numbered 0..N-1, cohort by cohort in file order; a node's id,
labels, kernel ABI, starting versions and the updates delivered to it
follow from the description and its seed alone. Shard ``i`` of ``S`` owns
the fixed slice ``[i*N//S, (i+1)*N//S)``, so any process that reads the
same file knows who serves a node without asking anyone: a StatefulSet or
an Indexed Job can run one shard per pod with no coordinator.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from lfafs.fleet.description import Description, DescriptionError, Update, Weighted
from lfafs.fleet.latency import rng_for
from lfafs.fleet.selector import Selector


@attrs.frozen
class NodeSpec:
    """One node as the description makes it."""

    index: int
    id: str
    cohort: str
    profile: str  # an embedded profile name or a path (a key of Description.profiles)
    abi: str
    cpus: int | None
    versions: tuple[tuple[str, str], ...]  # starting versions that differ from the profile's
    labels: Mapping[str, str] = attrs.field(eq=False)
    updates: tuple[Update, ...] = ()


def draw(ids: Sequence[str], ratio: float | None, count: int | None, *seed: object) -> list[str]:
    """The ids a rule hits: all of them, ``count`` of them, or ``ratio`` of them, drawn with ``seed``.

    The draw is over the ids in roster order, so it is the same in every
    process that reads the description; the result keeps roster order.
    """
    if ratio is None and count is None:
        return list(ids)
    k = count if count is not None else math.floor(ratio * len(ids) + 0.5)
    k = min(k, len(ids))
    chosen = set(rng_for(*seed).sample(range(len(ids)), k))
    return [ids[i] for i in sorted(chosen)]


def _choose(weighted: Weighted, *seed: object) -> str:
    if len(weighted) == 1:
        return weighted[0][0]
    values, weights = zip(*weighted, strict=True)
    return rng_for(*seed).choices(values, weights)[0]


class Roster:
    """The nodes of a description, served by ``shards`` shards."""

    def __init__(self, description: Description, shards: int | None = None) -> None:
        self.description = description
        self.shards = shards or description.shards
        if not 1 <= self.shards <= max(1, description.total):
            raise ValueError(f"{self.shards} shards for {description.total} nodes: give 1..{description.total}")
        total = description.total
        self._starts = [i * total // self.shards for i in range(self.shards)]
        seed = description.seed
        nodes: list[NodeSpec] = []
        for cohort in description.cohorts:
            first = len(nodes)
            ids = [cohort.id.format(cohort=cohort.name, index=i) for i in range(cohort.count)]
            delivered: dict[str, list[Update]] = {}
            for j, u in enumerate(cohort.updates):
                for node_id in draw(ids, u.ratio, u.count, seed if u.seed is None else u.seed, "update",
                                    cohort.name, j):
                    delivered.setdefault(node_id, []).append(u)
            for i, node_id in enumerate(ids):
                index = first + i
                abi = _choose(cohort.kernel_abi, seed, "abi", node_id)
                versions = tuple((comp, _choose(w, seed, "version", node_id, comp)) for comp, w in cohort.versions)
                labels = {key: values[i % len(values)] for key, values in cohort.labels}
                labels.update(node=node_id, cohort=cohort.name, shard=str(self.shard_of_index(index)),
                              profile=description.profiles[cohort.profile].name, abi=abi)
                nodes.append(NodeSpec(index, node_id, cohort.name, cohort.profile, abi, cohort.cpus, versions,
                                      labels, tuple(delivered.get(node_id, ()))))
        self.nodes: tuple[NodeSpec, ...] = tuple(nodes)
        self.by_id: dict[str, NodeSpec] = {}
        for n in nodes:
            if n.id in self.by_id:
                raise DescriptionError(description.source, f"cohort {n.cohort}: id",
                                       f"node id {n.id!r} is also a node of cohort {self.by_id[n.id].cohort} "
                                       "(give the cohorts different id templates)")
            self.by_id[n.id] = n

    def __len__(self) -> int:
        return len(self.nodes)

    def shard_of_index(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index) - 1

    def shard_of(self, node_id: str) -> int:
        return self.shard_of_index(self.by_id[node_id].index)

    def slice(self, shard: int) -> Sequence[NodeSpec]:
        """The nodes shard ``shard`` owns."""
        if not 0 <= shard < self.shards:
            raise ValueError(f"no shard {shard}: this fleet has shards 0..{self.shards - 1}")
        end = self._starts[shard + 1] if shard + 1 < self.shards else len(self.nodes)
        return self.nodes[self._starts[shard]:end]

    def select(self, selector: Selector, among: Iterable[NodeSpec] | None = None) -> list[NodeSpec]:
        return [n for n in (self.nodes if among is None else among) if selector.matches(n.labels)]
