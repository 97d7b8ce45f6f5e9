"""One shard: the nodes of a fixed slice of the roster, owned by one Trio run.

A shard builds its nodes (roster.Roster.slice), delivers the updates the
description gives them, arms the description's fault rules, and boots
each node; then the control commands (commands.py) act on the nodes a
selector picks, and the filesystem (operations.py) serves each node's
tree. Nothing here knows of processes, sockets or mounts (serve.py does),
so the pytest fixture runs the same shard in a thread of the test process.
"""

from __future__ import annotations

import gc

import attrs
import trio

from lfafs.fleet import faults as _faults
from lfafs.fleet.events import WALL, EventLog
from lfafs.fleet.node import Node
from lfafs.fleet.roster import NodeSpec, Roster
from lfafs.fleet.selector import Selector
from lfafs.platform.profile import Profile
from lfafs.smccc import Version

CHECKPOINT_EVERY = 16  # nodes built between two Trio checkpoints, so the control socket answers during boot
NO_UEFI = "none"  # the [uefi] configuration of every fleet node (uefi_profile.CONFIGURATIONS)
FREEZE_EVERY = 64  # nodes built between two gc.freeze() calls (see Shard.boot)


class Shard:
    def __init__(self, roster: Roster, index: int, *, clock: str = WALL, passthrough: str | None = None,
                 state_dir: str | None = None, events: EventLog | None = None) -> None:
        self.roster = roster
        self.index = index
        self.specs: tuple[NodeSpec, ...] = tuple(roster.slice(index))
        self.events = events or EventLog(index, clock)
        self.clock = self.events.clock
        self.passthrough = passthrough
        self.state_dir = state_dir
        self.nodes: dict[str, Node] = {}
        self.ready = trio.Event()
        self.stopping = trio.Event()  # the shutdown command: serve.py unmounts and exits
        self.nursery: trio.Nursery | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self._profiles: dict[tuple, Profile] = {}

    @property
    def description(self):
        return self.roster.description

    def profile_for(self, spec: NodeSpec) -> Profile:
        """The node's profile with its starting versions, without UEFI: one object per distinct combination.

        A fleet node serves lfa/ only (no efi/: SysfsOps of a node has no
        EFI tree), so its platform is built with ``[uefi] configuration =
        "none"``: no EFI boot, no variable store or runtime services, and
        about a third less build time a node (docs/fleet.md, "What a node costs").
        """
        key = (spec.profile, spec.versions)
        p = self._profiles.get(key)
        if p is None:
            base = self.description.profiles[spec.profile]
            versions = dict(spec.versions)
            comps = tuple(attrs.evolve(c, version=Version.parse(versions[c.name])) if c.name in versions else c
                          for c in base.components)
            p = self._profiles[key] = attrs.evolve(base, components=comps,
                                                   uefi=attrs.evolve(base.uefi, configuration=NO_UEFI))
        return p

    async def boot(self, nursery: trio.Nursery) -> None:
        """Build, provision and boot every node of the slice (the server sets ``ready`` once it serves them)."""
        self.nursery = nursery
        self.token = trio.lowlevel.current_trio_token()
        mine = {s.id for s in self.specs}
        armed = _faults.arm(self.roster, _faults.description_rules(self.roster), only=mine)
        restored = 0
        # Thousands of long-lived nodes make every full collection of Python's cyclic GC walk all of
        # them, so collections during a boot or a wave grow with the fleet and the whole costs
        # O(n^2). Nodes are kept for the shard's life: move them out of the collector's sight as
        # they are built (gc.freeze); the collect first keeps garbage already there collectable.
        gc.collect()
        for i, spec in enumerate(self.specs):
            node = Node(spec, self.profile_for(spec), self.events, state_dir=self.state_dir)
            if node.restore():
                restored += 1
            else:
                for u in spec.updates:
                    node.stage(u.component, u.version, u.image)
            for fault in armed.get(spec.id, ()):
                node.arm(fault)
            node.keep_saving()
            await node.boot(nursery, self.token, cold=False, passthrough=self.passthrough)
            self.nodes[spec.id] = node
            if i % CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()
            if i % FREEZE_EVERY == FREEZE_EVERY - 1:
                gc.freeze()
        gc.freeze()
        self.events.emit("shard.up", None, nodes=len(self.nodes), restored=restored)

    # -- selection -----------------------------------------------------------------------------

    def local(self, selector: Selector) -> list[Node]:
        """This shard's nodes that ``selector`` picks, in roster order."""
        return [self.nodes[s.id] for s in self.specs if s.id in self.nodes and selector.matches(s.labels)]

    def status(self, selector: Selector) -> dict:
        return {"shard": self.index, "shards": self.roster.shards, "clock": self.clock,
                "now": round(self.events.now(), 6), "booted": len(self.nodes), "total": len(self.specs),
                "nodes": [n.status() for n in self.local(selector)]}
