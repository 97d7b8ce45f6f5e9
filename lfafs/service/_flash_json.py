"""flash.json: its format, and the checks that make a corrupt one a sentence naming the field.

Private to state.py, which reads the file and owns the directory. A check
raises CorruptFlash with one line: the file, the field (``flash.components[3].version``)
and what is wrong; nothing here touches the disk.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from lfafs.platform import ComponentSpec, SpecError
from lfafs.platform.profile import Profile
from lfafs.smccc import Version

FORMAT = 1
MAX_COMPONENTS = 1024
ADDED_ACTIVATORS = ("none", "generic", "sp")  # what `component add` can create (commands.py)
IMAGE_NAME = re.compile(r"[0-9a-f]{64}\.img")
_ENTRY_FIELDS = ("name", "guid", "activator", "version", "may_reset_cpu", "cpu_rendezvous_required",
                 "staged_version")
# flash's own fields; the platform may write more (Platform.flash_state), each checked by its restore
FLASH_FIELDS = ("profile", "components")
_OPTIONAL_FLASH_FIELDS = ("secure_flash",)  # the UEFI variable SP's NV store (platform/uefi_stack.py)
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


class CorruptFlash(ValueError):
    """flash.json is not what lfafs writes: one line naming the file and the field."""

def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large integer"
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class Checker:
    """Structural checks of a flash.json document; each failure is one line naming the field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> CorruptFlash:
        return CorruptFlash(f"{self.path}: {field}: {problem}; repair or move the file, or use another --state-dir")

    def object(self, value: Any, field: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(field, f"expected an object, got {_show(value)}")
        for key in keys:
            if key not in value:
                raise self.fail(f"{field}.{key}" if field != "top level" else key, "is missing")
        extra = sorted(k for k in value if k not in keys and k not in optional)
        if extra:
            raise self.fail(field, f"unknown field {_show(extra[0])}")
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"expected a non-empty string, got {_show(value)}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, f"expected true or false, got {_show(value)}")
        return value

    def version(self, value: Any, field: str) -> Version:
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 1 << 32 for p in value)):
            raise self.fail(field, f"expected [major, minor], integers below 2**32, got {_show(value)}")
        return Version(*value)

    def guid(self, value: Any, field: str) -> str:
        self.string(value, field)
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            canonical = None
        if canonical != value:
            raise self.fail(field, f"expected a lowercase GUID, got {_show(value)}")
        return value

    def document(self, doc: Any, profile: Profile | None = None,
                 extra: tuple[str, ...] = ()) -> tuple[dict, dict[str, str]]:
        """(flash, image name by GUID) of a well-formed document; ``extra``: more fields flash may have."""
        self.object(doc, "top level", ("format", "flash", "images"))
        if doc["format"] != FORMAT or isinstance(doc["format"], bool):
            raise self.fail("format", f"unknown format {_show(doc['format'])} (this lfafs reads format {FORMAT})")
        flash = self.object(doc["flash"], "flash", FLASH_FIELDS, (*_OPTIONAL_FLASH_FIELDS, *extra))
        self.string(flash["profile"], "flash.profile")
        if profile is not None and flash["profile"] != profile.name:
            raise self.fail("flash.profile", f"saved by the {flash['profile']!r} platform, not {profile.name!r}: "
                                             "start with that profile")
        if "secure_flash" in flash:
            self.secure_flash(flash["secure_flash"])
        comps = flash["components"]
        if not isinstance(comps, list) or not comps:
            raise self.fail("flash.components", "expected a non-empty list, got "
                                                + ("an empty list" if comps == [] else _show(comps)))
        if len(comps) > MAX_COMPONENTS:
            raise self.fail("flash.components", f"{len(comps)} components, more than {MAX_COMPONENTS}")
        names: dict[str, int] = {}
        guids: dict[str, int] = {}
        for i, entry in enumerate(comps):
            at = f"flash.components[{i}]"
            self.object(entry, at, _ENTRY_FIELDS)
            name = self.string(entry["name"], f"{at}.name")
            guid = self.guid(entry["guid"], f"{at}.guid")
            self.string(entry["activator"], f"{at}.activator")
            self.version(entry["version"], f"{at}.version")
            self.boolean(entry["may_reset_cpu"], f"{at}.may_reset_cpu")
            self.boolean(entry["cpu_rendezvous_required"], f"{at}.cpu_rendezvous_required")
            if entry["staged_version"] is not None:
                self.version(entry["staged_version"], f"{at}.staged_version")
            if name in names:
                raise self.fail(f"{at}.name", f"{_show(name)} is also flash.components[{names[name]}]")
            if guid in guids:
                raise self.fail(f"{at}.guid", f"{guid} is also flash.components[{guids[guid]}]")
            names[name], guids[guid] = i, i
        image_names = doc["images"]
        if not isinstance(image_names, dict):
            raise self.fail("images", f"expected an object, got {_show(image_names)}")
        for guid, name in image_names.items():
            if guid not in guids:
                raise self.fail(f"images.{guid}", "names no component of flash.components")
            if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
                raise self.fail(f"images.{guid}", f"expected <sha256>.img, got {_show(name)}")
            if comps[guids[guid]]["staged_version"] is None:
                raise self.fail(f"images.{guid}", f"an image, but flash.components[{guids[guid]}].staged_version "
                                                  "is null")
        for i, entry in enumerate(comps):
            if entry["staged_version"] is not None and entry["guid"] not in image_names:
                raise self.fail(f"flash.components[{i}].staged_version", "set, but images has no image for "
                                                                           f"{entry['guid']}")
        return flash, image_names

    def secure_flash(self, value: Any) -> None:
        store = self.object(value, "flash.secure_flash", ("format", "objects"))
        self.string(store["format"], "flash.secure_flash.format")
        objects = store["objects"]
        if not isinstance(objects, dict):
            raise self.fail("flash.secure_flash.objects", f"expected an object, got {_show(objects)}")
        for uid, data in objects.items():
            if not uid.isdigit() or not isinstance(data, str) or not _HEX.fullmatch(data):
                raise self.fail(f"flash.secure_flash.objects.{uid[:24]}", "expected a decimal uid and hex data")

    def fits(self, flash: dict, profile: Profile) -> None:
        """The saved table against the profile the daemon starts with."""
        specs = {str(s.guid): s for s in profile.components}
        saved = {entry["guid"] for entry in flash["components"]}
        for spec in profile.components:
            if spec.activator == "rmm" and str(spec.guid) not in saved:
                raise self.fail("flash.components", f"the RMM component {spec.name} ({spec.guid}) is missing")
        for i, entry in enumerate(flash["components"]):
            at = f"flash.components[{i}]"
            spec = specs.get(entry["guid"])
            if spec is not None:
                want = {"name": spec.name, "activator": spec.activator, "may_reset_cpu": spec.may_reset_cpu,
                        "cpu_rendezvous_required": spec.cpu_rendezvous_required}
                for key, value in want.items():
                    if entry[key] != value:
                        raise self.fail(f"{at}.{key}", f"{_show(entry[key])}, but the profile's {spec.name} has "
                                                        f"{_show(value)}")
                continue
            if entry["activator"] not in ADDED_ACTIVATORS:
                raise self.fail(f"{at}.activator", f"{_show(entry['activator'])}: an added component has "
                                                   f"{', '.join(ADDED_ACTIVATORS)}")
            try:
                ComponentSpec(name=entry["name"], guid=entry["guid"], activator=entry["activator"],
                              version=entry["version"], may_reset_cpu=entry["may_reset_cpu"],
                              cpu_rendezvous_required=entry["cpu_rendezvous_required"])
            except SpecError as e:
                field = "cpu_rendezvous_required" if e.field == "cpu_rendezvous" else e.field
                raise self.fail(f"{at}.{field}", e.problem) from None


def parse_json(data: bytes) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    return json.loads(data, parse_constant=constant)
