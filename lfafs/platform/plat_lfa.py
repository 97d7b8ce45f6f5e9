"""The platform port of the LFA service: TF-A's plat_lfa_* hooks and the flash behind them.

TF-A's agent asks the platform five things (include/plat/common/plat_lfa.h;
the FVP answers in plat/arm/board/fvp/fvp_lfa.c): the component table
(``plat_lfa_get_components``), whether an image is pending
(``is_plat_lfa_activation_pending``), loading and authenticating it
(``plat_lfa_load_auth_image``), a notification that activation starts
(``plat_lfa_notify_activate``) and cancel (``plat_lfa_cancel``). This
module answers them from an emulated flash: the component table, each
component's running version and the image staged out of band.

It also owns what changes that flash from outside the SMC path (stage,
unstage, add, remove, commit after activation) and its snapshot for the
service's state directory. It knows nothing of CPUs, the agent's state or
the RMM: the machine wires those.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import trio

from lfafs.platform import images
from lfafs.platform.faults import FaultTable
from lfafs.platform.images import Image
from lfafs.platform.profile import ComponentSpec, Profile, SpecError
from lfafs.platform.trace import Recorder
from lfafs.smccc import ActivatorKind, Errno, LfaStatus, Version


class FlashWrite(enum.Enum):
    """What changed the flash, which decides what a failed save of it means."""

    OUT_OF_BAND = "out-of-band"  # delivered from outside the firmware (stage, add...): a failed save undoes it
    VARIABLE = "variable"  # a UEFI SetVariable: the variable SP undoes it and answers EFI_DEVICE_ERROR
    FIRMWARE = "firmware"  # the firmware's own write (an activation's commit): it stands until it is saved


class PlatformError(RuntimeError):
    """A request the emulated machine cannot honour, with what to do instead."""


@attrs.define(eq=False)
class Component:
    """A component's flash (version, staged image), what PRIME loaded, and its activator."""

    index: int
    spec: ComponentSpec
    version: Version = attrs.field(converter=Version.parse)
    staged: bytes | None = None
    staged_version: Version | None = None
    loaded: Image | None = None  # authenticated at PRIME, activated by ACTIVATE
    activator: Any = None  # built by the machine at each boot; None for a component without one

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def guid(self) -> str:
        return str(self.spec.guid)

    @property
    def kind(self) -> str:
        return self.spec.activator


def uuid_regs(guid: uuid.UUID) -> tuple[int, int]:
    """x1/x2 of GET_INVENTORY: little-endian copies of UUID bytes 0-7 and 8-15 (TF-A lfa_main.c, memcpy)."""
    b = guid.bytes
    return int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")


def version_of(value: object) -> Version:
    try:
        return Version.parse(value)
    except ValueError as e:
        raise PlatformError(str(e)) from None


class PlatLfa:
    """The plat_lfa_* hooks over an emulated flash of components."""

    def __init__(self, profile: Profile, faults: FaultTable, recorder: Recorder) -> None:
        self.profile = profile
        self.faults = faults
        self.recorder = recorder
        self.components = [Component(index=i, spec=spec, version=spec.version)
                           for i, spec in enumerate(profile.components)]
        self.flash_changed: Callable[[FlashWrite], None] = lambda kind: None  # the machine forwards it

    # -- the component table -------------------------------------------------------------

    def component(self, key: str | int) -> Component:
        """A component by GUID, name or index."""
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < len(self.components):
                return self.components[key]
        elif isinstance(key, str):
            k = key.strip().lower()
            for c in self.components:
                if k in (c.name, c.guid):
                    return c
        names = ", ".join(c.name for c in self.components)
        raise PlatformError(f"unknown component {key!r}; this platform has {names} (or their GUIDs)")

    def rmm(self) -> Component | None:
        return next((c for c in self.components if c.kind == ActivatorKind.RMM), None)

    def image_for(self, c: Component, version: tuple[int, int]) -> bytes:
        """An image of ``c`` at ``version`` signed with the platform key."""
        rmm = c.kind == ActivatorKind.RMM
        return images.build(c.spec.guid, version, self.profile.auth_key, rmm=rmm,
                            compat=rmm and self.profile.rmm.compat_reserve_mem)

    def add(self, spec: ComponentSpec) -> Component:
        """A firmware update that adds a component to the table (seen at the next scan)."""
        if any(c.name == spec.name or c.spec.guid == spec.guid for c in self.components):
            raise PlatformError(f"a component named {spec.name} or with GUID {spec.guid} already exists")
        c = Component(index=len(self.components), spec=spec, version=spec.version)
        self.components.append(c)
        return c

    def remove(self, key: str | int) -> Component:
        """A firmware update that drops a component: later ones move down one seq id."""
        c = self.component(key)
        if c.kind == ActivatorKind.RMM:
            raise PlatformError("the RMM component cannot be removed from a running platform")
        if len(self.components) == 1:
            raise PlatformError("the last component cannot be removed (TF-A needs at least one)")
        del self.components[c.index]
        for i, other in enumerate(self.components):
            other.index = i
        return c

    # -- staging, out of band ---------------------------------------------------------------

    def stage(self, key: str | int, version: object = None, image: bytes | None = None) -> Component:
        """Deliver a new image out of band: the component reports activation pending.

        With no ``image``, one is built and signed with the platform key. An
        image that fails authentication is staged anyway: PRIME rejects it
        with LFA_AUTH_ERROR, as a real platform would.
        """
        c = self.component(key)
        if image is None:
            if version is None:
                raise PlatformError("stage needs a version or an image")
            staged_version = version_of(version)
            image = self.image_for(c, staged_version)
        else:
            if not isinstance(image, (bytes, bytearray)) or len(image) > images.MAX_PAYLOAD + 4096:
                raise PlatformError("an image must be bytes, at most 16 MB")
            try:
                header = images.parse(image)
            except images.ImageError:
                header = None
            wanted = version_of(version) if version is not None else None
            if header is not None and wanted is not None and header.version != wanted:
                raise PlatformError(f"the image says version {Version(*header.version)}, not {wanted}")
            if header is None and wanted is None:
                raise PlatformError("the image has no readable header: give its version")
            staged_version = wanted if wanted is not None else Version(*header.version)
        c.staged = bytes(image)
        c.staged_version = staged_version
        self.flash_changed(FlashWrite.OUT_OF_BAND)
        return c

    def unstage(self, key: str | int) -> Component:
        c = self.component(key)
        c.staged = None
        c.staged_version = None
        self.flash_changed(FlashWrite.OUT_OF_BAND)
        return c

    def commit(self, cid: int) -> None:
        """The component now runs what PRIME loaded: its version becomes current."""
        c = self.components[cid]
        if c.loaded is not None:
            c.version = Version(*c.loaded.version)
        if c.staged is not None and c.loaded is not None and c.staged_version == c.loaded.version:
            c.staged = None
            c.staged_version = None
        self.recorder.committed(c.version)
        self.flash_changed(FlashWrite.FIRMWARE)

    # -- the hooks the agent calls (TF-A include/plat/common/plat_lfa.h) ------------------------

    def num_components(self) -> int:
        return len(self.components)

    def uuid_regs(self, cid: int) -> tuple[int, int]:
        return uuid_regs(self.components[cid].spec.guid)

    def activator(self, cid: int):
        return self.components[cid].activator

    def is_activation_pending(self, cid: int) -> bool:
        """is_plat_lfa_activation_pending: a staged image, or hard-wired as TF-A's FVP port does it.

        TF-A plat/arm/board/fvp/fvp_lfa.c answers true for every component
        with an activator (BL31, RMM, SP1, SP2), before and after activation.
        """
        c = self.components[cid]
        if self.profile.activation_pending == "hardwired":
            return c.spec.activation_capable
        return c.staged is not None

    def versions(self, cid: int) -> tuple[int, int] | None:
        """x4/x5 of GET_INVENTORY (current, pending), or None to leave them as the caller set them."""
        if not self.profile.inventory_versions:
            return None
        c = self.components[cid]
        pending = c.staged_version.reg if c.staged_version is not None else 0
        return c.version.reg, pending

    async def load_auth_image(self, cid: int) -> int:
        """plat_lfa_load_auth_image: 0, -EAGAIN (call again), -EAUTH, -ENOMEM or another error."""
        c = self.components[cid]
        self.recorder.prime_started(c.name, c.version, c.staged_version or c.version)
        fault = await self.faults.hit(cid, "load")
        if fault is not None:
            if fault.call_again:
                return -Errno.EAGAIN
            if fault.status == LfaStatus.AUTH_ERROR:
                return -Errno.EAUTH
            if fault.status == LfaStatus.NO_MEMORY:
                return -Errno.ENOMEM
            if fault.status is not None:
                return -Errno.EINVAL
        await trio.sleep(c.spec.latencies.load)
        data = c.staged
        if data is None and self.profile.activation_pending == "hardwired":
            # TF-A's FVP plat_lfa_load_auth_image() loads nothing and returns 0: the
            # activation runs the image the component already has.
            data = self.image_for(c, c.version)
        if data is None:
            return -Errno.EINVAL
        try:
            img = images.authenticate(data, self.profile.auth_key, c.spec.guid)
        except images.ImageError as e:
            self.recorder.reason(f"PRIME: the staged image does not authenticate: {e}")
            return -Errno.EAUTH
        if c.kind == ActivatorKind.RMM and not img.rmm_ifc:
            self.recorder.reason("PRIME: not an RMM image (no RMM-EL3 interface version)")
            return -Errno.EAUTH
        c.loaded = img
        return 0

    async def notify_activate(self, cid: int) -> int:
        fault = await self.faults.hit(cid, "notify")
        return -Errno.EINVAL if fault is not None and fault.status is not None else 0

    def cancel(self, cid: int) -> int:
        return 0

    # -- the flash as the service saves it ------------------------------------------------------

    def flash_state(self) -> dict:
        """What survives a power cycle: the component table, versions and staged images."""
        return {
            "profile": self.profile.name,
            "components": [{
                "name": c.name, "guid": c.guid, "activator": c.kind,
                "version": list(c.version), "may_reset_cpu": c.spec.may_reset_cpu,
                "cpu_rendezvous_required": c.spec.cpu_rendezvous_required,
                "staged_version": list(c.staged_version) if c.staged_version else None,
            } for c in self.components],
        }

    def staged_images(self) -> dict[str, bytes]:
        return {c.guid: c.staged for c in self.components if c.staged is not None}

    def restore(self, state: dict, images_by_guid: dict[str, bytes]) -> None:
        """Apply a saved flash: the table, versions and staged images (before anything runs)."""
        if state.get("profile") != self.profile.name:
            raise PlatformError(f"the saved state is of the {state.get('profile')!r} platform, not "
                                f"{self.profile.name!r}: use that profile or another state directory")
        saved = {c["guid"]: c for c in state["components"]}
        for c in list(self.components):
            if c.guid not in saved and c.kind != ActivatorKind.RMM:
                self.remove(c.index)
        for entry in state["components"]:
            if not any(c.guid == entry["guid"] for c in self.components):
                try:
                    spec = ComponentSpec(
                        name=entry["name"], guid=entry["guid"], activator=entry["activator"],
                        version=entry["version"], may_reset_cpu=entry["may_reset_cpu"],
                        cpu_rendezvous_required=entry["cpu_rendezvous_required"])
                except SpecError as e:
                    raise PlatformError(f"saved component {entry.get('name')!r}: {e}") from None
                self.add(spec)
            c = self.component(entry["guid"])
            c.version = version_of(entry["version"])
            if entry["staged_version"] and entry["guid"] in images_by_guid:
                c.staged = images_by_guid[entry["guid"]]
                c.staged_version = version_of(entry["staged_version"])
