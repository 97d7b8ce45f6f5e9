"""The one way into the C core, and the errors it raises.

Every native function that returns an error code is called through
:func:`call`: it holds the memory lock, turns a non-zero return into
:class:`XlatError` and Python values C cannot take into ``EINVAL``, so no
caller ever looks at a raw return code.  The codec functions (``xlat_desc``,
``xlat_desc_attr``, the estimator, ``xlat_ctx_bytes``) and
``xlat_tlbi_clear`` return no code and cannot fail; they are called directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any

from lfafs._xlat_native import ffi, lib

__all__ = ["U64_MAX", "XlatBatchError", "XlatError", "call", "ffi", "lib", "u64"]

U64_MAX = (1 << 64) - 1
_NO_LOCK = contextlib.nullcontext()


class XlatError(OSError):
    """A native-core call failed; ``errno`` is the C return code, negated."""

    def __init__(self, err: int, op: str, detail: str = "") -> None:
        msg = f"{op}: {os.strerror(err)}"
        if detail:
            msg += f" ({detail})"
        super().__init__(err, msg)
        self.op = op

    def __str__(self) -> str:
        return self.strerror or ""


class XlatBatchError(XlatError):
    """A batch stopped at element ``len(done)``; ``done`` holds what succeeded."""

    def __init__(self, err: int, op: str, done: list[int]) -> None:
        super().__init__(err, op, f"element {len(done)} failed, {len(done)} done")
        self.done = done


def u64(name: str, value: object) -> int:
    """``value`` if it is an integer C can take as uint64_t, else XlatError(EINVAL) naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise XlatError(errno.EINVAL, name, f"expected an integer in [0, 2**64), got {value!r}")
    return value


def call(op: str, fn: Callable[..., int], *args: Any, lock: Any = _NO_LOCK,
         detail: str | tuple = "", out: Any = None) -> int | None:
    """Run ``fn(*args)`` under ``lock``; raise XlatError(-rc, op, detail) unless it returns 0.

    ``detail`` is a string, or a ``(format, *values)`` tuple that is
    formatted only on failure, so that hot paths pay nothing for it.  With
    ``out`` (a ``uint64_t *``), returns ``out[0]`` as read under the lock, so
    that a context's scratch output is never read after another thread has
    reused it.
    """
    try:
        with lock:
            rc = fn(*args)
            value = None if out is None else out[0]
    except (OverflowError, TypeError) as e:
        raise XlatError(errno.EINVAL, op, f"arguments must be integers in [0, 2**64): {e}") from None
    if rc != 0:
        raise XlatError(-rc, op, detail if isinstance(detail, str) else detail[0].format(*detail[1:]))
    return value
