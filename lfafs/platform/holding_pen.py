"""The CPU rendezvous of an activation (TF-A services/std_svc/lfa/lfa_holding_pen.c).

Every running CPU enters; the one whose arrival makes the count reach the
number of running CPUs (PSCI ON or ON_PENDING) is the leader and does the
work; the others wait and return the leader's status. There is no timeout:
as on hardware, a rendezvous that not every running CPU joins never ends.
"""

from __future__ import annotations

import attrs
import trio


@attrs.define
class _Round:
    released: trio.Event = attrs.field(factory=trio.Event)
    status: int = 0


@attrs.define
class HoldingPen:
    count: int = 0
    _round: _Round | None = None

    def arrive(self, running_cpus: int) -> bool:
        """Enter the pen; True for the leader (lfa_holding_start)."""
        if self._round is None:
            self._round = _Round()
        self.count += 1
        return self.count >= running_cpus

    async def wait(self) -> int:
        """A non-leader waits for the leader's status (lfa_holding_wait)."""
        rnd = self._round
        if rnd is None:
            raise RuntimeError("holding pen: wait() without arrive()")
        await rnd.released.wait()
        return rnd.status

    def release(self, status: int) -> None:
        """The leader hands its status to everyone waiting (lfa_holding_release)."""
        rnd = self._round
        self.count = 0
        self._round = None
        if rnd is not None:
            rnd.status = status
            rnd.released.set()
