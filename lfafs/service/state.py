"""Persistence of the platform's flash under --state-dir.

The directory holds:

    flash.json   the component table, the current versions, which image is staged
    images/      the staged images, each named by its SHA-256
    lock         flock()ed by the one daemon that uses the directory; says its pid and mountpoint

What is promised (docs/reliability.md says how each promise is tested):

- Atomic. Every file is written to ``<name>.tmp.<pid>``, fsynced and
  renamed, images before the JSON that names them, so a SIGKILL at any
  moment leaves the old flash or the new one, never a mixture. A failed
  write removes its temporary file; a daemon that was killed leaves one,
  removed at the next start (under the lock).
- One daemon per directory. The second is refused with one line naming the
  first (pid, mountpoint).
- What a caller is told happened is on disk. A change made out of band
  (stage, unstage, component add and remove) whose save fails is undone
  and the caller gets FlashWriteError, so the platform and the disk never
  disagree. An activation cannot be undone: the new image already runs
  when the firmware commits it (TF-A has no way back). As with PSA FWU's
  trial state, where the new bank runs but is not yet accepted in the
  metadata, the activation stands, the save is retried until the disk takes
  it (``FlashWriter.retry``), and a restart before then boots the old
  version with the update still staged: the same outcome as a SIGKILL in
  the middle of an activation.
- A corrupt flash.json is refused with one line naming the file and the
  field, before anything is written; so are truncated or garbage files.

RAM state (the RMM's memory, realms) is not kept: a restart is a cold boot.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from lfafs.platform import ComponentSpec, Platform, PlatformError, SpecError
from lfafs.platform import images as _images
from lfafs.platform.profile import Profile
from lfafs.smccc import Version

FLASH = "flash.json"
IMAGES = "images"
LOCK = "lock"
FORMAT = 1
MAX_FLASH_BYTES = 4 << 20  # far above any table; a bigger flash.json is not ours
MAX_COMPONENTS = 1024
ADDED_ACTIVATORS = ("none", "generic", "sp")  # what `component add` can create (commands.py)
_IMAGE_NAME = re.compile(r"[0-9a-f]{64}\.img")
_TEMPORARY = re.compile(r".+\.tmp\.\d+")
_ENTRY_FIELDS = ("name", "guid", "activator", "version", "may_reset_cpu", "cpu_rendezvous_required",
                 "staged_version")
# flash's own fields; the platform may write more (Platform.flash_state), each checked by its restore
_FLASH_FIELDS = ("profile", "components")
_OPTIONAL_FLASH_FIELDS = ("secure_flash",)  # the UEFI variable SP's NV store (platform/uefi_stack.py)
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


class StateError(RuntimeError):
    """The state directory cannot be used: one line naming the file, what is wrong and what to do."""


class StateBusy(StateError):
    """Another daemon holds the state directory."""


class FlashWriteError(StateError):
    """A save failed (full or read-only disk, no descriptors); the change it was saving was undone."""


# -- files --------------------------------------------------------------------------------------------------


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``path`` so that a reader sees the old bytes or the new ones; OSError changes nothing.

    The directory is opened first, so that once the rename is done nothing
    can fail for want of a descriptor; an fsync of the directory that fails
    after the rename is ignored, since the new name is already what every
    reader sees.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_limited(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StateError(f"{path}: larger than {limit} bytes: not an lfafs file; move it away or use another "
                         "--state-dir")
    return data


def _strerror(e: OSError) -> str:
    return e.strerror or str(e)


# -- checking flash.json ---------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large integer"
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class _Checker:
    """Structural checks of a flash.json document; each failure is one line naming the field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> StateError:
        return StateError(f"{self.path}: {field}: {problem}; repair or move the file, or use another --state-dir")

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
        flash = self.object(doc["flash"], "flash", _FLASH_FIELDS, (*_OPTIONAL_FLASH_FIELDS, *extra))
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
            if not isinstance(name, str) or not _IMAGE_NAME.fullmatch(name):
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


def _parse_json(data: bytes) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    return json.loads(data, parse_constant=constant)


# -- the directory ------------------------------------------------------------------------------------------


@attrs.define
class _Loaded:
    flash: dict
    images: dict[str, bytes]
    names: set[str]  # image files flash.json names


class StateDir:
    """A --state-dir. Creating one touches nothing; ``acquire`` (the daemon) locks and prepares it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._lock_fd: int | None = None
        self._on_disk: set[str] = set()  # image files the flash.json on disk names

    @property
    def flash_file(self) -> str:
        return os.path.join(self.path, FLASH)

    @property
    def images_dir(self) -> str:
        return os.path.join(self.path, IMAGES)

    # -- reading (touches nothing) --------------------------------------------------------

    def load(self, profile: Profile | Platform | None = None) -> tuple[dict, dict[str, bytes]] | None:
        """The saved flash and its staged images, or None for a new state directory.

        Everything is checked before it is returned (and, given the
        ``profile`` or the platform it will be restored into, against it), so
        the platform's restore gets a well-formed table; StateError names the
        file and field otherwise. Nothing is written.
        """
        loaded = self._read(profile)
        return None if loaded is None else (loaded.flash, loaded.images)

    def _read(self, target: Profile | Platform | None) -> _Loaded | None:
        platform = target if isinstance(target, Platform) else None
        profile = platform.profile if platform is not None else target
        # whatever this platform writes into flash (Platform.flash_state) it may read back
        extra = tuple(k for k in platform.flash_state() if k not in _FLASH_FIELDS) if platform is not None else ()
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StateError(f"{self.path} is not a directory: give --state-dir a directory")
        path = self.flash_file
        if not os.path.lexists(path):
            return None
        check = _Checker(path)
        try:
            data = _read_limited(path, MAX_FLASH_BYTES)
        except OSError as e:
            raise StateError(f"{path} cannot be read: {_strerror(e)}") from None
        try:
            doc = _parse_json(data)
        except RecursionError:
            raise StateError(f"{path} cannot be read: nested too deeply, not an lfafs flash") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise StateError(f"{path} cannot be read: not JSON ({e}); repair or move the file, or use another "
                             "--state-dir") from None
        flash, names = check.document(doc, profile, extra)
        if profile is not None:
            check.fits(flash, profile)
        staged = {}
        limit = _images.MAX_PAYLOAD + (1 << 20)
        for entry in flash["components"]:
            name = names.get(entry["guid"])
            if name is None:
                continue
            file = os.path.join(self.images_dir, name)
            try:
                blob = _read_limited(file, limit)
            except OSError as e:
                raise check.fail(f"images.{entry['guid']}", f"{file} cannot be read: {_strerror(e)}") from None
            if hashlib.sha256(blob).hexdigest() != name.removesuffix(".img"):
                raise check.fail(f"images.{entry['guid']}", f"the image {name} does not match its checksum")
            try:
                header = _images.parse(blob)
            except _images.ImageError:
                header = None  # staged as is, with its version given: PRIME will refuse it
            if header is not None and Version(*header.version) != Version(*entry["staged_version"]):
                raise check.fail(f"flash.components[{flash['components'].index(entry)}].staged_version",
                                 f"{Version(*entry['staged_version'])}, but its image is version "
                                 f"{Version(*header.version)}")
            staged[entry["guid"]] = blob
        return _Loaded(flash, staged, set(names.values()))

    def holder(self) -> str | None:
        """Who holds the lock, as 'pid N serving M', or None when nobody does (touches nothing)."""
        try:
            fd = os.open(os.path.join(self.path, LOCK), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # no lock file: nobody has used the directory, or it cannot be opened at all
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _describe_holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def check_free(self) -> None:
        """StateBusy when another daemon uses the directory (touches nothing)."""
        who = self.holder()
        if who is not None:
            raise StateBusy(_busy_message(self.path, who))

    # -- owning it (the daemon) --------------------------------------------------------------

    def acquire(self, mountpoint: str = "") -> None:
        """Lock the directory for this process (StateBusy if another daemon has it), then remove the
        temporary files a killed daemon left."""
        try:
            os.makedirs(self.images_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StateError(f"cannot use {self.path} as the state directory: {_strerror(e)}") from None
        lock = os.path.join(self.path, LOCK)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.EACCES):
                raise StateError(f"cannot use {self.path} as the state directory: {lock}: {_strerror(e)}") from None
            try:  # a read-only directory can still be locked, if it was used before
                fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                raise StateError(f"cannot use {self.path} as the state directory: {lock}: "
                                 f"{_strerror(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _describe_holder(fd)
            os.close(fd)
            raise StateBusy(_busy_message(self.path, who)) from None
        with contextlib.suppress(OSError):  # who we are: only to explain a refusal to the next daemon
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "mountpoint": mountpoint}).encode() + b"\n", 0)
        self._lock_fd = fd
        self._remove_temporaries()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_temporaries(self) -> None:
        for d in (self.path, self.images_dir):
            with contextlib.suppress(OSError):
                for name in os.listdir(d):
                    if _TEMPORARY.fullmatch(name):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(d, name))

    def _remove_unnamed_images(self) -> None:
        """Images no flash.json names (left by a save that was killed): best effort."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.images_dir):
                if _IMAGE_NAME.fullmatch(name) and name not in self._on_disk:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.images_dir, name))

    def save(self, flash: dict, staged: dict[str, bytes]) -> None:
        """Write the flash atomically; FlashWriteError (and the disk as it was) when it cannot."""
        names = {guid: hashlib.sha256(data).hexdigest() + ".img" for guid, data in staged.items()}
        written = []
        try:
            for guid, data in staged.items():
                file = os.path.join(self.images_dir, names[guid])
                if names[guid] not in self._on_disk and names[guid] not in written and not os.path.exists(file):
                    _atomic_write(file, data)
                    written.append(names[guid])
            doc = {"format": FORMAT, "flash": flash, "images": names}
            _atomic_write(self.flash_file, json.dumps(doc, indent=1).encode())
        except OSError as e:
            for name in written:  # images the flash.json on disk does not name
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.images_dir, name))
            raise FlashWriteError(f"{self.path} cannot be written: {_strerror(e)}") from None
        self._on_disk = set(names.values())
        self._remove_unnamed_images()

    def attach(self, platform: Platform, mountpoint: str = "",
               log: Callable[[str], None] | None = None) -> FlashWriter:
        """Lock the directory, restore the saved flash into ``platform`` and save every later change.

        Refusals (StateBusy, a corrupt or mismatched flash.json) write nothing.
        """
        self.acquire(mountpoint)
        try:
            loaded = self._read(platform)
            if loaded is None:
                self.save(platform.flash_state(), platform.staged_images())  # a new directory
            else:
                try:
                    platform.restore_flash(loaded.flash, loaded.images)
                except PlatformError as e:
                    raise StateError(f"{self.flash_file}: {e}") from None
                self._on_disk = loaded.names
                self._remove_unnamed_images()
        except BaseException:
            self.release()
            raise
        writer = FlashWriter(self, platform, log or _log)
        platform.flash_changed = writer
        return writer


def _describe_holder(fd: int) -> str:
    """'pid N serving M' from the lock file's contents, or from /proc/locks when they are missing."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, mnt = int(info["pid"]), str(info["mountpoint"])
        return f"pid {pid} serving {mnt}" if mnt else f"pid {pid}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with contextlib.suppress(OSError, ValueError):
        ino = os.fstat(fd).st_ino
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(ino):
                    return f"pid {parts[4]}"
    return "another process"


def _busy_message(path: str, who: str) -> str:
    return (f"the state directory {path} is in use by the lfafs daemon {who}: stop it first "
            "(lfafs umount its mountpoint) or give another --state-dir")


def _log(line: str) -> None:
    print(f"lfafs: {line}", file=sys.stderr, flush=True)


# -- saving every change ---------------------------------------------------------------------------------


@attrs.frozen
class _Snapshot:
    """The flash as the platform holds it: the component objects in table order and their flash fields."""

    table: tuple
    fields: tuple

    @classmethod
    def of(cls, platform: Platform) -> _Snapshot:
        comps = tuple(platform.components)
        return cls(comps, tuple((c.version, c.staged, c.staged_version) for c in comps))

    def restore(self, platform: Platform) -> None:
        """Put the table and every component's version and staged image back as they were."""
        table_changed = len(platform.components) != len(self.table) or any(
            a is not b for a, b in zip(platform.components, self.table))
        platform.components[:] = self.table
        for i, (c, (version, staged, staged_version)) in enumerate(zip(self.table, self.fields)):
            c.index, c.version, c.staged, c.staged_version = i, version, staged, staged_version
        if table_changed:
            platform.agent.table_changed()  # the agent's idea of the table follows it back

    def out_of_band(self, platform: Platform) -> bool:
        """Whether the change since the snapshot came from outside the firmware, and so can be undone.

        Stage, unstage, component add and remove change the table or a staged
        image and never a running version. Only an activation's commit
        changes a running version (plat_lfa.PlatLfa.commit); a change that
        touches no component (the UEFI variable store) is firmware's too.
        """
        same_table = len(platform.components) == len(self.table) and all(
            a is b for a, b in zip(platform.components, self.table))
        if not same_table:
            return True
        now = [(c.version, c.staged, c.staged_version) for c in self.table]
        if any(n[0] != f[0] for n, f in zip(now, self.fields)):
            return False
        return any(n[1] is not f[1] or n[2] != f[2] for n, f in zip(now, self.fields))


class FlashWriter:
    """The platform's ``flash_changed`` hook: every change of the flash is saved before anyone hears of it.

    Out of band (stage, unstage, component add and remove) a failed save
    undoes the change and raises FlashWriteError to the caller. A write by
    the firmware itself (an activation's commit, which cannot be undone, the
    module's docstring says why; the UEFI variable store) never raises into
    it: it stands, ``unsaved`` says why it is not on disk, and ``retry`` (the
    daemon calls it every second, and at exit) writes it once the disk takes it.
    """

    def __init__(self, state: StateDir, platform: Platform, log: Callable[[str], None]) -> None:
        self.state = state
        self.platform = platform
        self.log = log
        self.unsaved: str | None = None
        self._before = _Snapshot.of(platform)

    def __call__(self, platform: Platform) -> None:
        try:
            self.state.save(platform.flash_state(), platform.staged_images())
        except FlashWriteError as e:
            if self._before.out_of_band(platform):
                self._before.restore(platform)
                raise FlashWriteError(f"{e}: the change was not made") from None
            self.unsaved = str(e)
            self.log(f"{e}: a firmware write (an activation's commit, a UEFI variable) stands but is not saved "
                     "yet; lfafs retries every second, and a restart before then boots the flash as last saved "
                     "(an activated update still staged)")
        else:
            if self.unsaved is not None:
                self.log(f"the flash is saved again in {self.state.path}")
            self.unsaved = None
        self._before = _Snapshot.of(platform)

    def retry(self) -> bool:
        """Save an activation that could not be saved; True when nothing is left unsaved."""
        if self.unsaved is None:
            return True
        try:
            self.state.save(self.platform.flash_state(), self.platform.staged_images())
        except FlashWriteError as e:
            self.unsaved = str(e)
            return False
        self.unsaved = None
        self.log(f"the flash is saved again in {self.state.path}")
        return True
