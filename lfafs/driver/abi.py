"""The kernel builds of lfa_fw.c that lfafs can present, and where they differ (docs/sysfs-abi.md, "Versions").

Upstream: v1 (Salman Nabi, 2026-01-19), v2 and v3 (Andre Przywara,
2026-03-17 and 2026-07-06; v3 is the default). NVIDIA's kernels for Vera
carry their own trees (NVIDIA/NV-Kernels drivers/firmware/smccc/lfa_fw.c):
``nvidia-v1`` is v1 plus NVIDIA's downstream patches (@304b72b495fb),
``nvidia-v3`` is v3 plus the downstream follow-ups kept in NV-Kernels
pull request 484 (@08ba8802aa8e).

Each field names one behaviour, so the driver model reads ``if
self.abi.<behaviour>`` where the builds part ways.
"""

from __future__ import annotations

import errno

import attrs

COMMON_FILES = ("activate", "activation_capable", "activation_pending", "cancel", "cpu_rendezvous",
                "current_version", "force_cpu_rendezvous", "may_reset_cpu", "name", "pending_version")
V2_FILES = tuple(sorted(COMMON_FILES + ("auto_activate",)))


@attrs.frozen(kw_only=True)
class Abi:
    """One build of lfa_fw.c."""

    name: str
    summary: str
    files: tuple[str, ...]
    # image_name of a GUID missing from the driver's table: "" (v2, v3) or "(unknown)" (v1).
    unknown_image_name: str
    # Where the build prints get_image_name() (image_name, else the GUID) instead of the bare
    # image_name: any of "name" (name_show), "log" (PRIME/ACTIVATE/success lines), "cancel_log".
    get_image_name_for: frozenset[str]
    # NVIDIA v1: the name lookup loop overwrites its result on every table entry, so only
    # the last entry (TF-RMM) keeps its name and every other image is named by its GUID.
    name_lookup_keeps_last: bool = False
    activated_log: str  # the success line of a sysfs activation; {name} is the image's name
    pending_version_na: bool  # v2+: N/A unless a fresh x5 and the cached pending flag say otherwise
    prime_budget: float | None  # seconds of PRIME call-again before cancelling; None polls for ever
    activate_budget: float | None  # seconds of ACTIVATE call-again before giving up
    activate_busy_retry: bool  # v3: ACTIVATE also retries LFA_BUSY within the budget
    activate_failure_is_cancel_result: bool  # v1 bug: a failed ACTIVATE returns lfa_cancel()'s result
    rwsem: bool  # v2 8/8, v3 7/8: the smc_lock reader/writer semaphore
    notifications: bool  # v2+: ACPI ARML0003 Notify and the arm,lfa interrupt, with auto_activate
    stale_prime_errno: int | None  # PRIME of a stale image (seq -1) refused without an SMC, with this errno
    stale_prime_log: str | None = None  # the line printed when it is refused that way
    # Where the refusal of a may_reset_cpu image is made: once before PRIME (upstream v2+), or under
    # the lock on every pass of the PRIME loop, after the stale check's sequence id is read (v1, NVIDIA).
    reset_check_in_loop: bool = False
    # NVIDIA v3 downstream (NV-Kernels @08ba8802aa8e):
    activation_mutex: bool = False  # lfa_activation_lock: a second `activate` writer gets EBUSY at once
    stale_enoent: bool = False  # stale image: activation_pending and cancel ENOENT, pending_version N/A, no SMC
    pins_seq_id: bool = False  # ACTIVATE and CANCEL use PRIME's sequence id; a rescan in between gives ENOENT
    prime_error_cancels_once_started: bool = False  # a PRIME error after a successful PRIME call sends CANCEL
    inventory_uevent: bool = False  # KOBJ_CHANGE on the SMCCC device after probe and after each rescan


_V1 = dict(files=COMMON_FILES, unknown_image_name="(unknown)", get_image_name_for=frozenset(),
           activated_log="Firmware activation succeeded", pending_version_na=False,
           prime_budget=None, activate_budget=None, activate_busy_retry=False,
           activate_failure_is_cancel_result=True, rwsem=False, notifications=False,
           stale_prime_errno=errno.ENODEV, stale_prime_log="Arm LFA: Invalid firmware sequence id",  # v1 prints
           reset_check_in_loop=True)  # its prefix twice
_V3 = dict(files=V2_FILES, unknown_image_name="", get_image_name_for=frozenset({"name", "log", "cancel_log"}),
           activated_log="{name}: successfully activated", pending_version_na=True,
           prime_budget=30.0, activate_budget=10.0, activate_busy_retry=True,
           activate_failure_is_cancel_result=False, rwsem=True, notifications=True, stale_prime_errno=None)

ABIS: dict[str, Abi] = {
    "v1": Abi(name="v1", summary="upstream v1 (2026-01): 10 files, no notifications", **_V1),
    "v2": Abi(name="v2", summary="upstream v2 (2026-03): auto_activate, budgets, smc_lock",
              **{**_V3, "get_image_name_for": frozenset({"log"}), "activate_busy_retry": False}),
    "v3": Abi(name="v3", summary="upstream v3 (2026-07), the default", **_V3),
    "nvidia-v1": Abi(name="nvidia-v1", summary="NVIDIA's v1 tree for Vera: only TF-RMM is named, 30 s/20 s budgets",
                     **{**_V1, "name_lookup_keeps_last": True, "prime_budget": 30.0, "activate_budget": 20.0}),
    "nvidia-v3": Abi(name="nvidia-v3",
                     summary="NVIDIA's v3 tree for Vera: EBUSY for a second activate, ENOENT for stale images, uevents",
                     **{**_V3, "stale_prime_errno": errno.ENOENT, "reset_check_in_loop": True,
                        "activation_mutex": True, "stale_enoent": True,
                        "pins_seq_id": True, "prime_error_cancels_once_started": True, "inventory_uevent": True}),
}
