"""The shared vocabulary of the SMC boundary: function ids, statuses, flags, versions.

Every layer that speaks LFA (the EL3 agent, the Linux driver model, the
service) takes its words from here, so a flag bit or a version format is
spelled once. Values are TF-A's (include/services/lfa_svc.h, rmmd_svc.h;
docs/smc-abi.md). Registers are unsigned 64-bit; a negative status is its
two's complement.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

WORLDS = ("ns", "secure", "realm")
"""The security state an SMC is issued from (Normal, Secure, Realm)."""

MASK64 = (1 << 64) - 1
SMC_UNK = MASK64  # -1


def u64(value: int) -> int:
    """A register value: Python int -> unsigned 64-bit."""
    return value & MASK64


def s64(value: int) -> int:
    """A register read as a signed 64-bit status."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


class Fid(enum.IntEnum):
    """SMC64 function ids (fast calls, OEN 4: standard secure service)."""

    LFA_VERSION = 0xC40002E0
    LFA_FEATURES = 0xC40002E1
    LFA_GET_INFO = 0xC40002E2
    LFA_GET_INVENTORY = 0xC40002E3
    LFA_PRIME = 0xC40002E4
    LFA_ACTIVATE = 0xC40002E5
    LFA_CANCEL = 0xC40002E6
    # RMM-EL3 interface (Realm world only)
    RMM_RESERVE_MEMORY = 0xC40001BB
    RMM_BOOT_COMPLETE = 0xC40001CF
    # RMI (from the Normal world to the RMM), the subset lfafs models
    RMI_VERSION = 0xC4000150
    RMI_GRANULE_DELEGATE = 0xC4000151  # removed by TF-RMM d43664b6 (in v0.9.0): answers SMC_UNK
    RMI_GRANULE_UNDELEGATE = 0xC4000152  # removed likewise
    # RMI as TF-RMM v0.9.0 and main dispatch it (lib/smc/include/smc-rmi.h)
    RMI_FEATURES = 0xC4000165
    RMI_RMM_CONFIG_SET = 0xC400016E
    RMI_GRANULE_TRACKING_GET = 0xC40001E1
    RMI_RMM_CONFIG_GET = 0xC40001EC
    RMI_GRANULE_RANGE_DELEGATE = 0xC40001F1
    RMI_GRANULE_RANGE_UNDELEGATE = 0xC40001F2
    RMI_RMM_ACTIVATE = 0xC4000202


LFA_FID_FIRST = Fid.LFA_VERSION
LFA_FID_LAST = Fid.LFA_CANCEL
LFA_VERSION_1_0 = 0x0001_0000  # bits [30:16] major 1, [15:0] minor 0


class LfaStatus(enum.IntEnum):
    """enum lfa_retc (TF-A lfa_svc.h)."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    BUSY = -2
    AUTH_ERROR = -3
    NO_MEMORY = -4
    CRITICAL_ERROR = -5
    DEVICE_ERROR = -6
    WRONG_STATE = -7
    INVALID_PARAMETERS = -8
    COMPONENT_WRONG_STATE = -9
    INVALID_ADDRESS = -10
    ACTIVATION_FAILED = -11

    @classmethod
    def parse(cls, text: str) -> LfaStatus:
        """'LFA_BUSY', 'busy', '-2' -> LfaStatus.BUSY; ValueError otherwise."""
        t = text.strip().upper().removeprefix("LFA_")
        try:
            return cls(int(t))
        except ValueError:
            pass
        try:
            return cls[t]
        except KeyError:
            names = ", ".join(f"LFA_{s.name}" for s in cls)
            raise ValueError(f"unknown LFA status {text!r}; expected one of {names}") from None


class Errno(enum.IntEnum):
    """TF-A libc errno values returned by platform hooks (include/lib/libc/errno.h)."""

    EPERM = 1
    ENOMEM = 12
    EINVAL = 22
    EAGAIN = 35
    EAUTH = 80


class RmmEl3Status(enum.IntEnum):
    """RMM-EL3 interface status (docs/components/rmm-el3-comms-spec.rst)."""

    OK = 0
    UNK = -1
    BAD_ADDR = -2
    BAD_PAS = -3
    NOMEM = -4
    INVAL = -5


class RmmBootStatus(enum.IntEnum):
    """RMM_BOOT_COMPLETE x1 (TF-RMM rmm_el3_ifc.h)."""

    SUCCESS = 0
    UNKNOWN_ERROR = -1
    VERSION_NOT_VALID = -2
    CPUS_OUT_OF_RANGE = -3
    CPU_ID_OUT_OF_RANGE = -4
    INVALID_SHARED_BUFFER = -5
    MANIFEST_VERSION_NOT_SUPPORTED = -6
    MANIFEST_DATA_ERROR = -7
    NO_MEM = -8


class RmiStatus(enum.IntEnum):
    """RMI command return codes (status in bits [7:0]), the subset modelled."""

    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_GLOBAL = 11  # TF-RMM lib/smc/include/smc-rmi.h: the RMM is not in the state the call needs


RMM_EL3_INTERFACE_VERSION = 0x0002_0000  # 2.0
RMI_ABI_VERSION = 0x0002_0000  # 2.0, the only revision TF-RMM v0.9.0 and main implement (runtime/rmi/version.c)


def fid_name(fid: int) -> str:
    try:
        return Fid(fid & 0xFFFF_FFFF).name
    except ValueError:
        return f"{fid:#x}"


INVALID_COMPONENT = 0xFFFF_FFFF
"""TF-A's current_activation.component_id when nothing is primed (lfa_main.c, LFA_INVALID_COMPONENT)."""

LFA_CALL_AGAIN = 1
"""x1 of a successful PRIME or ACTIVATE: the caller must issue the same call again."""

LFA_TIMED_OUT = -32
"""Not an LFA status: what Linux's lfa_fw.c returns when its ACTIVATE budget runs out."""


class InventoryFlags(enum.IntFlag):
    """x3 of LFA_GET_INVENTORY (TF-A lfa_main.c, lfa_get_inventory)."""

    ACTIVATION_CAPABLE = 1 << 0
    ACTIVATION_PENDING = 1 << 1
    MAY_RESET_CPU = 1 << 2
    CPU_RENDEZVOUS_OPTIONAL = 1 << 3


class ActivateFlags(enum.IntFlag):
    """x2 of LFA_ACTIVATE."""

    SKIP_CPU_RENDEZVOUS = 1 << 0


class ActivatorKind(str, enum.Enum):
    """Which TF-A activator a component has (one file each in TF-A)."""

    GENERIC = "generic"  # a component whose activator only swaps in the primed image
    SP = "sp"  # services/std_svc/spmd/spmd_logical_sp.c style: no rendezvous needed
    BL31 = "bl31"  # services/std_svc/lfa/bl31_lfa.c: patch, then warm reset into NS
    RMM = "rmm"  # services/std_svc/rmmd/rmmd_rmm_lfa.c: holding pen, then the new RMM boots

    def __str__(self) -> str:
        return self.value


_VERSION_TEXT = re.compile(r"(\d+)\.(\d+)")


class Version(NamedTuple):
    """A component version, MAJOR.MINOR, each 32 bits (DEN0147 GET_INVENTORY x4/x5).

    A tuple, so ``Version(1, 2) == (1, 2)`` and it unpacks as (major, minor).
    """

    major: int
    minor: int

    @classmethod
    def parse(cls, value: object) -> Version:
        """'1.2', (1, 2) or a Version -> Version(1, 2); ValueError naming the input otherwise."""
        if isinstance(value, (tuple, list)) and len(value) == 2:
            major, minor = value
        elif isinstance(value, str) and (m := _VERSION_TEXT.fullmatch(value.strip())):
            major, minor = int(m[1]), int(m[2])
        else:
            raise ValueError(f"expected a version MAJOR.MINOR, got {value!r}")
        if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 1 << 32 for p in (major, minor)):
            raise ValueError(f"version parts must be integers below 2**32, got {value!r}")
        return cls(int(major), int(minor))

    @classmethod
    def from_reg(cls, reg: int) -> Version:
        """The register form: major in bits [63:32], minor in [31:0]."""
        return cls((reg >> 32) & 0xFFFF_FFFF, reg & 0xFFFF_FFFF)

    @property
    def reg(self) -> int:
        return (self.major << 32) | self.minor

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

