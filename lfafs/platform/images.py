"""Firmware images as lfafs stages them: a small signed header and a payload.

Layout (little-endian)::

    magic      8 bytes  b"LFAFSIMG"
    guid      16 bytes  the component's UUID, in string byte order
    major      u32      image version
    minor      u32
    rmm_ifc    u32      RMM only: RMM-EL3 interface version the image speaks (major << 16 | minor)
    glob_data  u32      RMM only: glob_data version the image understands (major << 16 | minor)
    flags      u32      bit 0: built with RMM_EL3_COMPAT_RESERVE_MEM
    length     u32      payload bytes
    payload
    mac       32 bytes  HMAC-SHA256 over everything above, with the platform's key

PRIME authenticates the staged image against the platform key (TF-A's
plat_lfa_load_auth_image); a bad image gives LFA_AUTH_ERROR.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

import attrs

from lfafs.platform.rmm.glob_data import VERSION_1_0 as GLOB_DATA_1_0

MAGIC = b"LFAFSIMG"
_HEADER = struct.Struct("<8s16sIIIIII")
MAC_BYTES = 32
MAX_PAYLOAD = 16 << 20
FLAG_COMPAT_RESERVE_MEM = 1 << 0

# What the RMM images lfafs builds by default speak (TF-RMM v0.9 / TF-A tip).
RMM_IFC_2_0 = 0x0002_0000


class ImageError(ValueError):
    """A staged image that cannot be loaded or authenticated."""


@attrs.frozen
class Image:
    guid: uuid.UUID
    version: tuple[int, int]
    rmm_ifc: int = 0
    glob_data_version: int = 0
    flags: int = 0
    payload: bytes = b""

    @property
    def compat_reserve_mem(self) -> bool:
        return bool(self.flags & FLAG_COMPAT_RESERVE_MEM)

    def pack(self, key: bytes) -> bytes:
        body = _HEADER.pack(MAGIC, self.guid.bytes, self.version[0], self.version[1], self.rmm_ifc,
                            self.glob_data_version, self.flags, len(self.payload)) + self.payload
        return body + hmac.new(key, body, hashlib.sha256).digest()


def build(guid: uuid.UUID, version: tuple[int, int], key: bytes, *, rmm: bool = False,
          rmm_ifc: int = RMM_IFC_2_0, glob_data_version: int = GLOB_DATA_1_0, compat: bool = False,
          payload: bytes = b"") -> bytes:
    """A correctly signed image; RMM images carry their interface versions."""
    img = Image(guid=guid, version=version, rmm_ifc=rmm_ifc if rmm else 0,
                glob_data_version=glob_data_version if rmm else 0,
                flags=FLAG_COMPAT_RESERVE_MEM if compat else 0, payload=payload)
    return img.pack(key)


def parse(data: bytes) -> Image:
    """Parse without authenticating; ImageError names what is malformed."""
    if not isinstance(data, (bytes, bytearray)):
        raise ImageError("an image must be bytes")
    if len(data) < _HEADER.size + MAC_BYTES:
        raise ImageError(f"too short for an lfafs image ({len(data)} bytes, "
                         f"header alone is {_HEADER.size + MAC_BYTES})")
    magic, guid, major, minor, rmm_ifc, gdv, flags, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ImageError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if length > MAX_PAYLOAD or _HEADER.size + length + MAC_BYTES != len(data):
        raise ImageError(f"payload length {length} does not match the image size {len(data)}")
    return Image(guid=uuid.UUID(bytes=guid), version=(major, minor), rmm_ifc=rmm_ifc,
                 glob_data_version=gdv, flags=flags, payload=bytes(data[_HEADER.size:_HEADER.size + length]))


def authenticate(data: bytes, key: bytes, guid: uuid.UUID) -> Image:
    """Parse, check the MAC with ``key`` and that the image is for ``guid``."""
    img = parse(data)
    body, mac = bytes(data[:-MAC_BYTES]), bytes(data[-MAC_BYTES:])
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise ImageError("signature does not verify with this platform's key")
    if img.guid != guid:
        raise ImageError(f"image is for {img.guid}, not {guid}")
    return img
