"""Per-CPU regions: what TF-RMM main hands back to EL3 as each CPU's activation token.

TF-RMM main (lib/pcpu_data, b0b67b02 and 0d10a884; not in v0.9.0): on its
first entry, cold or warm, each CPU reserves PCPU_REGION_PAGES from EL3 with
the CPU-local flag (runtime/core/aarch64/head.S -> pcpu_region_alloc() ->
rmm_el3_ifc_early_reserve_mem_local(), a raw RMM_RESERVE_MEMORY). The
region's first page is ``struct pcpu_metadata``; the others are the per-CPU
private data, the RMM stack (RMM_NUM_PAGES_PER_STACK = 5), the exception
stack and the high-VA tables. The region's base PA is the token the CPU
returns in RMM_BOOT_COMPLETE x2; on a later entry with a non-zero token the
region and its metadata, glob_data's PA included, are kept as they are
(pcpu_metadata_early_init()).

lfafs models the memory and the metadata page; it runs nothing on the
stacks.
"""

from __future__ import annotations

import struct

import attrs

from lfafs.xlat import Memory

PAGE = 4096
METADATA_PAGES = 1
PVT_DATA_PAGES = 1
STACK_PAGES = 5  # RMM_NUM_PAGES_PER_STACK, TF-RMM cmake/CommonConfigs.cmake default
EH_STACK_PAGES = 1
HIGH_VA_TBLS_PAGES = 1
REGION_PAGES = METADATA_PAGES + PVT_DATA_PAGES + STACK_PAGES + EH_STACK_PAGES + HIGH_VA_TBLS_PAGES
METADATA_VERSION = 1
# version, glob_data_pa, then base/top of: metadata, private data, stack, exception stack, high-VA tables
_METADATA = struct.Struct("<12Q")


class PcpuError(ValueError):
    """A token that does not name a per-CPU region."""


@attrs.frozen
class Metadata:
    """struct pcpu_metadata (lib/pcpu_data/include/pcpu_data.h), without the high-VA context."""

    version: int
    glob_data_pa: int
    metadata_base_pa: int
    metadata_top_pa: int
    pvt_data_base_pa: int
    pvt_data_top_pa: int
    stack_base_pa: int
    stack_top_pa: int
    eh_stack_base_pa: int
    eh_stack_top_pa: int
    high_va_tbls_base_pa: int
    high_va_tbls_top_pa: int


def early_init(memory: Memory, pa: int, token: int) -> None:
    """pcpu_metadata_early_init(): lay out a fresh region; keep one named by a token."""
    if token != 0:
        return  # TF-RMM asserts pa == token and keeps the metadata, glob_data_pa included
    bounds = [pa]
    for pages in (METADATA_PAGES, PVT_DATA_PAGES, STACK_PAGES, EH_STACK_PAGES, HIGH_VA_TBLS_PAGES):
        bounds.append(bounds[-1] + pages * PAGE)
    pairs = [v for i in range(5) for v in (bounds[i], bounds[i + 1])]
    memory.zero(pa, (METADATA_PAGES + PVT_DATA_PAGES) * PAGE)  # the xlat context and the private data
    memory.write(pa, _METADATA.pack(METADATA_VERSION, 0, *pairs))


def read(memory: Memory, pa: int) -> Metadata:
    """The metadata page at ``pa``; PcpuError when it is not one.

    TF-RMM trusts a non-zero token; lfafs checks that it names a laid-out
    region (its own base PA recorded, version 1) before using it.
    """
    if pa % PAGE or not memory.base_pa <= pa <= memory.end_pa - REGION_PAGES * PAGE:
        raise PcpuError(f"token {pa:#x} is not a per-CPU region in DRAM")
    m = Metadata(*_METADATA.unpack(memory.read(pa, _METADATA.size)))
    if m.version != METADATA_VERSION or m.metadata_base_pa != pa:
        raise PcpuError(f"no per-CPU metadata at {pa:#x} (version {m.version}, base {m.metadata_base_pa:#x})")
    return m


def set_glob_data_pa(memory: Memory, pa: int, glob_data_pa: int) -> bool:
    """pcpu_set_glob_data_pa(): write once; False when another PA is already there (TF-RMM asserts)."""
    current = memory.read64(pa + 8)
    if current not in (0, glob_data_pa):
        return False
    memory.write64(pa + 8, glob_data_pa)
    return True
