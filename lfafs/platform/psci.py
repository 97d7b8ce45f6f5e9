"""PSCI as far as LFA needs it: which CPUs are on, and turning them on and off.

PSCI lives in the same OEN-4 standard service as LFA (TF-A
services/std_svc/std_svc_setup.c); TFTF's tftf_cpu_on is PSCI CPU_ON, and
the LFA holding pen counts the CPUs PSCI reports ON or ON_PENDING
(TF-A lib/psci/psci_common.c, psci_num_cpus_running()). Return codes and
function ids are PSCI's (Arm DEN0022, as TF-A include/lib/psci/psci.h
spells them).
"""

from __future__ import annotations

import enum


class PsciFid(enum.IntEnum):
    VERSION = 0x8400_0000
    CPU_OFF = 0x8400_0002
    CPU_ON = 0xC400_0003  # SMC64
    AFFINITY_INFO = 0xC400_0004  # SMC64
    FEATURES = 0x8400_000A


class PsciStatus(enum.IntEnum):
    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    ALREADY_ON = -4
    ON_PENDING = -5
    INTERNAL_FAILURE = -6
    NOT_PRESENT = -7
    DISABLED = -8
    INVALID_ADDRESS = -9


class AffinityState(enum.IntEnum):
    ON = 0
    OFF = 1
    ON_PENDING = 2


PSCI_VERSION_1_1 = 0x0001_0001
PSCI_FIDS = frozenset(PsciFid)
