"""Running a function as uid 65534 in a forked child of this (root) test process.

The child has everything this process imported, so it needs nothing from the
checkout a fresh interpreter would have to read (a clone in a 0700 directory
is root's alone).
"""

from __future__ import annotations

import io
import json
import os
import sys

from lfafs.service import spawn
from lfafs.service.control import ControlError

NOBODY = 65534


def as_nobody(fn) -> dict:
    """fn() in a forked child as uid 65534 without $XDG_RUNTIME_DIR: {"value"}, or {"error": [code, message]};
    "stderr" is what it printed there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        out: dict = {}
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.environ.pop("XDG_RUNTIME_DIR", None)
            sys.stderr = io.StringIO()
            try:
                out["value"] = fn()
            except ControlError as e:
                out["error"] = [e.code, e.message]
            except spawn.SpawnError as e:
                out["error"] = ["spawn", str(e)]
            out["stderr"] = sys.stderr.getvalue()
            os.write(w, json.dumps(out, default=str).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data, "the child as uid 65534 failed before it could answer"
    return json.loads(data)
