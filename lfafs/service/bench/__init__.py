"""Benchmarks (``lfafs bench``): figures measured side by side in one run, one module per benchmark.

Machines are noisy, so every claim is a ratio between two things measured
in the same process moments apart, and each figure is the best of a few
repetitions.  docs/performance.md records the output with its command.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from lfafs.service.bench import activation as _activation
from lfafs.service.bench import efi as _efi
from lfafs.service.bench import fleet as _fleet
from lfafs.service.bench import fs as _fs
from lfafs.service.bench import native as _native
from lfafs.service.bench import scale as _scale

SUITES: dict[str, Callable[[], dict]] = {"native": _native.native, "activation": _activation.activation,
                                         "fs": _fs.fs}
SUITES["scale"] = _scale.scale
SUITES["fleet"] = _fleet.fleet  # docs/fleet.md
SUITES["efi"] = _efi.efi  # docs/performance.md, "UEFI variables"

_LABELS = {
    "pool_pages": ("pages in the pool", ""),
    "allocatable_pages": ("allocatable pages", ""),
    "allocator_bytes": ("bitmap + summary tree", "B"),
    "fill_ns_per_map": ("fill, 1-page maps (C, bitmap)", "ns"),
    "fill_ns_per_map_tfrmm_scan": ("fill, 1-page maps (C, TF-RMM scan)", "ns"),
    "checkerboard_2page_ns": ("checkerboard, 2-page request (bitmap)", "ns"),
    "checkerboard_2page_ns_tfrmm_scan": ("checkerboard, 2-page request (TF-RMM scan)", "ns"),
    "checkerboard_hole_at_top_ns": ("checkerboard + hole at top (bitmap)", "ns"),
    "checkerboard_hole_at_top_ns_tfrmm_scan": ("checkerboard + hole at top (TF-RMM scan)", "ns"),
    "python_map_unmap_ns": ("map+unmap through Python, per pair", "ns"),
    "batch_map_unmap_ns": ("map+unmap in batches, per pair", "ns"),
    "unmap_ns_per_page": ("unmap a full pool, 1 page each (C)", "ns"),
    "unmap_ns_per_page_tfrmm": ("unmap a full pool, TF-RMM's single pass", "ns"),
    "unmap_512mb_us": ("unmap 512 MB in one call (C)", "us"),
    "unmap_512mb_us_tfrmm": ("unmap 512 MB, TF-RMM's single pass", "us"),
    "floor_open_read_close_us": ("open/read/close, constant mfusepy file (floor)", "us"),
    "cached_attr_open_read_close_us": ("open/read/close, lfa/<rmm>/name", "us"),
    "fresh_attr_open_read_close_us": ("open/read/close, lfa/<rmm>/activation_pending", "us"),
    "during_activation_cached_read_us": ("during an activation: read name", "us"),
    "during_activation_pending_read_ms": ("during an activation: read activation_pending", "ms"),
    "efi_floor_read_us": ("read a 20-byte constant mfusepy file (floor)", "us"),
    "efi_read_us": ("read efi/efivars/<var>, 20 bytes", "us"),
    "efi_floor_write_us": ("write a 20-byte constant mfusepy file (floor)", "us"),
    "efi_write_us": ("write efi/efivars/<var> (SetVariable)", "us"),
    "efibootmgr_v_ms": ("efibootmgr -v, 32 boot entries (namespace)", "ms"),
    "efibootmgr_namespace_ms": ("the same namespace running true", "ms"),
    "idle_ops_per_s": ("variable reads+writes a second, idle", "/s"),
    "during_activation_ok_per_s": ("during an SP activation: succeeded", "/s"),
    "during_activation_enospc_per_s": ("during an SP activation: ENOSPC", "/s"),
    "after_activation_ok": ("ops succeeded in 0.2 s after it", ""),
    **{f"activation_ms_{n}_pages": (f"RMM activation, 4 CPUs, {n:,} pages mapped", "ms")
       for n in _activation.ACTIVATION_PAGES},
    **{f"activation_ms_{n}_cpus": (f"RMM activation, {n} CPUs", "ms") for n in _scale.CPU_COUNTS},
}


def render(name: str, result: dict) -> str:
    lines = [f"lfafs bench {name}"]
    for key, value in result.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            for k, v in value.items():
                lines.append(f"    {k:<42} {v:.2f}" if isinstance(v, float) else f"    {k:<42} {v}")
            continue
        label, unit = _LABELS.get(key, (key, ""))
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        lines.append(f"  {label:<44} {shown:>14} {unit}")
    return "\n".join(lines)


def run(names: list[str], as_json: bool) -> str:
    results = {name: SUITES[name]() for name in names}
    if as_json:
        return json.dumps(results if len(results) > 1 else results[names[0]], indent=None)
    return "\n\n".join(render(name, r) for name, r in results.items())
