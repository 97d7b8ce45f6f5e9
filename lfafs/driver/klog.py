"""What the driver leaves behind for user space besides sysfs: printk lines and uevents.

The printk lines are what ``dmesg`` shows (prefix ``Arm LFA: `` from the
driver's pr_fmt). Uevents are kept apart, because the kernel never prints
them: they are what ``udevadm monitor --kernel`` shows. Only the NVIDIA v3
tree sends one (a change event on its SMCCC bus device, NV-Kernels
drivers/firmware/smccc/lfa_fw.c, lfa_notify_inventory_update()).
"""

from __future__ import annotations

import collections

import attrs
import trio

PR_FMT = "Arm LFA: "


@attrs.frozen
class Uevent:
    """One kobject_uevent(): the action, the device path under /sys and its subsystem."""

    time: float
    action: str
    devpath: str
    subsystem: str

    def __str__(self) -> str:
        # The form of `udevadm monitor --kernel`.
        return f"KERNEL[{self.time:.6f}] {self.action:<8} {self.devpath} ({self.subsystem})"


class KernelLog:
    """The driver's printk lines, as dmesg shows them, and the uevents it sent."""

    def __init__(self, capacity: int = 1024) -> None:
        self.lines: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=capacity)
        self.uevents: collections.deque[Uevent] = collections.deque(maxlen=capacity)
        self._t0: float | None = None
        self.changed = trio.Event()

    def _now(self) -> float:
        try:
            now = trio.current_time()
        except RuntimeError:
            now = 0.0
        if self._t0 is None:  # times count from the driver's first record, as dmesg counts from boot
            self._t0 = now
        return now - self._t0

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def _add(self, level: str, text: str) -> None:
        self.lines.append((self._now(), level, PR_FMT + text))
        self._wake()

    def info(self, text: str) -> None:
        self._add("info", text)

    def warn(self, text: str) -> None:
        self._add("warn", text)

    def err(self, text: str) -> None:
        self._add("err", text)

    def uevent(self, action: str, devpath: str, subsystem: str) -> None:
        self.uevents.append(Uevent(self._now(), action, devpath, subsystem))
        self._wake()

    def text(self) -> list[str]:
        return [f"[{t:12.6f}] {msg}" for t, _, msg in self.lines]

    def messages(self) -> list[str]:
        """The lines without their timestamps, for comparisons."""
        return [msg for _, _, msg in self.lines]
