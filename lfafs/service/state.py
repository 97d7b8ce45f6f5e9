"""Persistence of the platform's flash under --state-dir.

flash.json holds the component table, the current versions and which image
is staged; images/ holds the staged images, named by their SHA-256. Every
write is atomic (a temporary file, fsync, rename, fsync of the directory),
images before the JSON that names them, so a SIGKILL at any moment leaves
either the old flash or the new one, never a mixture. RAM state (the RMM's
memory, realms) is not kept: a restart is a cold boot.
"""

from __future__ import annotations

import hashlib
import json
import os

FLASH = "flash.json"
FORMAT = 1


class StateError(RuntimeError):
    pass


def _atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateDir:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        try:
            os.makedirs(os.path.join(self.path, "images"), mode=0o700, exist_ok=True)
        except OSError as e:
            raise StateError(f"cannot use {self.path} as the state directory: {e.strerror}") from None

    def load(self) -> tuple[dict, dict[str, bytes]] | None:
        """The saved flash and its staged images, or None for a new state directory."""
        path = os.path.join(self.path, FLASH)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
            if doc.get("format") != FORMAT:
                raise StateError(f"{path}: unknown format {doc.get('format')!r}")
            images = {}
            for guid, name in doc.get("images", {}).items():
                with open(os.path.join(self.path, "images", name), "rb") as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() != name.removesuffix(".img"):
                    raise StateError(f"{path}: the image {name} does not match its checksum")
                images[guid] = data
            return doc["flash"], images
        except (OSError, ValueError, KeyError) as e:
            raise StateError(f"{path} cannot be read: {e}") from None

    def save(self, flash: dict, images: dict[str, bytes]) -> None:
        names = {}
        for guid, data in images.items():
            name = hashlib.sha256(data).hexdigest() + ".img"
            path = os.path.join(self.path, "images", name)
            if not os.path.exists(path):
                _atomic_write(path, data)
            names[guid] = name
        doc = {"format": FORMAT, "flash": flash, "images": names}
        _atomic_write(os.path.join(self.path, FLASH), json.dumps(doc, indent=1).encode())
        for name in os.listdir(os.path.join(self.path, "images")):
            if name not in names.values() and name.endswith(".img"):
                try:
                    os.unlink(os.path.join(self.path, "images", name))
                except OSError:
                    pass

    def attach(self, platform) -> None:
        """Restore the saved flash into ``platform`` and keep saving it on every change."""
        saved = self.load()
        if saved is not None:
            platform.restore_flash(*saved)
        platform.flash_changed = lambda p: self.save(p.flash_state(), p.staged_images())
        self.save(platform.flash_state(), platform.staged_images())
