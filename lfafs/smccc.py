"""SMC Calling Convention constants for LFA, RMM-EL3 and RMI, and register helpers.

Values are TF-A's (include/services/lfa_svc.h, rmmd_svc.h; docs/smc-abi.md).
Registers are unsigned 64-bit; a negative status is its two's complement.
"""

from __future__ import annotations

import enum

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
    RMI_GRANULE_DELEGATE = 0xC4000151
    RMI_GRANULE_UNDELEGATE = 0xC4000152


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


RMM_EL3_INTERFACE_VERSION = 0x0002_0000  # 2.0
RMI_ABI_VERSION = 0x0001_0000  # 1.0


def fid_name(fid: int) -> str:
    try:
        return Fid(fid & 0xFFFF_FFFF).name
    except ValueError:
        return f"{fid:#x}"


def version_reg(major: int, minor: int) -> int:
    return ((major & 0xFFFF_FFFF) << 32) | (minor & 0xFFFF_FFFF)
