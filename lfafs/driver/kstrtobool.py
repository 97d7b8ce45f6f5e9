"""Linux kstrtobool() (lib/kstrtox.c, with commit ae5b3500856f's e/E/d/D)."""

from __future__ import annotations


def kstrtobool(data: bytes) -> bool:
    """True for 1 y Y t T e E and o[nN]; False for 0 n N f F d D and o[fF]; ValueError otherwise.

    Only the first one or two characters count, as in the kernel: "yes\\n"
    and "1garbage" are true, " 1" (a leading space) is an error.
    """
    if not data:
        raise ValueError("empty")
    c = chr(data[0])
    if c in "1yYtTeE":
        return True
    if c in "0nNfFdD":
        return False
    if c in "oO" and len(data) > 1:
        n = chr(data[1])
        if n in "nN":
            return True
        if n in "fF":
            return False
    raise ValueError(f"not a boolean: {data[:16]!r}")
