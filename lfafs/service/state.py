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
  the middle of an activation. Any other write by the firmware itself (the
  UEFI variable store) is treated the same way.
- A corrupt flash.json is refused with one line naming the file and the
  field, before anything is written; so are truncated or garbage files.

RAM state (the RMM's memory, realms) is not kept: a restart is a cold boot.

The directory, its lock, the atomic writes and the hook that saves each
change make one promise and are kept together, so that one reading shows
it is kept; flash.json's format and checks are in _flash_json.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable

import attrs

from lfafs.platform import Platform, PlatformError
from lfafs.platform import images as _images
from lfafs.platform.plat_lfa import FlashWrite
from lfafs.platform.profile import Profile
from lfafs.service._flash_json import FLASH_FIELDS, FORMAT, IMAGE_NAME, Checker, CorruptFlash, parse_json
from lfafs.smccc import Version

FLASH = "flash.json"
IMAGES = "images"
LOCK = "lock"
MAX_FLASH_BYTES = 4 << 20  # far above any table; a bigger flash.json is not ours
_TEMPORARY = re.compile(r".+\.tmp\.\d+")


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
        try:
            return self._read_checked(target)
        except CorruptFlash as e:
            raise StateError(str(e)) from None

    def _read_checked(self, target: Profile | Platform | None) -> _Loaded | None:
        platform = target if isinstance(target, Platform) else None
        profile = platform.profile if platform is not None else target
        # whatever this platform writes into flash (Platform.flash_state) it may read back
        extra = tuple(k for k in platform.flash_state() if k not in FLASH_FIELDS) if platform is not None else ()
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StateError(f"{self.path} is not a directory: give --state-dir a directory")
        path = self.flash_file
        if not os.path.lexists(path):
            return None
        check = Checker(path)
        try:
            data = _read_limited(path, MAX_FLASH_BYTES)
        except OSError as e:
            raise StateError(f"{path} cannot be read: {_strerror(e)}") from None
        try:
            doc = parse_json(data)
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
        """Lock the directory for this process (StateBusy if another daemon has it), say who holds
        it, and remove the temporary files a killed daemon left."""
        self._lock(create=True)
        self._prepare(mountpoint)

    def _lock(self, *, create: bool) -> None:
        """flock() the lock file (StateBusy if held). Without ``create`` a missing one is left
        missing: no daemon has used the directory, and a refused start must not make it."""
        lock = os.path.join(self.path, LOCK)
        if create:
            try:
                os.makedirs(self.path, mode=0o700, exist_ok=True)
            except OSError as e:
                raise StateError(f"cannot use {self.path} as the state directory: {_strerror(e)}") from None
        # Held open read-only (flock does not care), so that the file system can still be
        # remounted read-only under a running daemon, as a failing disk is.
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            if create:
                raise StateError(f"cannot use {self.path} as the state directory: {lock} cannot be made") from None
            return
        except OSError as e:
            raise StateError(f"cannot use {self.path} as the state directory: {lock}: {_strerror(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _describe_holder(fd)
            os.close(fd)
            raise StateBusy(_busy_message(self.path, who)) from None
        self._lock_fd = fd

    def _prepare(self, mountpoint: str) -> None:
        """Ours now: say who holds it, make images/, remove what a killed daemon left behind."""
        lock = os.path.join(self.path, LOCK)
        with contextlib.suppress(OSError):  # who we are: only to explain a refusal to the next daemon
            w = os.open(lock, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                os.write(w, json.dumps({"pid": os.getpid(), "mountpoint": mountpoint}).encode() + b"\n")
            finally:
                os.close(w)
        try:
            os.makedirs(self.images_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            self.release()
            raise StateError(f"cannot use {self.path} as the state directory: {_strerror(e)}") from None
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
                if IMAGE_NAME.fullmatch(name) and name not in self._on_disk:
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

        Refusals (StateBusy, a corrupt or mismatched flash.json) write nothing, not even a lock
        file: the directory is checked first, under the lock when a daemon has used it before.
        """
        self._lock(create=False)
        try:
            loaded = self._read(platform)
            if self._lock_fd is None:  # a directory no daemon has used: make it ours, then look again
                self._lock(create=True)
                loaded = self._read(platform)
            self._prepare(mountpoint)
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
            a is not b for a, b in zip(platform.components, self.table, strict=False))
        platform.components[:] = self.table
        for i, (c, (version, staged, staged_version)) in enumerate(zip(self.table, self.fields, strict=True)):
            c.index, c.version, c.staged, c.staged_version = i, version, staged, staged_version
        if table_changed:
            platform.agent.table_changed()  # the agent's idea of the table follows it back


class FlashWriter:
    """The platform's ``flash_changed`` hook: every change of the flash is saved before anyone hears of it.

    Out of band (stage, unstage, component add and remove) a failed save
    undoes the change and raises FlashWriteError to the caller; so does a
    UEFI SetVariable, which the variable SP then undoes and answers
    EFI_DEVICE_ERROR. An activation's commit cannot be undone (the module's
    docstring says why): it stands, ``unsaved`` says why it is not on disk,
    and ``retry`` (the daemon calls it every second, and at exit) writes it
    once the disk takes it.
    """

    def __init__(self, state: StateDir, platform: Platform, log: Callable[[str], None]) -> None:
        self.state = state
        self.platform = platform
        self.log = log
        self.unsaved: str | None = None
        self._before = _Snapshot.of(platform)

    def __call__(self, platform: Platform, kind: FlashWrite = FlashWrite.OUT_OF_BAND) -> None:
        try:
            self.state.save(platform.flash_state(), platform.staged_images())
        except FlashWriteError as e:
            if kind is FlashWrite.OUT_OF_BAND:
                self._before.restore(platform)
                raise FlashWriteError(f"{e}: the change was not made") from None
            if kind is FlashWrite.VARIABLE:
                # The variable SP undoes the SetVariable and answers EFI_DEVICE_ERROR
                # (variable_store.SecureStorage.commit), as a real SP whose flash write fails.
                self.log(f"{e}: a UEFI variable write was refused (EFI_DEVICE_ERROR)")
                raise
            self.unsaved = str(e)
            self.log(f"{e}: a firmware write (an activation's commit) stands but is not saved "
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
