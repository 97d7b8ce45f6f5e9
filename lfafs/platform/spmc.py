"""The SPMD and the SPMC, as far as the variable path and SP live activation need them.

The SPMD (TF-A services/std_svc/spmd) forwards FF-A calls from the Normal
world to the SPMC (Hafnium, src/api.c); this module answers them as the
pair does, for the one Normal-world endpoint (id 0: no hypervisor):
FFA_VERSION, FFA_FEATURES, FFA_ID_GET, FFA_SPM_ID_GET, FFA_RXTX_MAP/UNMAP,
FFA_RX_RELEASE, FFA_PARTITION_INFO_GET and FFA_MSG_SEND_DIRECT_REQ (32 and
64 bit) to the Secure Partitions. Every other FF-A function answers
FFA_ERROR(NOT_SUPPORTED) (memory sharing, notifications and indirect
messages are not modelled).

Live activation (Hafnium src/ffa/spmc/lifecycle_msg.c) is driven by the
SPMD logical SP at EL3 (spmd_lsp.py): :meth:`Spmc.live_activation_start`
stops the SP, takes its live-state buffer and loads the new image;
:meth:`Spmc.live_activation_finish` boots it. While an SP is stopping,
stopped, created or starting, a direct request to it gets
FFA_ERROR(BUSY) (api_ffa_msg_send_direct_req()).

Handling is synchronous except the time an SP spends on a request, which
the machine awaits between :meth:`Spmc.handle` and :meth:`Spmc.deliver`:
while it runs, the SP is RUNNING and a second request, or a START, finds
it busy.
"""

from __future__ import annotations

import enum
import functools
import uuid

import attrs

from lfafs.platform.ffa import (
    FFA_VERSION_1_0,
    FFA_VERSION_1_1,
    FFA_VERSION_1_3,
    PAGE,
    FfaError,
    FfaFn,
    NsMemory,
    PartitionProps,
    descriptor_size,
    ffa_fid_name,
    fid32,
    fid64,
    is_smc64,
    partition_descriptor,
    uuid_from_words,
)
from lfafs.platform.mm_communicate import MmReturn
from lfafs.platform.smm_gateway import SmmGateway
from lfafs.platform.trace import TraceText
from lfafs.smccc import u64

NS_ENDPOINT_ID = 0  # the Normal world's endpoint without a hypervisor (Hafnium HF_OTHER_WORLD_ID)
SPMC_ID = 0x8000  # Hafnium HF_SPMC_VM_ID
SPMC_VERSION = FFA_VERSION_1_3
MM_RET_NOT_SUPPORTED = 0xFFFF_FFFF  # a 32-bit direct response's w3: MM NOT_SUPPORTED (-1)

_IMPLEMENTED = frozenset({
    fid32(FfaFn.VERSION), fid32(FfaFn.FEATURES), fid32(FfaFn.ID_GET), fid32(FfaFn.SPM_ID_GET),
    fid32(FfaFn.RXTX_MAP), fid64(FfaFn.RXTX_MAP), fid32(FfaFn.RXTX_UNMAP), fid32(FfaFn.RX_RELEASE),
    fid32(FfaFn.PARTITION_INFO_GET), fid32(FfaFn.MSG_SEND_DIRECT_REQ), fid64(FfaFn.MSG_SEND_DIRECT_REQ),
})


class SpState(str, enum.Enum):
    """An SP's execution context as the SPMC tracks it (Hafnium vcpu states and the live-activation steps)."""

    WAITING = "waiting"  # called FFA_MSG_WAIT: ready for a direct request
    RUNNING = "running"  # handling a request
    STOPPING = "stopping"  # handling the stop request of a live activation
    CREATED = "created"  # new image loaded, not yet started (START answered, FINISH pending)
    STARTING = "starting"
    ABORTED = "aborted"  # abort-action restart: Hafnium answers BUSY from here on
    DESTROYED = "destroyed"  # abort-action destroy: the partition is gone


@attrs.define
class RequestFault:
    """A fault the platform's owner arms on an SP's direct requests (the control plane's ``efi-fail``).

    ``ffa_error``: the SPMC answers FFA_ERROR with it instead of running the SP
    (BUSY is what Hafnium answers while the SP's context is not waiting);
    ``mm_return``: the SP answers with this MM return code without touching
    its store. ``remaining`` requests get it (None: until cleared).
    """

    ffa_error: FfaError | None = None
    mm_return: int | None = None
    remaining: int | None = None

    def take(self) -> bool:
        """One request meets the fault; False once it is spent."""
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        return True

    def describe(self) -> str:
        """One line for ``lfafs status``, named as ``efi fail`` names the fault (faults.Fault.describe() style)."""
        parts = []
        if self.ffa_error is not None:
            kind = "busy" if self.ffa_error == FfaError.BUSY else "ffa-error"
            parts.append(f"{kind}: FFA_ERROR {FfaError.name_of(self.ffa_error)}")
        if self.mm_return is not None:
            parts.append(f"mm-error: MM {MmReturn.name_of(self.mm_return)}")
        text = ", ".join(parts) or "nothing"
        if self.remaining is None:
            return text
        if self.remaining <= 0:
            return f"{text} (spent)"
        return f"{text} (next {self.remaining} request{'' if self.remaining == 1 else 's'})"


@attrs.define(eq=False)
class Partition:
    """One Secure Partition: its manifest facts and its run state."""

    id: int
    protocol_uuid: uuid.UUID
    image_uuid: uuid.UUID | None  # the LFA component GUID when the SP is live-activatable
    sp: SmmGateway
    latency: float = 0.0  # modelled time of one request
    contexts: int = 1
    abort_action: str = "destroy"
    state: SpState = SpState.WAITING
    live_state: dict | None = None  # what the SP saved at its stop request
    fault: RequestFault | None = None  # armed by the platform's owner (RequestFault)

    @property
    def props(self) -> PartitionProps:
        p = PartitionProps.DIRECT_REQ_RECV | PartitionProps.DIRECT_REQ_SEND | PartitionProps.AARCH64
        return p | PartitionProps.LIVE_ACTIVATION if self.image_uuid is not None else p


@attrs.define
class Pending:
    """A direct request the SP has taken and not answered yet."""

    partition: Partition
    x: list[int]
    smc64: bool
    sender: int


def _error(x: list[int], code: FfaError) -> None:
    x[:] = [fid32(FfaFn.ERROR), 0, code & 0xFFFF_FFFF, 0, 0, 0, 0, 0]


def _success(x: list[int], w2: int = 0, w3: int = 0) -> None:
    x[:] = [fid32(FfaFn.SUCCESS), 0, w2 & 0xFFFF_FFFF, w3 & 0xFFFF_FFFF, 0, 0, 0, 0]


def _direct_head(name: str, sender: int, receiver: int, x3: int) -> str:
    return f"{name} {sender:#06x}->{receiver:#06x} x3 {x3:#x}"


class Spmc:
    """The SPMC's partitions and the Normal world endpoint's FF-A state."""

    def __init__(self, memory: NsMemory, partitions: list[Partition]) -> None:
        self.memory = memory
        self.partitions = {p.id: p for p in partitions}
        self.ns_version: int | None = None  # negotiated by FFA_VERSION
        self.version_locked = False  # set by the first other FF-A call (open point: see docs/efi.md)
        self.rxtx: tuple[int, int, int] | None = None  # (tx, rx, pages) mapped by the Normal world
        self.rx_held = False  # the Normal world owns its RX buffer until FFA_RX_RELEASE
        self.activating: Partition | None = None  # the SP a live activation is running on

    # -- the Normal world's calls ----------------------------------------------------------------

    def handle(self, world: str, x: list[int]) -> tuple[str | TraceText, Pending | None]:
        """One FF-A call in ``x`` (x0..x7, answered in place): (trace text, a direct request to deliver)."""
        fid = x[0] & 0xFFFF_FFFF
        name = ffa_fid_name(fid) or f"{fid:#x}"
        if world != "ns":
            _error(x, FfaError.NOT_SUPPORTED)  # the model's secure partitions make no SMCs
            return f"{name} from the {world} world -> FFA_ERROR NOT_SUPPORTED", None
        if not is_smc64(fid):
            x[1:] = [r & 0xFFFF_FFFF for r in x[1:]]  # SMC32: w registers
        fn = fid & 0xFF
        if fid not in _IMPLEMENTED:
            _error(x, FfaError.NOT_SUPPORTED)
            return f"{name} -> FFA_ERROR NOT_SUPPORTED", None
        if fn != FfaFn.VERSION:
            self.version_locked = True
        if fn == FfaFn.MSG_SEND_DIRECT_REQ:
            return self._direct_req(name, x)
        text = {
            FfaFn.VERSION: self._version, FfaFn.FEATURES: self._features, FfaFn.ID_GET: self._id_get,
            FfaFn.SPM_ID_GET: self._spm_id_get, FfaFn.RXTX_MAP: self._rxtx_map, FfaFn.RXTX_UNMAP: self._rxtx_unmap,
            FfaFn.RX_RELEASE: self._rx_release, FfaFn.PARTITION_INFO_GET: self._partition_info_get,
        }[FfaFn(fn)](x)
        return f"{name}{text}", None

    def _version(self, x: list[int]) -> str:
        asked = x[1]
        if asked & (1 << 31) or asked >> 16 != 1 or (self.version_locked and asked != self.ns_version):
            x[:] = [0xFFFF_FFFF, 0, 0, 0, 0, 0, 0, 0]
            return f"({asked >> 16}.{asked & 0xFFFF}) -> NOT_SUPPORTED"
        self.ns_version = min(asked, SPMC_VERSION)
        x[:] = [SPMC_VERSION, 0, 0, 0, 0, 0, 0, 0]
        return f"({asked >> 16}.{asked & 0xFFFF}) -> {SPMC_VERSION >> 16}.{SPMC_VERSION & 0xFFFF}"

    def _features(self, x: list[int]) -> str:
        asked = x[1]
        if asked in _IMPLEMENTED or asked == fid32(FfaFn.MSG_SEND_DIRECT_RESP) \
                or asked == fid64(FfaFn.MSG_SEND_DIRECT_RESP):
            _success(x, 0)  # RXTX_MAP: w2 bits [1:0] = 0, a 4 KB minimum buffer
            return f"({ffa_fid_name(asked)}) -> SUCCESS"
        _error(x, FfaError.NOT_SUPPORTED)
        return f"({ffa_fid_name(asked) or hex(asked)}) -> FFA_ERROR NOT_SUPPORTED"

    def _id_get(self, x: list[int]) -> str:
        _success(x, NS_ENDPOINT_ID)
        return f" -> SUCCESS id {NS_ENDPOINT_ID:#06x}"

    def _spm_id_get(self, x: list[int]) -> str:
        _success(x, SPMC_ID)
        return f" -> SUCCESS id {SPMC_ID:#06x}"

    def _rxtx_map(self, x: list[int]) -> str:
        tx, rx, pages = x[1], x[2], x[3] & 0xFFFF_FFFF
        where = f" tx {tx:#x} rx {rx:#x} pages {pages}"
        if self.rxtx is not None:
            _error(x, FfaError.DENIED)
            return where + " -> FFA_ERROR DENIED (already mapped)"
        size = pages * PAGE
        ok = (pages >= 1 and tx % PAGE == 0 and rx % PAGE == 0 and tx != rx
              and self.memory.contains(tx, size) and self.memory.contains(rx, size)
              and (tx + size <= rx or rx + size <= tx))
        if not ok:
            _error(x, FfaError.INVALID_PARAMETERS)
            return where + " -> FFA_ERROR INVALID_PARAMETERS"
        self.rxtx = (tx, rx, pages)
        self.rx_held = False
        _success(x)
        return where + " -> SUCCESS"

    def _rxtx_unmap(self, x: list[int]) -> str:
        if self.rxtx is None or x[1] >> 16 != NS_ENDPOINT_ID:
            _error(x, FfaError.INVALID_PARAMETERS)
            return " -> FFA_ERROR INVALID_PARAMETERS"
        self.rxtx = None
        _success(x)
        return " -> SUCCESS"

    def _rx_release(self, x: list[int]) -> str:
        if self.rxtx is None or not self.rx_held:
            _error(x, FfaError.DENIED)
            return " -> FFA_ERROR DENIED"
        self.rx_held = False
        _success(x)
        return " -> SUCCESS"

    def _partition_info_get(self, x: list[int]) -> str:
        want = uuid_from_words(x[1], x[2], x[3], x[4])
        count_only = bool(x[5] & 1) and (self.ns_version or FFA_VERSION_1_0) >= FFA_VERSION_1_1
        found = [p for p in self.partitions.values() if want.int == 0 or p.protocol_uuid == want]
        what = f" uuid {want}"
        if not found:
            _error(x, FfaError.INVALID_PARAMETERS)
            return what + " -> FFA_ERROR INVALID_PARAMETERS (no partition)"
        version = self.ns_version or FFA_VERSION_1_0
        size = descriptor_size(version)
        w3 = size if version >= FFA_VERSION_1_1 else 0
        ids = " ".join(f"{p.id:#06x}" for p in found)
        if count_only:
            _success(x, len(found), w3)
            return what + f" count only -> SUCCESS count {len(found)}"
        if self.rxtx is None or self.rx_held:
            _error(x, FfaError.BUSY)
            return what + " -> FFA_ERROR BUSY (RX buffer " + ("not mapped)" if self.rxtx is None else "not released)")
        _, rx, pages = self.rxtx
        blob = b"".join(partition_descriptor(version, p.id, p.contexts, p.props, p.protocol_uuid, p.image_uuid)
                        for p in found)
        if len(blob) > pages * PAGE:
            _error(x, FfaError.NO_MEMORY)
            return what + " -> FFA_ERROR NO_MEMORY"
        self.memory.write(rx, blob)
        self.rx_held = True
        _success(x, len(found), w3)
        return what + f" -> SUCCESS count {len(found)} [{ids}]"

    # -- direct messages -------------------------------------------------------------------------

    def _direct_req(self, name: str, x: list[int]) -> tuple[str | TraceText, Pending | None]:
        smc64 = is_smc64(x[0])
        sender, receiver, flags = (x[1] >> 16) & 0xFFFF, x[1] & 0xFFFF, x[2] & 0xFFFF_FFFF
        head = TraceText(functools.partial(_direct_head, name, sender, receiver, x[3]))
        p = self.partitions.get(receiver)
        if sender != NS_ENDPOINT_ID or p is None or flags != 0 or x[1] >> 32:
            _error(x, FfaError.INVALID_PARAMETERS)
            return head + " -> FFA_ERROR INVALID_PARAMETERS", None
        if p.state == SpState.DESTROYED:
            _error(x, FfaError.INVALID_PARAMETERS)
            return head + " -> FFA_ERROR INVALID_PARAMETERS (SP destroyed)", None
        if p.state != SpState.WAITING:
            _error(x, FfaError.BUSY)
            return head + f" -> FFA_ERROR BUSY (SP {p.state.value})", None
        if p.fault is not None and p.fault.ffa_error is not None and p.fault.take():
            _error(x, p.fault.ffa_error)
            return head + f" -> FFA_ERROR {FfaError(p.fault.ffa_error).name} (injected)", None
        p.state = SpState.RUNNING
        if smc64:
            head = TraceText(head, ": ", p.sp.describe(x[3], reply=False))
        return head, Pending(partition=p, x=x, smc64=smc64, sender=sender)

    def deliver(self, pending: Pending) -> str | TraceText:
        """The SP handles the request it took and answers with a direct response; the trace text."""
        p, x = pending.partition, pending.x
        ids = (p.id << 16) | pending.sender
        if not pending.smc64:
            # Trusted Services smm_gateway_sp.c: MM over 32-bit FF-A is not supported
            x[:] = [fid32(FfaFn.MSG_SEND_DIRECT_RESP), ids, 0, MM_RET_NOT_SUPPORTED, 0, 0, 0, 0]
            text = " -> FFA_MSG_SEND_DIRECT_RESP MM NOT_SUPPORTED"
        elif p.fault is not None and p.fault.mm_return is not None and p.fault.take():
            code = p.fault.mm_return
            x[:] = [fid64(FfaFn.MSG_SEND_DIRECT_RESP), ids, 0, u64(code), 0, 0, 0, 0]
            text = f" -> FFA_MSG_SEND_DIRECT_RESP_64 MM {MmReturn.name_of(code)} (injected)"
        else:
            offset = x[3]
            code = p.sp.direct_request(offset)
            x[:] = [fid64(FfaFn.MSG_SEND_DIRECT_RESP), ids, 0, u64(code), 0, 0, 0, 0]
            text = f" -> FFA_MSG_SEND_DIRECT_RESP_64 MM {MmReturn.name_of(code)}"
            if code == MmReturn.SUCCESS:
                text = TraceText(text, "; ", p.sp.describe(offset, reply=True))
        if p.state == SpState.RUNNING:
            p.state = SpState.WAITING
        return text

    # -- live activation, driven by the SPMD logical SP ------------------------------------------

    def partition_info_regs(self, want: uuid.UUID) -> list[Partition]:
        """FFA_PARTITION_INFO_GET_REGS from EL3: partitions whose image UUID (v1.3) or protocol UUID matches."""
        return [p for p in self.partitions.values() if want in (p.image_uuid, p.protocol_uuid)]

    def live_activation_start(self, sp_id: int) -> tuple[int, str]:
        """The START framework message: 0 or an FF-A error code, and the trace text."""
        p = self.partitions.get(sp_id)
        if p is None or p.state == SpState.DESTROYED:
            return FfaError.INVALID_PARAMETERS, "no such partition"
        if p.image_uuid is None or p.contexts != 1:
            return FfaError.NOT_SUPPORTED, "no live activation support"
        if self.activating is p:
            return FfaError.DENIED, "already in progress for this SP"
        if self.activating is not None:
            return FfaError.BUSY, f"busy with SP {self.activating.id:#06x}"
        if p.state == SpState.ABORTED:
            return FfaError.ABORTED, "SP aborted"
        if p.state != SpState.WAITING:
            return FfaError.RETRY, f"SP {p.state.value}"
        self.activating = p
        p.state = SpState.STOPPING
        p.live_state = p.sp.stop()  # stop request (reason: live activation), answered with the buffer
        p.state = SpState.CREATED  # the new image is copied from staging over the load address
        return 0, "SP stopped, live state saved, new image loaded"

    def live_activation_finish(self, sp_id: int, version: tuple[int, int], *, boot_fails: bool) -> tuple[int, str]:
        """The FINISH framework message: the new image boots with the live state; 0 or an FF-A error."""
        p = self.partitions.get(sp_id)
        if p is None or self.activating is not p or p.state != SpState.CREATED:
            return FfaError.DENIED, "no live activation to finish"
        p.state = SpState.STARTING
        self.activating = None
        if boot_fails:
            p.state = SpState.DESTROYED if p.abort_action == "destroy" else SpState.ABORTED
            return FfaError.ABORTED, f"the new image failed to boot; SP {p.state.value}"
        p.sp.version = tuple(version)
        p.sp.boot(p.live_state)
        p.live_state = None
        p.state = SpState.WAITING  # it called FFA_MSG_WAIT
        return 0, f"SP running version {version[0]}.{version[1]}"

