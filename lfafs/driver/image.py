"""One firmware image as the driver keeps it (struct fw_image), and how its values print.

The attribute files and modes, the driver's table of known GUIDs, the GUID
and version formats and the status strings of lfa_fw.c.
"""

from __future__ import annotations

import errno
import uuid

import attrs

from lfafs.smccc import InventoryFlags, LfaStatus, Version

STALE = -1
STALE_FLAGS = InventoryFlags.CPU_RENDEZVOUS_OPTIONAL  # a rescan marks every image capable 0, pending 0, rendezvous 0

# lfa_fw.c's table of known images (v1 onward), in table order.
KNOWN_NAMES = {
    "47d4086d-4cfe-9846-9b95-2950cbbd5a00": "TF-A BL31 runtime",
    "d6d0eea7-fcea-d54b-9782-9934f234b6e4": "BL33 non-secure payload",
    "6c0762a6-12f2-4b56-92cb-ba8f633606d9": "TF-RMM",
}

ATTRIBUTES = {  # name -> mode
    "activate": 0o200, "cancel": 0o200,
    "force_cpu_rendezvous": 0o644, "auto_activate": 0o644,
    "name": 0o444, "activation_capable": 0o444, "activation_pending": 0o444, "may_reset_cpu": 0o444,
    "cpu_rendezvous": 0o444, "current_version": 0o444, "pending_version": 0o444,
}


def lfa_error_string(status: int) -> str:
    """v2+: out-of-range values read as LFA_DEVICE_ERROR, positive ones as LFA_SUCCESS.

    The driver meant -LFA_TIMED_OUT to read "timed out", but it negates the value
    before the test, so -32 reads LFA_DEVICE_ERROR (NV-Kernels lfa_fw.c, lfa_error_string()).
    """
    if status >= 0:
        return "LFA_SUCCESS"
    try:
        return f"LFA_{LfaStatus(status).name}"
    except ValueError:
        return "LFA_DEVICE_ERROR"


def guid_of(x1: int, x2: int) -> str:
    """%pUb of {x1, x2}: the 16 bytes in memory order, lowercase."""
    return str(uuid.UUID(bytes=x1.to_bytes(8, "little") + x2.to_bytes(8, "little")))


def format_version(reg: int) -> bytes:
    return f"{Version.from_reg(reg)}\n".encode()


class DriverError(OSError):
    """An errno the file interface reports for an attribute access."""

    def __init__(self, err: int) -> None:
        super().__init__(err, errno.errorcode.get(err, str(err)))


@attrs.define
class Image:
    """struct fw_image: one directory under /sys/firmware/lfa."""

    guid: str
    image_name: str  # the table's name, or the build's name for an unknown GUID
    seq_id: int
    flags: InventoryFlags
    current_version: int
    pending_version: int
    force_cpu_rendezvous: bool = True
    auto_activate: bool = False

    @property
    def capable(self) -> bool:
        return InventoryFlags.ACTIVATION_CAPABLE in self.flags

    @property
    def pending(self) -> bool:
        return InventoryFlags.ACTIVATION_PENDING in self.flags

    @property
    def may_reset_cpu(self) -> bool:
        return InventoryFlags.MAY_RESET_CPU in self.flags

    @property
    def cpu_rendezvous(self) -> bool:
        return InventoryFlags.CPU_RENDEZVOUS_OPTIONAL not in self.flags  # the file is the inverse

    def get_image_name(self) -> str:
        """lfa_fw.c get_image_name(): the name, else the kobject name (the GUID)."""
        return self.image_name or self.guid

    def set_pending(self, x3: int) -> None:
        self.flags = (self.flags & ~InventoryFlags.ACTIVATION_PENDING) | (
            InventoryFlags(x3 & 0xF) & InventoryFlags.ACTIVATION_PENDING)
