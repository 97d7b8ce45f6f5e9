"""The kernel's rules on EFI variable names and contents, before any firmware call.

- drivers/firmware/efi/vars.c: efivar_validate() (the format checks of the
  global variables Linux knows: BootNext, BootOrder, Boot####, ConIn, Lang,
  Timeout...), efivar_variable_is_removable() (the same table decides which
  files are created without S_IMMUTABLE), and variable_matches();
- fs/efivarfs/super.c and inode.c: efivarfs_valid_name() (a name ends in
  "-" and a GUID), with the GUID compared case-insensitively.

Names here are ``str``: the efivarfs file name part as the kernel sees it
(UTF-8 decoded), and the variable name as UCS-2 code units for the checks
that read it (validate_load_option() does).
"""

from __future__ import annotations

import re
import struct
import uuid

from lfafs.uefi import EFI_GLOBAL_VARIABLE, LINUX_EFI_CRASH

EFI_VARIABLE_GUID_LEN = 36
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EFI_DEV_END_PATH = 0x7F
EFI_DEV_END_PATH2 = 0xFF
EFI_DEV_END_ENTIRE = 0xFF


def valid_name(name: str) -> bool:
    """efivarfs_valid_name(): at least one character, "-", and valid UUID text at the end.

    ``name`` is the file name as bytes decoded UTF-8; the length the kernel
    counts is in bytes.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) < EFI_VARIABLE_GUID_LEN + 2:
        return False
    if raw[-EFI_VARIABLE_GUID_LEN - 1:-EFI_VARIABLE_GUID_LEN] != b"-":
        return False
    return bool(_UUID_TEXT.fullmatch(raw[-EFI_VARIABLE_GUID_LEN:].decode("ascii", "replace")))


def split_name(name: str) -> tuple[str, uuid.UUID]:
    """A valid file name's variable part and GUID."""
    raw = name.encode("utf-8", "surrogateescape")
    return raw[:-EFI_VARIABLE_GUID_LEN - 1].decode("utf-8", "surrogateescape"), \
        uuid.UUID(raw[-EFI_VARIABLE_GUID_LEN:].decode("ascii"))


def file_key(name: str) -> str:
    """The dcache's view of a name: the variable part as is, the GUID in lower case (d_hash/d_compare)."""
    return name[:-EFI_VARIABLE_GUID_LEN] + name[-EFI_VARIABLE_GUID_LEN:].lower()


def _validate_device_path(buffer: bytes, length: int) -> bool:
    node_len = lambda off: struct.unpack_from("<H", buffer, off + 2)[0]  # noqa: E731
    if length < 4 or len(buffer) < 4:
        return False
    offset = 0
    # offset <= len - node->length with unsigned arithmetic: a node longer than the buffer wraps
    while (offset <= (length - node_len(offset)) % (1 << 64) and node_len(offset) >= 4
           and buffer[offset] not in (EFI_DEV_END_PATH, EFI_DEV_END_PATH2)):
        offset += node_len(offset)
        if offset + 4 > length:
            return False
    return buffer[offset] in (EFI_DEV_END_PATH, EFI_DEV_END_PATH2) and buffer[offset + 1] == EFI_DEV_END_ENTIRE


def _ucs2_strsize(buffer: bytes, maxlength: int) -> int:
    """ucs2_strsize(): bytes of the string before its NUL, within maxlength bytes."""
    n = 0
    while n < maxlength // 2 and 2 * n + 1 < len(buffer) and (buffer[2 * n] or buffer[2 * n + 1]):
        n += 1
    return 2 * n


def _validate_load_option(var_name: str, match: int, data: bytes) -> bool:
    for c in var_name[match:match + 4]:
        if ord(c) > 127 or c not in "0123456789abcdefABCDEF":
            return True  # not Boot#### / Driver####: nothing to check
    if len(var_name) < match + 4:
        return True
    if len(var_name) > match + 4:
        return False  # four hex digits and then more
    if len(data) < 8:
        return False
    filepathlength = data[4] | data[5] << 8
    desclength = _ucs2_strsize(data[6:], len(data) - 6) + 2
    if desclength + filepathlength + 6 > len(data):
        return False
    return _validate_device_path(data[desclength + 6:desclength + 6 + filepathlength], filepathlength)


def _validate_ascii_string(data: bytes) -> bool:
    for b in data:
        if b > 127:
            return False
        if b == 0:
            return True
    return False


# (name pattern, check); a final "*" matches the rest, a None check means "no check"
_VALIDATE = [
    ("BootNext", lambda n, m, d: len(d) == 2),
    ("BootOrder", lambda n, m, d: len(d) % 2 == 0),
    ("Boot*", _validate_load_option),
    ("DriverOrder", lambda n, m, d: len(d) % 2 == 0),
    ("Driver*", _validate_load_option),
    ("ConIn", lambda n, m, d: _validate_device_path(d, len(d))),
    ("ConInDev", lambda n, m, d: _validate_device_path(d, len(d))),
    ("ConOut", lambda n, m, d: _validate_device_path(d, len(d))),
    ("ConOutDev", lambda n, m, d: _validate_device_path(d, len(d))),
    ("ErrOut", lambda n, m, d: _validate_device_path(d, len(d))),
    ("ErrOutDev", lambda n, m, d: _validate_device_path(d, len(d))),
    ("Lang", lambda n, m, d: _validate_ascii_string(d)),
    ("OsIndications", None),
    ("PlatformLang", lambda n, m, d: _validate_ascii_string(d)),
    ("Timeout", lambda n, m, d: len(d) == 2),
]


def _matches(name: str, pattern: str) -> tuple[bool, int]:
    """variable_matches(): (matched, how many non-wildcard characters matched)."""
    match = 0
    while True:
        c = pattern[match] if match < len(pattern) else ""
        if c == "*":
            return True, match
        if c == "":
            return match == len(name), match
        if match < len(name) and c == name[match]:
            match += 1
            continue
        return False, match


def validate(vendor: uuid.UUID, var_name: str, data: bytes) -> bool:
    """efivar_validate(): the format rules of the global variables; any other variable passes."""
    if vendor == LINUX_EFI_CRASH:
        return True
    if vendor != EFI_GLOBAL_VARIABLE:
        return True
    for pattern, check in _VALIDATE:
        ok, match = _matches(var_name, pattern)
        if ok:
            return True if check is None else check(var_name, match, data)
    return True


def is_removable(vendor: uuid.UUID, var_name: str) -> bool:
    """efivar_variable_is_removable(): a name of the validation table (or the crash vendor) is not immutable."""
    if vendor == LINUX_EFI_CRASH:
        return True
    if vendor != EFI_GLOBAL_VARIABLE:
        return False
    return any(_matches(var_name, pattern)[0] for pattern, _ in _VALIDATE)
