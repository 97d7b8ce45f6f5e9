"""What a control command may touch: one mount's platform, its driver and where it is served.

The daemon's ``Mount`` is a Session with the Trio handles added; commands take
a Session, so they never import the daemon (the daemon imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from lfafs.driver import LfaDriver
from lfafs.platform import Platform

if TYPE_CHECKING:
    from lfafs.service.efi_boot import EfiKernel


@attrs.define
class Session:
    mountpoint: str
    platform: Platform
    driver: LfaDriver
    efi: EfiKernel | None = attrs.field(default=None, kw_only=True)  # the kernel's EFI side, with UEFI

    @property
    def abi(self) -> str:
        """The Linux driver series presented ("v1", "v2", "v3", ...)."""
        return self.driver.abi.name
