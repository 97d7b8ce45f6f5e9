"""What differs between the driver versions lfafs can present (docs/sysfs-abi.md).

v3 (the default) and v2 have eleven files per image; v1 has ten (no
auto_activate). They also differ in the name of an unknown image, in
pending_version, in what a failed ACTIVATE returns, and in whether v3's
retry of LFA_BUSY on ACTIVATE exists.
"""

from __future__ import annotations

import attrs

COMMON_FILES = ("activate", "activation_capable", "activation_pending", "cancel", "cpu_rendezvous",
                "current_version", "force_cpu_rendezvous", "may_reset_cpu", "name", "pending_version")


@attrs.frozen
class Abi:
    name: str
    files: tuple[str, ...]
    unknown_name: str  # "guid" means the GUID itself
    pending_version_na: bool  # v2/v3 print N/A unless a fresh x5 and the cached pending flag say otherwise
    activate_busy_retry: bool  # v3 retries LFA_BUSY from ACTIVATE within the budget
    activate_failure_is_cancel_result: bool  # v1 bug: a failed ACTIVATE returns lfa_cancel()'s result
    budgets: bool  # v2/v3: 30 s PRIME, 10 s ACTIVATE; v1 polls without a timeout
    rwsem: bool  # v2 8/8, v3 7/8: the smc_lock reader/writer semaphore


ABIS = {
    "v1": Abi("v1", COMMON_FILES, "(unknown)", False, False, True, False, False),
    "v2": Abi("v2", tuple(sorted(COMMON_FILES + ("auto_activate",))), "", True, False, False, True, True),
    "v3": Abi("v3", tuple(sorted(COMMON_FILES + ("auto_activate",))), "guid", True, True, False, True, True),
}
