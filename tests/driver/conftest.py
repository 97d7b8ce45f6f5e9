"""A driver wired to an emulated platform through an SMC conduit, as the daemon wires them."""

from __future__ import annotations

import pytest

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import platform_conduit
from lfafs.platform import Platform

RMM_GUID = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
BL31_GUID = "47d4086d-4cfe-9846-9b95-2950cbbd5a00"
BL33_GUID = "d6d0eea7-fcea-d54b-9782-9934f234b6e4"
SP1_GUID = "f07b2a96-1d47-4d17-9ec8-86a64e253e5c"


class Rig:
    def __init__(self, platform: Platform, driver: LfaDriver) -> None:
        self.platform = platform
        self.driver = driver

    async def read(self, guid: str, attr: str) -> bytes:
        return await self.driver.read(guid, attr)

    async def write(self, guid: str, attr: str, data: bytes = b"1\n") -> int:
        return await self.driver.write(guid, attr, data)

    def smcs(self, name: str) -> list:
        return [r for r in self.platform.trace.records() if r.name == name]


PROFILE = "fvp-den0147"  # staged images, versions in x4/x5, the DT interrupt


async def make_rig(nursery, *, abi: str = "v3", platform: Platform | None = None,
                   notification: str | None = "profile") -> Rig:
    p = platform or Platform.from_profile(PROFILE)
    conduit = platform_conduit(p)
    source = p.profile.notification if notification == "profile" else notification
    d = LfaDriver(conduit, abi=abi, notification=source)
    await d.probe(nursery)
    return Rig(p, d)


@pytest.fixture
async def rig(nursery):
    return await make_rig(nursery)
