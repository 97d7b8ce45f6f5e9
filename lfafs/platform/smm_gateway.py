"""The variable Secure Partition: Trusted Services' smm-gateway, as the SPMC runs it.

Its MM communicate endpoint reads the request where x3 of the direct
request says (an **offset** into the SP's comm buffer, Trusted Services
components/rpc/mm_communicate/endpoint/sp/mm_communicate_call_ep.c), hands
it to the SMM variable service (frontend/mm_communicate/
smm_variable_mm_service.c) and the provider's handlers
(provider/smm_variable_provider.c), and answers with an MM return code in
x3 of the direct response, the EFI status in the header's ReturnStatus and
the reply length in MessageLength. Every check is the one Trusted Services
makes, in its order, on the bytes in the buffer.

Live activation: the SP is stopped by the SPMC, saves what its policy keeps
in its live-state buffer, and the new image boots from NV storage plus that
buffer (:meth:`SmmGateway.stop`, :meth:`SmmGateway.boot`). No upstream
variable SP supports live activation (smm-gateway v1.2.0 has no stop
handler), so the two policies are the model's: ``faithful`` keeps the whole
index, the volatile store and the ExitBootServices flag; ``naive`` keeps
nothing beyond NV storage, as a cold restart of smm-gateway would.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import NsMemory
from lfafs.platform.variable_store import AccessVariable, Constraints, SecureStorage, UefiVariableStore
from lfafs.smccc import MASK64
from lfafs.uefi import EfiStatus

S = EfiStatus
LIVE_STATE_POLICIES = ("faithful", "naive")


class CommBuffer:
    """The SP's view of its manifest region ``mm-comm-buffer``: reads and writes stay inside it.

    Trusted Services trusts lengths it has checked only partly (a GetNextVariableName
    NameSize, for one); where it would read or write past the region the model
    reads zeros and drops the write instead (docs/efi.md, "Differences").
    """

    def __init__(self, memory: NsMemory, base: int, size: int) -> None:
        self.memory, self.base, self.size = memory, base, size
        self._view = memory.view(base, size)  # every access below is a slice of it: clipped at its end

    def read(self, off: int, n: int) -> bytes:
        return bytes(self._view[off:off + n]) if off >= 0 and n > 0 else b""

    def write(self, off: int, data: bytes) -> None:
        if 0 <= off < self.size:
            data = data[:self.size - off]
            self._view[off:off + len(data)] = data

    def u64(self, off: int) -> int:
        return int.from_bytes(self._view[off:off + 8], "little") if off >= 0 else 0

    def put_u64(self, off: int, value: int) -> None:
        self.write(off, struct.pack("<Q", value & MASK64))


class SmmGateway:
    """One smm-gateway instance: its store, and its MM endpoint over the comm buffer."""

    def __init__(self, *, comm: CommBuffer, nv: SecureStorage, max_variables: int, policy: str,
                 version: tuple[int, int] = (1, 0), max_variable_size: int = 4096) -> None:
        if policy not in LIVE_STATE_POLICIES:
            raise ValueError(f"live-state policy must be one of {', '.join(LIVE_STATE_POLICIES)}, got {policy!r}")
        self.comm = comm
        self.nv = nv
        self.max_variables = max_variables
        self.max_variable_size = max_variable_size
        self.policy = policy
        self.version = tuple(version)
        self.boots = 0
        self.store: UefiVariableStore | None = None
        self.boot(None)

    # -- life cycle --------------------------------------------------------------------------

    def boot(self, live_state: dict | None) -> None:
        """sp_main(): a new store from NV storage (load_variable_index, purge orphans), then the live state."""
        self.store = UefiVariableStore(self.max_variables, self.nv, SecureStorage(),
                                       max_variable_size=self.max_variable_size)
        if live_state is not None:
            self.store.restore_live_state(live_state)
        self.boots += 1

    def stop(self) -> dict | None:
        """The stop request of a live activation: what goes into the live-state buffer."""
        return self.store.live_state() if self.policy == "faithful" else None

    def describe(self, offset: int, *, reply: bool) -> Callable[[], str]:
        """The request (or reply) at ``offset`` in the comm buffer, for the trace: copied now, decoded when read."""
        if not 0 <= offset < self.comm.size:
            return f"MM at offset {offset:#x}, outside the {self.comm.size:#x}-byte buffer".__str__
        length = min(self.comm.u64(offset + 16), self.comm.size)
        return functools.partial(mm.describe, self.comm.read(offset, mm.MM_HEADER_SIZE + length), reply=reply)

    # -- the MM endpoint: mm_communicate_call_ep_receive() --------------------------------------

    def direct_request(self, offset: int) -> int:
        """One FFA_MSG_SEND_DIRECT_REQ_64 with x3 = ``offset``: the MM return code for x3 of the response."""
        header_end = offset + mm.MM_HEADER_SIZE
        if header_end > MASK64 or self.comm.size < header_end:
            return mm.MmReturn.INVALID_PARAMETER
        length = self.comm.u64(offset + 16)
        request_end = header_end + length
        if request_end > MASK64 or self.comm.size < request_end:
            return mm.MmReturn.INVALID_PARAMETER
        if self.comm.read(offset, 16) != mm.SMM_VARIABLE_GUID_LE:
            return mm.MmReturn.NOT_SUPPORTED
        buffer_size = self.comm.size - header_end
        code, reply_len = self._smm_var_receive(header_end, length, buffer_size)
        self.comm.put_u64(offset + 16, reply_len)  # header->MessageLength = resp data_length
        return code

    def _smm_var_receive(self, data: int, length: int, buffer_size: int) -> tuple[int, int]:
        """smm_var_receive(): (MM return code, reply MessageLength)."""
        if length < mm.VAR_HEADER_SIZE:
            return mm.MmReturn.DENIED, 0
        opcode = self.comm.u64(data) & 0xFFFF_FFFF  # rpc_request.opcode is a uint32_t
        req = data + mm.VAR_HEADER_SIZE
        req_len = length - mm.VAR_HEADER_SIZE
        size = buffer_size - mm.VAR_HEADER_SIZE
        handler = self._HANDLERS.get(opcode)
        if handler is None:  # service_provider.c receive(): RPC_ERROR_INVALID_VALUE, service status 0
            self.comm.put_u64(data + 8, 0)
            return mm.MmReturn.INVALID_PARAMETER, mm.VAR_HEADER_SIZE
        status, resp_len = handler(self, req, req_len, size)
        self.comm.put_u64(data + 8, status)  # header->ReturnStatus
        reply = resp_len + mm.VAR_HEADER_SIZE
        if reply > buffer_size:
            return mm.MmReturn.NO_MEMORY, reply
        return mm.MmReturn.SUCCESS, reply

    # -- smm_variable_provider.c handlers: (EFI status, response data_length) -------------------

    def _access(self, req: int, req_len: int) -> tuple[int, AccessVariable | None, int]:
        """sanitize_access_variable_param(): the header is whole and NameSize fits."""
        if req_len < mm.ACCESS_NAME_OFFSET:
            return S.INVALID_PARAMETER, None, 0
        guid, data_size, name_size, attributes = mm.ACCESS.unpack(self.comm.read(req, mm.ACCESS.size)
                                                                   .ljust(mm.ACCESS.size, b"\0"))
        if name_size > req_len - mm.ACCESS_NAME_OFFSET:
            return S.INVALID_PARAMETER, None, 0
        name = self.comm.read(req + mm.ACCESS_NAME_OFFSET, name_size)
        var = AccessVariable(guid=guid, data_size=data_size, name_size=name_size, attributes=attributes, name=name)
        return S.SUCCESS, var, mm.ACCESS_NAME_OFFSET + name_size

    def _get_variable(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        status, var, param_len = self._access(req, req_len)
        if status != S.SUCCESS:
            return status, 0
        if size < param_len:
            return S.BAD_BUFFER_SIZE, 0
        status, total = self.store.get_variable(var, size - param_len)
        if var.attributes_written:
            self.comm.write(req + 32, struct.pack("<I", var.attributes))
        if status in (S.SUCCESS, S.BUFFER_TOO_SMALL):
            self.comm.put_u64(req + 16, var.data_size)
        if status == S.SUCCESS:
            self.comm.write(req + param_len, var.data)
        return status, total

    def _get_next_variable_name(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        guid, name_size = mm.GET_NEXT.unpack(self.comm.read(req, mm.GET_NEXT.size).ljust(mm.GET_NEXT.size, b"\0"))
        name_at = req + mm.GET_NEXT_NAME_OFFSET
        name = self.comm.read(name_at, name_size)
        status, out_guid, out_size, out_name, total = self.store.get_next_variable_name(guid, name_size, name)
        if total == 0:  # check_name_terminator() failed: nothing is written
            return status, 0
        self.comm.write(req, out_guid)
        self.comm.put_u64(req + 16, out_size)
        if status == S.SUCCESS:
            self.comm.write(name_at, out_name[:out_size])
        else:
            self.comm.write(name_at, bytes(min(name_size, max(0, self.comm.size - name_at))))  # memset(Name, 0, ..)
        return status, total

    def _set_variable(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        status, var, param_len = self._access(req, req_len)
        if status != S.SUCCESS:
            return status, 0
        if var.data_size > req_len - param_len:
            return S.INVALID_PARAMETER, 0
        var.data = self.comm.read(req + param_len, var.data_size)
        return self.store.set_variable(var), 0

    def _query_variable_info(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        if req_len < mm.QUERY.size:
            return S.INVALID_PARAMETER, 0
        if size < req_len:
            return S.BAD_BUFFER_SIZE, 0
        attributes = struct.unpack("<I", self.comm.read(req + 24, 4))[0]
        maximum, remaining, max_var = self.store.query_variable_info(attributes)
        self.comm.write(req, mm.QUERY.pack(maximum, remaining, max_var, attributes))
        return S.SUCCESS, mm.QUERY.size

    def _exit_boot_service(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        return self.store.exit_boot_service(), 0

    def _property(self, req: int, req_len: int) -> tuple[int, bytes, int, bytes, int]:
        """sanitize_var_check_property_param(): (status, guid, NameSize, name, param_len)."""
        if req_len < mm.PROPERTY_NAME_OFFSET:
            return S.INVALID_PARAMETER, b"", 0, b"", 0
        guid, name_size, _ = mm.PROPERTY.unpack(self.comm.read(req, mm.PROPERTY.size))
        if name_size > req_len - mm.PROPERTY_NAME_OFFSET:
            return S.INVALID_PARAMETER, b"", 0, b"", 0
        name = self.comm.read(req + mm.PROPERTY_NAME_OFFSET, name_size)
        return S.SUCCESS, guid, name_size, name, mm.PROPERTY_NAME_OFFSET + name_size

    def _set_property(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        status, guid, name_size, name, _ = self._property(req, req_len)
        if status != S.SUCCESS:
            return status, 0
        prop = Constraints(*mm.VAR_CHECK.unpack(self.comm.read(req + 24, mm.VAR_CHECK.size)))
        return self.store.set_var_check_property(guid, name_size, name, prop), 0

    def _get_property(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        status, guid, name_size, name, param_len = self._property(req, req_len)
        if status != S.SUCCESS:
            return status, 0
        if size < param_len:
            return S.BAD_BUFFER_SIZE, 0
        status, prop = self.store.get_var_check_property(guid, name_size, name)
        if prop is not None:
            self.comm.write(req + 24, mm.VAR_CHECK.pack(prop.revision, prop.property, prop.attributes,
                                                        prop.min_size, prop.max_size))
        return status, param_len

    def _get_payload_size(self, req: int, req_len: int, size: int) -> tuple[int, int]:
        if size < mm.PAYLOAD_SIZE.size:
            return S.BAD_BUFFER_SIZE, 0
        self.comm.put_u64(req, size - mm.ACCESS_NAME_OFFSET)  # request.size - NAME_OFFSET
        return S.SUCCESS, mm.PAYLOAD_SIZE.size

    _HANDLERS = {
        mm.MmFunction.GET_VARIABLE: _get_variable,
        mm.MmFunction.GET_NEXT_VARIABLE_NAME: _get_next_variable_name,
        mm.MmFunction.SET_VARIABLE: _set_variable,
        mm.MmFunction.QUERY_VARIABLE_INFO: _query_variable_info,
        mm.MmFunction.EXIT_BOOT_SERVICE: _exit_boot_service,
        mm.MmFunction.VAR_CHECK_VARIABLE_PROPERTY_SET: _set_property,
        mm.MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET: _get_property,
        mm.MmFunction.GET_PAYLOAD_SIZE: _get_payload_size,
    }
