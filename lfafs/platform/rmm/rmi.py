"""The RMI as the running RMM answers it: TF-RMM v0.9.0 and main, RMI 2.0.

Dispatch follows TF-RMM runtime/core/handler.c, handle_ns_smc(): result
registers x0..x3 start at zero (x4 and up keep the caller's values); a
function id the RMM's handler table does not hold answers SMC_UNKNOWN; then
every call is gated by the ``rmm_state`` word in glob_data: FEATURES,
VERSION, RMM_CONFIG_GET and GRANULE_TRACKING_GET always run,
RMM_CONFIG_SET and RMM_ACTIVATE only in RMM_STATE_INIT, everything else
only in RMM_STATE_ACTIVE, else RMI_ERROR_GLOBAL.

Modelled handlers (runtime/rmi/*.c): VERSION, GRANULE_RANGE_DELEGATE,
GRANULE_RANGE_UNDELEGATE, GRANULE_TRACKING_GET, RMM_CONFIG_GET,
RMM_CONFIG_SET and RMM_ACTIVATE. The rest of TF-RMM's table (FEATURES,
realms, RECs, RTTs, devices, SMMU, SRO operations) is gated exactly as
TF-RMM gates it and, once through the gate, answers SMC_UNKNOWN: lfafs does
not model it (docs/rmm-lfa.md, "The RMI").
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable

from lfafs.platform.rmm import glob_data as gd
from lfafs.platform.rmm.granules import GRANULE, Granules, GranuleState
from lfafs.smccc import RMI_ABI_VERSION, SMC_UNK, Fid, RmiStatus, u64
from lfafs.xlat import Memory, XlatError

PA_WIDTH = 48  # arch_feat_get_pa_width() on the FVP (ID_AA64MMFR0_EL1.PARange)
TRACKING_REGION_1GB = 1 << 30  # RMM_INTERNAL_TRACKING_REGION_SIZE (runtime/rmi/granule.c)
RMI_GRANULE_SIZE_4KB = 0
RMI_GRAN_4KB_TRACKING_REGION_SIZE_1GB = 0
_CONFIG = struct.Struct("<QQ")  # struct rmi_rmm_config: tracking_region_size @0, rmi_granule_size @8
CONFIG_BYTES = 0x1000  # sizeof(struct rmi_rmm_config): the fields sit in one 4 KB page


class Tracking(enum.IntEnum):
    """RmiTrackingRegionState (lib/smc/include/smc-rmi.h)."""

    RESERVED = 0
    NONE = 1
    FINE = 2
    COARSE = 3


class MemCategory(enum.IntEnum):
    """RmiMemCategory."""

    CONVENTIONAL = 0
    DEV_NCOH = 1
    DEV_COH = 2


def _fids(*numbers: int) -> frozenset[int]:
    return frozenset(0xC400_0000 | n for n in numbers)


# The function ids in TF-RMM's smc_handlers[] (runtime/core/handler.c), by release.
_BOTH = _fids(0x150, 0x153, *range(0x157, 0x15F), 0x161, 0x163, 0x164, 0x165, 0x166, 0x168, 0x169, 0x16E,
              0x174, 0x175, 0x176, 0x177, 0x178, 0x17A, 0x17B, 0x17C, 0x17D, 0x17E, 0x17F, 0x180, 0x181,
              0x183, 0x184, *range(0x185, 0x18C), 0x18E, *range(0x1D0, 0x1D4), 0x1D7, 0x1D8, 0x1DB, 0x1DC,
              0x1E1, 0x1EC, 0x1F1, 0x1F2, 0x1F3, 0x1F5, 0x1F6, 0x202, 0x203, 0x208, 0x209, 0x20A)
HANDLED = {
    # tf-rmm-v0.9.0 (dd9ec489): also RTT_MAP/UNMAP_UNPROTECTED, PDEV/VDEV_AUX_COUNT, VDEV_MAP/UNMAP,
    # PDEV_IDE_RESET, VDEV_VALIDATE_MAPPING
    "v0.9": _BOTH | _fids(0x156, 0x15F, 0x160, 0x162, 0x172, 0x173, 0x179),
    # main (9a7f8ef4): REALM_TERMINATE, RTT_UNPROT_MAP/UNMAP, RTT_DEV_MAP/UNMAP, PDEV_STREAM_*
    "main": _BOTH | _fids(0x1F7, 0x1F8, 0x1FB, 0x1FC, 0x201, 0x204, 0x205, 0x206, 0x207),
}
ALWAYS = frozenset({Fid.RMI_FEATURES, Fid.RMI_VERSION, Fid.RMI_RMM_CONFIG_GET, Fid.RMI_GRANULE_TRACKING_GET})
ONLY_IN_INIT = frozenset({Fid.RMI_RMM_CONFIG_SET, Fid.RMI_RMM_ACTIVATE})

Regs4 = tuple[int, int, int, int]


class Rmi:
    """The RMI of one booted RMM image.

    ``ns_pas(addr)`` is EL3's answer to whether a granule is in the
    Non-secure PAS: the GTSI delegate call (rmm_el3_ifc_gtsi_delegate()) and
    the RMM's NS buffer accesses succeed only there.
    """

    def __init__(self, memory: Memory, glob_pa: int, granules: Granules, release: str,
                 ns_pas: Callable[[int], bool]) -> None:
        self.memory = memory
        self.glob_pa = glob_pa
        self.granules = granules
        self.release = release
        self.ns_pas = ns_pas
        self._handlers: dict[int, Callable[[list[int], list[int]], None]] = {
            Fid.RMI_VERSION: self._version,
            Fid.RMI_GRANULE_RANGE_DELEGATE: self._range_delegate,
            Fid.RMI_GRANULE_RANGE_UNDELEGATE: self._range_undelegate,
            Fid.RMI_GRANULE_TRACKING_GET: self._tracking_get,
            Fid.RMI_RMM_CONFIG_GET: self._config_get,
            Fid.RMI_RMM_CONFIG_SET: self._config_set,
            Fid.RMI_RMM_ACTIVATE: self._rmm_activate,
        }

    @property
    def state(self) -> int:
        return gd.read_state(self.memory, self.glob_pa)

    def handle(self, fid: int, args: list[int]) -> Regs4:
        """handle_ns_smc(): x1.. in ``args``; returns x0..x3."""
        res = [0, 0, 0, 0]
        if fid not in HANDLED[self.release]:
            res[0] = SMC_UNK
            return tuple(res)
        if fid in ONLY_IN_INIT:
            allowed = self.state == gd.RmmState.INIT
        else:
            allowed = fid in ALWAYS or self.state == gd.RmmState.ACTIVE
        if not allowed:
            res[0] = RmiStatus.ERROR_GLOBAL
            return tuple(res)
        handler = self._handlers.get(fid)
        if handler is None:
            res[0] = SMC_UNK  # in TF-RMM's table, not modelled by lfafs
        else:
            handler(args, res)
        return tuple(u64(r) for r in res)

    # -- runtime/rmi/version.c ------------------------------------------------------------

    def _version(self, args: list[int], res: list[int]) -> None:
        """smc_version(): 2.0 is the only revision; x1 = lower, x2 = higher supported."""
        if args[0] == RMI_ABI_VERSION:
            res[0], res[1] = RmiStatus.SUCCESS, args[0]
        else:
            res[0], res[1] = RmiStatus.ERROR_INPUT, RMI_ABI_VERSION
        res[2] = RMI_ABI_VERSION

    # -- runtime/rmi/granule.c ------------------------------------------------------------

    def _delegate(self, addr: int) -> int:
        """smc_granule_delegate(): NS -> DELEGATED, after EL3's GPT transition."""
        idx = self.granules.find(addr)
        if idx is None:
            return RmiStatus.ERROR_INPUT  # no device granules are modelled either
        if self.granules.state(idx) != GranuleState.NS or not self.ns_pas(addr):
            return RmiStatus.ERROR_INPUT
        self.granules.set_state(idx, GranuleState.DELEGATED)
        return RmiStatus.SUCCESS

    def _undelegate(self, addr: int) -> int:
        """smc_granule_undelegate(): DELEGATED -> NS, the granule scrubbed first."""
        idx = self.granules.find(addr)
        if idx is None or self.granules.state(idx) != GranuleState.DELEGATED:
            return RmiStatus.ERROR_INPUT
        self.memory.zero(addr, GRANULE)  # buffer_granule_sanitize()
        self.granules.set_state(idx, GranuleState.NS)
        return RmiStatus.SUCCESS

    def _range(self, one: Callable[[int], int], args: list[int], res: list[int]) -> None:
        """smc_granule_range_(un)delegate(): [base, top), exactly one granule per call.

        x1 is the base on failure, base + 4 KB (the next granule to do) on success.
        """
        addr, top = args[0], args[1]
        res[0], res[1] = RmiStatus.ERROR_INPUT, addr
        if addr % GRANULE or top % GRANULE or top < u64(addr + GRANULE):
            return
        res[0] = one(addr)
        if res[0] == RmiStatus.SUCCESS:
            res[1] = u64(addr + GRANULE)

    def _range_delegate(self, args: list[int], res: list[int]) -> None:
        self._range(self._delegate, args, res)

    def _range_undelegate(self, args: list[int], res: list[int]) -> None:
        self._range(self._undelegate, args, res)

    def _tracking_get(self, args: list[int], res: list[int]) -> None:
        """smc_granule_tracking_get(): main takes [start, end) and returns end in x3; v0.9 one 1 GB region."""
        max_pa = (1 << PA_WIDTH) - 1
        res[0] = RmiStatus.ERROR_INPUT
        if self.release == "v0.9":
            start = args[0]
            if start > max_pa or start % TRACKING_REGION_1GB:
                return
        else:
            start, end = args[0], args[1]
            if start > max_pa or end > max_pa or start > end or end - start < GRANULE:
                return
            if start % GRANULE or end % GRANULE:
                return
            res[3] = end
        res[0], res[1] = RmiStatus.SUCCESS, MemCategory.CONVENTIONAL
        res[2] = Tracking.FINE if self.granules.find(start) is not None else Tracking.NONE

    def _config_page(self, ptr: int) -> bool:
        """The checks RMM_CONFIG_GET and _SET share: an aligned NS granule the RMM can reach."""
        if ptr == 0 or ptr % GRANULE:
            return False
        idx = self.granules.find(ptr)
        return idx is not None and self.granules.state(idx) == GranuleState.NS and self.ns_pas(ptr)

    def _config_get(self, args: list[int], res: list[int]) -> None:
        """smc_rmm_config_get(): writes the whole struct rmi_rmm_config (4 KB) to the NS page."""
        if not self._config_page(args[0]):
            res[0] = RmiStatus.ERROR_INPUT
            return
        page = _CONFIG.pack(RMI_GRAN_4KB_TRACKING_REGION_SIZE_1GB, RMI_GRANULE_SIZE_4KB)
        self.memory.write(args[0], page.ljust(CONFIG_BYTES, b"\0"))
        res[0] = RmiStatus.SUCCESS

    def _config_set(self, args: list[int], res: list[int]) -> None:
        """smc_rmm_config_set(): only 4 KB granules and 1 GB tracking regions are accepted."""
        if not self._config_page(args[0]):
            res[0] = RmiStatus.ERROR_INPUT
            return
        try:
            tracking, granule = _CONFIG.unpack(self.memory.read(args[0], _CONFIG.size))
        except XlatError:
            res[0] = RmiStatus.ERROR_INPUT
            return
        ok = granule == RMI_GRANULE_SIZE_4KB and tracking == RMI_GRAN_4KB_TRACKING_REGION_SIZE_1GB
        res[0] = RmiStatus.SUCCESS if ok else RmiStatus.ERROR_INPUT

    # -- runtime/rmi/activate.c -----------------------------------------------------------

    def _rmm_activate(self, args: list[int], res: list[int]) -> None:
        """smc_rmm_activate(): INIT -> ACTIVE, kept in glob_data across activations."""
        if self.state != gd.RmmState.INIT:
            res[0] = RmiStatus.ERROR_GLOBAL
            return
        gd.write_state(self.memory, self.glob_pa, gd.RmmState.ACTIVE)
        res[0] = RmiStatus.SUCCESS
