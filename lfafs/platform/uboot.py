"""The UEFI firmware (BL33): U-Boot's EFI variable services over FF-A, at boot and at runtime.

A model of U-Boot mainline lib/efi_loader/efi_variable_tee.c and
drivers/firmware/arm-ffa/arm-ffa-uclass.c (the FF-A client), with the
boot-time setup of lib/efi_loader/efi_setup.c and efi_var_common.c. Like
the Linux driver model, it reaches the rest of the platform only through
SMCs: every function that talks to the variable SP is a generator that
yields the registers of an SMC (x0..x7) and receives the reply, so the same
code runs at boot (synchronously, before any OS) and at runtime (on the
CPU the OS called it from). :func:`run_sync` and :func:`run_async` drive it.

Two configurations:

- ``mainline``: U-Boot as merged. After ExitBootServices, GetVariable and
  GetNextVariableName answer from a RAM copy of the runtime variables taken
  at ExitBootServices (efi_var_collect(), efi_get_variable_mem()); SetVariable
  and QueryVariableInfo are EFI_UNSUPPORTED; the RT properties table lacks
  SetVariable, so Linux mounts efivarfs read-only.
- ``ffa-runtime``: the "FF-A runtime support" series (v1-v3, not merged):
  the same MM-over-FF-A path at runtime through the fixed shared buffer,
  with the read-only check before the buffer is set up, and SetVariable and
  QueryVariableInfo in the RT properties table (docs/efi.md, "Open points").

Why this module is long: it is U-Boot's variable driver and its FF-A client,
which are one path in U-Boot too.
"""

from __future__ import annotations

import errno
import struct
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import attrs

from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FFA_VERSION_1_0, PAGE, FfaFn, NsMemory, fid32, fid64, uuid_words
from lfafs.platform.mm_communicate import MmFunction, signed32
from lfafs.uefi import (
    ATTRIBUTE_MASK_UEFI,
    BS_RT,
    EFI_CAPSULE_REPORT,
    EFI_CERT_SHA256,
    EFI_CERT_X509,
    EFI_GLOBAL_VARIABLE,
    NV_BS_RT,
    EfiStatus,
    RtSupported,
    from_ucs2,
    guid_bytes,
    guid_from_bytes,
    ucs2,
)

S = EfiStatus
T = TypeVar("T")
Firmware = Generator[list[int], list[int], T]  # yields an SMC's x0..x7, receives the reply's

CONFIGURATIONS = ("ffa-runtime", "mainline")
EFI_VARIABLE_READ_ONLY = 0x8000_0000  # U-Boot's internal attribute bit (include/efi_variable.h)
MM_COMMUNICATE_HEADER_SIZE = mm.MM_HEADER_SIZE + mm.VAR_HEADER_SIZE  # 40: both headers
MM_VARIABLE_GET_NEXT_HEADER_SIZE = 24
# Linux drivers: U-Boot's errno values for FF-A errors (arm-ffa-uclass.c ffa_to_std_errmap)
_FFA_ERRNO = {-1: -errno.EOPNOTSUPP, -2: -errno.EINVAL, -3: -errno.ENOMEM, -4: -errno.EBUSY,
              -5: -errno.EINTR, -6: -errno.EACCES, -7: -errno.EAGAIN, -8: -errno.ECANCELED}
# ffa_notify_mm_sp(): MM return code -> errno; ffa_mm_communicate(): errno -> EFI status
_MM_ERRNO = {0: 0, -1: -errno.EINVAL, -2: -errno.EPERM, -3: -errno.EACCES, -5: -errno.EBUSY}
_ERRNO_EFI = {-errno.EINVAL: S.DEVICE_ERROR, -errno.EPERM: S.INVALID_PARAMETER, -errno.EACCES: S.ACCESS_DENIED,
              -errno.EBUSY: S.OUT_OF_RESOURCES}
MM_SP_UUID = mm.SMM_VARIABLE_GUID  # MM_SP_UUID "33d532ed-e699-0942-c09c-a798d9cd722d" through uuid_str_to_le_bin()
OS_INDICATIONS_SUPPORTED = 0x4 | 0x8 | 0x10  # file capsule delivery, FMP capsules, capsule result variables
CAPSULE_MAX = 15  # CONFIG_EFI_CAPSULE_MAX
PLATFORM_LANG_CODES = b"en-US\0"  # CONFIG_EFI_PLATFORM_LANG_CODES


def run_sync(gen: Firmware[T], smc: Callable[[list[int]], list[int]]) -> T:
    """Run firmware code whose SMCs ``smc`` answers at once (boot time)."""
    try:
        regs = next(gen)
        while True:
            regs = gen.send(smc(regs))
    except StopIteration as stop:
        return stop.value


async def run_async(gen: Firmware[T], smc: Callable[[list[int]], Awaitable[list[int]]]) -> T:
    """Run firmware code whose SMCs ``smc`` answers asynchronously (runtime, on a pinned CPU)."""
    try:
        regs = next(gen)
        while True:
            regs = gen.send(await smc(regs))
    except StopIteration as stop:
        return stop.value


def _s32(v: int) -> int:
    return signed32(v)


@attrs.frozen
class UBootConfig:
    """The build and board configuration the model needs (Kconfig values of a FVP build)."""

    configuration: str = "ffa-runtime"
    shared_buf: int = 0x8_8100_0000  # CONFIG_FFA_SHARED_MM_BUF_ADDR (= the SP's mm-comm-buffer)
    shared_buf_size: int = 0x8000  # CONFIG_FFA_SHARED_MM_BUF_SIZE
    shared_buf_offset: int = 0  # CONFIG_FFA_SHARED_MM_BUF_OFFSET, passed in x3
    tx: int = 0  # the FF-A TX and RX pages (U-Boot allocates them; here after the shared buffer)
    rx: int = 0
    rt_supported: int = 0


def rt_supported_default(configuration: str) -> int:
    """The RT properties mask: mainline efi_init_runtime_supported(), plus what the series must add."""
    mask = (RtSupported.GET_VARIABLE | RtSupported.GET_NEXT_VARIABLE_NAME
            | RtSupported.SET_VIRTUAL_ADDRESS_MAP | RtSupported.CONVERT_POINTER)
    if configuration == "ffa-runtime":
        mask |= RtSupported.SET_VARIABLE | RtSupported.QUERY_VARIABLE_INFO
    return int(mask)


@attrs.define
class SnapVar:
    """struct efi_var_entry of the runtime copy (mainline)."""

    name: str
    guid: uuid.UUID
    attr: int
    data: bytes


class UBoot:
    """U-Boot's EFI variable services and FF-A client, for one boot."""

    def __init__(self, config: UBootConfig, memory: NsMemory, log: Callable[[str], None] | None = None) -> None:
        if config.configuration not in CONFIGURATIONS:
            raise ValueError(f"UEFI configuration must be one of {', '.join(CONFIGURATIONS)}")
        self.cfg = config
        self.memory = memory
        self.log = log or (lambda line: None)
        self.ffa_probed = False
        self.endpoint_id = 0
        self.rxtx_pages = 1
        self.partitions: list[dict[str, Any]] = []  # the cache: {"id", "contexts", "props", "uuid"}
        self.mm_sp_id = 0
        self.max_payload_size = 0
        self.max_buffer_size = 0
        self.exited_boot_services = False
        self.snapshot: list[SnapVar] = []
        self.secure_boot = False

    # -- the FF-A client: arm-ffa-uclass.c ---------------------------------------------------------

    @staticmethod
    def _errno(res: list[int]) -> int:
        code = _s32(res[2])
        return _FFA_ERRNO.get(code, -errno.EINVAL)

    def ffa_probe(self) -> Firmware[int]:
        """ffa_do_probe(): version, endpoint id, RXTX_MAP features, map RX/TX, cache all partitions."""
        res = yield [fid32(FfaFn.VERSION), FFA_VERSION_1_0, 0, 0, 0, 0, 0, 0]
        version = _s32(res[0])
        if version < 0:
            return _FFA_ERRNO.get(version, -errno.EINVAL)
        if version >> 16 != 1:
            return -errno.EPROTONOSUPPORT
        res = yield [fid32(FfaFn.ID_GET), 0, 0, 0, 0, 0, 0, 0]
        if res[0] != fid32(FfaFn.SUCCESS):
            return self._errno(res)
        self.endpoint_id = res[2] & 0xFFFF
        res = yield [fid32(FfaFn.FEATURES), fid64(FfaFn.RXTX_MAP), 0, 0, 0, 0, 0, 0]
        if res[0] != fid32(FfaFn.SUCCESS):
            return self._errno(res)
        pages = {0: 1, 2: 4, 1: 16}.get(res[2] & 0xFFFF_FFFF)
        if pages is None:
            return -errno.EINVAL
        self.rxtx_pages = pages
        res = yield [fid64(FfaFn.RXTX_MAP), self.cfg.tx, self.cfg.rx, pages, 0, 0, 0, 0]
        if res[0] != fid32(FfaFn.SUCCESS):
            return self._errno(res)
        ret = yield from self._query_partitions(None)
        if ret:
            yield [fid32(FfaFn.RXTX_UNMAP), self.endpoint_id << 16, 0, 0, 0, 0, 0, 0]
            return ret[0] if isinstance(ret, tuple) else ret
        self.ffa_probed = True
        return 0

    def _query_partitions(self, part_uuid: uuid.UUID | None) -> Firmware[Any]:
        """ffa_query_partitions_info(): 0 (or (0, count) for a UUID) and the RX buffer released."""
        words = uuid_words(part_uuid) if part_uuid is not None else (0, 0, 0, 0)
        res = yield [fid32(FfaFn.PARTITION_INFO_GET), *words, 0, 0, 0]
        if res[0] != fid32(FfaFn.SUCCESS):
            return self._errno(res)
        count = res[2] & 0xFFFF_FFFF
        if count:
            raw = self.memory.read(self.cfg.rx, min(count * 8, self.rxtx_pages * PAGE))
            descs = [struct.unpack_from("<HHI", raw, 8 * i) for i in range(len(raw) // 8)]
            if part_uuid is None:
                if count * 24 > self.rxtx_pages * PAGE:  # sizeof(struct ffa_partition_desc) per entry
                    yield [fid32(FfaFn.RX_RELEASE), 0, 0, 0, 0, 0, 0, 0]
                    return -errno.EINVAL
                self.partitions = [{"id": d[0], "contexts": d[1], "props": d[2], "uuid": None} for d in descs]
            else:
                for d in descs:
                    cached = next((p for p in self.partitions if p["id"] == d[0]), None)
                    if cached is None:
                        yield [fid32(FfaFn.RX_RELEASE), 0, 0, 0, 0, 0, 0, 0]
                        return -errno.EINVAL
                    cached["uuid"] = part_uuid
        res = yield [fid32(FfaFn.RX_RELEASE), 0, 0, 0, 0, 0, 0, 0]
        ret = 0 if res[0] == fid32(FfaFn.SUCCESS) else self._errno(res)
        return (ret, count) if part_uuid is not None else ret

    def ffa_partition_info_get(self, part_uuid: uuid.UUID) -> Firmware[tuple[int, list[int]]]:
        """ffa_get_partitions_info_hdlr(): (0, ids) from the cache, querying the SPMC once per UUID."""
        if not self.partitions:
            return -errno.EINVAL, []
        ids = [p["id"] for p in self.partitions if p["uuid"] == part_uuid]
        if ids:
            return 0, ids
        ret = yield from self._query_partitions(part_uuid)
        if isinstance(ret, int):
            return ret, []
        ret, count = ret
        if ret:
            return ret, []
        if not count:
            return -errno.ENODATA, []
        return (yield from self.ffa_partition_info_get(part_uuid))

    def ffa_sync_send_receive(self, dst: int, data0: int) -> Firmware[tuple[int, int]]:
        """ffa_msg_send_direct_req_hdlr(..., is_smc64=true) with x3 = data0: (errno, x3 of the response)."""
        if not self.partitions:
            return -errno.ENODEV, 0
        res = yield [fid64(FfaFn.MSG_SEND_DIRECT_REQ), (self.endpoint_id << 16) | dst, 0, data0, 0, 0, 0, 0]
        while res[0] == fid32(FfaFn.INTERRUPT):
            res = yield [fid32(FfaFn.RUN), res[1], 0, 0, 0, 0, 0, 0]
        if res[0] == fid32(FfaFn.SUCCESS):
            return 0, data0
        if res[0] == fid64(FfaFn.MSG_SEND_DIRECT_RESP):
            return 0, res[3]
        return self._errno(res), 0

    # -- efi_variable_tee.c: the MM transport ------------------------------------------------------

    def _discover_mm_sp(self) -> Firmware[int]:
        """ffa_discover_mm_sp_id(): the first partition of the MM SP's UUID."""
        if not self.ffa_probed:
            ret = yield from self.ffa_probe()
            if ret:
                self.log(f"EFI: Cannot find FF-A bus device, MM SP discovery failure ({ret})")
                return ret
        ret, ids = yield from self.ffa_partition_info_get(MM_SP_UUID)
        if ret:
            self.log(f"EFI: Failure in querying SPs info ({ret}), MM SP discovery failure")
            return ret
        self.mm_sp_id = ids[0]
        self.log(f"EFI: MM partition ID {self.mm_sp_id:#x}")
        return 0

    def _ffa_mm_communicate(self, comm: bytearray) -> Firmware[int]:
        """ffa_mm_communicate(): copy to the shared buffer, ring the SP, copy the reply back."""
        if not self.mm_sp_id and (yield from self._discover_mm_sp()):
            self.log("EFI: Failure to discover MM SP ID at boot time, FF-A MM comms failure")
            return S.UNSUPPORTED
        tx_size = struct.unpack_from("<Q", comm, 16)[0] + mm.MM_HEADER_SIZE
        if len(comm) != tx_size or tx_size > self.cfg.shared_buf_size:
            return S.INVALID_PARAMETER
        # map_sysmem(CONFIG_FFA_SHARED_MM_BUF_ADDR): the copy goes to the buffer's start; x3 carries the offset
        self.memory.write(self.cfg.shared_buf, bytes(comm))
        ret, x3 = yield from self.ffa_sync_send_receive(self.mm_sp_id, self.cfg.shared_buf_offset)
        if ret == 0:
            ret = _MM_ERRNO.get(_s32(x3), -errno.EACCES)
        if ret == 0:
            rx_size = int.from_bytes(self.memory.read(self.cfg.shared_buf + 16, 8), "little") + mm.MM_HEADER_SIZE
            if rx_size > len(comm):
                return S.OUT_OF_RESOURCES
            comm[:rx_size] = self.memory.read(self.cfg.shared_buf, rx_size)
            return S.SUCCESS
        return _ERRNO_EFI.get(ret, S.ACCESS_DENIED)

    def _setup_mm_hdr(self, payload_size: int, function: int) -> tuple[bytearray | None, int]:
        """setup_mm_hdr(): the buffer, or INVALID_PARAMETER when it cannot fit the shared buffer."""
        if self.max_buffer_size and self.max_buffer_size < MM_COMMUNICATE_HEADER_SIZE + payload_size:
            return None, S.INVALID_PARAMETER
        return bytearray(mm.header(function, bytes(payload_size))), S.SUCCESS

    def _mm_communicate(self, comm: bytearray) -> Firmware[int]:
        """mm_communicate(): the transport status, else the SP's ReturnStatus."""
        ret = yield from self._ffa_mm_communicate(comm)
        if ret != S.SUCCESS:
            self.log("mm_communicate failed!")
            return ret
        return struct.unpack_from("<Q", comm, mm.MM_HEADER_SIZE + 8)[0]

    # -- efi_variable_tee.c: the variable calls -----------------------------------------------------

    def get_max_payload(self) -> Firmware[tuple[int, int]]:
        comm, ret = self._setup_mm_hdr(mm.PAYLOAD_SIZE.size, MmFunction.GET_PAYLOAD_SIZE)
        if comm is None:
            return ret, 0
        ret = yield from self._mm_communicate(comm)
        if ret != S.SUCCESS:
            return ret, 0
        size = struct.unpack_from("<Q", comm, MM_COMMUNICATE_HEADER_SIZE)[0]
        if size < mm.ACCESS_HEADER_SIZE + 0x20:
            return S.DEVICE_ERROR, 0
        return S.SUCCESS, size - 2  # the edk2 boundary-check compatibility rule

    def _property(self, name: str, guid: uuid.UUID, function: int, prop: bytes = bytes(mm.VAR_CHECK.size)
                  ) -> Firmware[tuple[int, tuple]]:
        """get_property_int() / set_property_int(): (status, (revision, property, attributes, min, max))."""
        raw = ucs2(name)
        payload_size = mm.PROPERTY_NAME_OFFSET + len(raw)
        empty = (0, 0, 0, 0, 0)
        if payload_size > self.max_payload_size:
            return S.INVALID_PARAMETER, empty
        comm, ret = self._setup_mm_hdr(payload_size, function)
        if comm is None:
            return ret, empty
        comm[MM_COMMUNICATE_HEADER_SIZE:] = mm.PROPERTY.pack(guid_bytes(guid), len(raw), prop) + raw
        ret = yield from self._mm_communicate(comm)
        if function == MmFunction.VAR_CHECK_VARIABLE_PROPERTY_SET:
            return ret, empty
        if ret == S.NOT_FOUND:  # only read-only variables have properties in StMM
            return S.SUCCESS, empty
        if ret != S.SUCCESS:
            return ret, empty
        return S.SUCCESS, mm.VAR_CHECK.unpack_from(comm, MM_COMMUNICATE_HEADER_SIZE + 24)

    def get_variable_int(self, name: str, guid: uuid.UUID, *, attributes: bool, data_size: int, data: bool
                         ) -> Firmware[tuple[int, int | None, int, bytes | None]]:
        """efi_get_variable_int(): (status, attributes or None, data size, data or None)."""
        raw = ucs2(name)
        name_size = len(raw)
        if name_size > self.max_payload_size - mm.ACCESS_HEADER_SIZE:
            return S.INVALID_PARAMETER, None, data_size, None
        tmp_dsize = data_size
        if name_size + tmp_dsize > self.max_payload_size - mm.ACCESS_HEADER_SIZE:
            tmp_dsize = self.max_payload_size - mm.ACCESS_HEADER_SIZE - name_size
        payload_size = mm.ACCESS_HEADER_SIZE + name_size + tmp_dsize
        comm, ret = self._setup_mm_hdr(payload_size, MmFunction.GET_VARIABLE)
        if comm is None:
            return ret, None, data_size, None
        body = MM_COMMUNICATE_HEADER_SIZE
        comm[body:body + mm.ACCESS.size] = mm.ACCESS.pack(guid_bytes(guid), tmp_dsize, name_size, 0)
        comm[body + mm.ACCESS_NAME_OFFSET:body + mm.ACCESS_NAME_OFFSET + name_size] = raw
        ret = yield from self._mm_communicate(comm)
        if ret not in (S.SUCCESS, S.BUFFER_TOO_SMALL):
            return ret, None, data_size, None
        _, reply_size, reply_name_size, attr = mm.ACCESS.unpack_from(comm, body)
        out_attr = None
        if attributes:  # the series keeps the attributes before the buffer is reused
            tmp, prop = yield from self._property(name, guid, MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET)
            if tmp != S.SUCCESS:
                return tmp, None, reply_size, None
            out_attr = attr | (EFI_VARIABLE_READ_ONLY if prop[1] & mm.VAR_CHECK_READ_ONLY else 0)
        if ret != S.SUCCESS:
            return ret, out_attr, reply_size, None
        if not data:
            return S.INVALID_PARAMETER, out_attr, reply_size, None
        start = body + mm.ACCESS_NAME_OFFSET + reply_name_size
        return S.SUCCESS, out_attr, reply_size, bytes(comm[start:start + reply_size])

    def get_next_variable_name_int(self, name_size: int, name: str, guid: uuid.UUID
                                   ) -> Firmware[tuple[int, int, str, uuid.UUID]]:
        """efi_get_next_variable_name_int(): (status, NameSize, name, vendor)."""
        raw = ucs2(name)
        out_name_size, in_name_size = name_size, len(raw)
        if out_name_size < in_name_size:
            return S.INVALID_PARAMETER, name_size, name, guid
        if in_name_size > self.max_payload_size - MM_VARIABLE_GET_NEXT_HEADER_SIZE:
            return S.INVALID_PARAMETER, name_size, name, guid
        if out_name_size > self.max_payload_size - MM_VARIABLE_GET_NEXT_HEADER_SIZE:
            out_name_size = self.max_payload_size - MM_VARIABLE_GET_NEXT_HEADER_SIZE
        payload_size = MM_VARIABLE_GET_NEXT_HEADER_SIZE + out_name_size
        comm, ret = self._setup_mm_hdr(payload_size, MmFunction.GET_NEXT_VARIABLE_NAME)
        if comm is None:
            return ret, name_size, name, guid
        body = MM_COMMUNICATE_HEADER_SIZE
        comm[body:body + 24] = mm.GET_NEXT.pack(guid_bytes(guid), out_name_size)
        comm[body + 24:body + 24 + in_name_size] = raw
        ret = yield from self._mm_communicate(comm)
        reply_guid, reply_size = mm.GET_NEXT.unpack_from(comm, body)
        if ret not in (S.SUCCESS, S.BUFFER_TOO_SMALL):
            return ret, name_size, name, guid
        if ret != S.SUCCESS:
            return ret, reply_size, name, guid
        out = from_ucs2(bytes(comm[body + 24:body + 24 + reply_size]))
        return S.SUCCESS, reply_size, out, guid_from_bytes(reply_guid)

    def set_variable_int(self, name: str, guid: uuid.UUID, attributes: int, data: bytes, *, ro_check: bool
                         ) -> Firmware[int]:
        """efi_set_variable_int(): property check, SET_VARIABLE, and the read-only property if asked."""
        if not name or ord(name[0]) == 0:
            return S.INVALID_PARAMETER
        raw = ucs2(name)
        payload_size = mm.ACCESS_HEADER_SIZE + len(raw) + len(data)
        if payload_size > self.max_payload_size:
            return S.INVALID_PARAMETER
        ro = bool(attributes & EFI_VARIABLE_READ_ONLY)
        attributes &= ATTRIBUTE_MASK_UEFI
        ret, prop = yield from self._property(name, guid, MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET)
        if ret != S.SUCCESS:
            return ret
        revision, flags, prop_attrs, min_size, max_size = prop
        if flags & mm.VAR_CHECK_READ_ONLY:
            if ro_check:
                return S.WRITE_PROTECTED
            flags &= ~mm.VAR_CHECK_READ_ONLY
            ret, _ = yield from self._property(name, guid, MmFunction.VAR_CHECK_VARIABLE_PROPERTY_SET,
                                               mm.VAR_CHECK.pack(revision, flags, prop_attrs, min_size, max_size))
            if ret != S.SUCCESS:
                return ret
        comm, ret = self._setup_mm_hdr(payload_size, MmFunction.SET_VARIABLE)
        if comm is None:
            return ret
        body = MM_COMMUNICATE_HEADER_SIZE
        comm[body:body + mm.ACCESS.size] = mm.ACCESS.pack(guid_bytes(guid), len(data), len(raw), attributes)
        at = body + mm.ACCESS_NAME_OFFSET
        comm[at:at + len(raw) + len(data)] = raw + data
        ret = yield from self._mm_communicate(comm)
        alt_ret = ret
        if ro and not flags & mm.VAR_CHECK_READ_ONLY:
            ret, _ = yield from self._property(name, guid, MmFunction.VAR_CHECK_VARIABLE_PROPERTY_SET,
                                               mm.VAR_CHECK.pack(mm.VAR_CHECK_REVISION,
                                                                 flags | mm.VAR_CHECK_READ_ONLY, attributes, 1,
                                                                 len(data)))
        if alt_ret != S.SUCCESS:
            return alt_ret
        if name == "PK" and guid == EFI_GLOBAL_VARIABLE and not self.exited_boot_services:
            alt_ret = yield from self.init_secure_state()
        return ret if alt_ret == S.SUCCESS else alt_ret

    def query_variable_info_int(self, attributes: int) -> Firmware[tuple[int, tuple[int, int, int] | None]]:
        if not attributes:
            return S.INVALID_PARAMETER, None
        comm, ret = self._setup_mm_hdr(mm.QUERY.size, MmFunction.QUERY_VARIABLE_INFO)
        if comm is None:
            return ret, None
        struct.pack_into("<I", comm, MM_COMMUNICATE_HEADER_SIZE + 24, attributes)
        ret = yield from self._mm_communicate(comm)
        if ret != S.SUCCESS:
            return ret, None
        mx, rem, mvs, _ = mm.QUERY.unpack_from(comm, MM_COMMUNICATE_HEADER_SIZE)
        return S.SUCCESS, (mx, rem, mvs)

    # -- boot: efi_init_obj_list() and ExitBootServices() -----------------------------------------

    def boot(self) -> Firmware[int]:
        """The variable part of efi_init_obj_list(), in U-Boot's order."""
        ret, size = yield from self.get_max_payload()  # efi_init_variables()
        if ret != S.SUCCESS:
            self.log("Cannot initialize UEFI sub-system")
            return ret
        self.max_payload_size = size
        self.max_buffer_size = MM_COMMUNICATE_HEADER_SIZE + size
        ret = yield from self.init_secure_state()
        if ret == S.SUCCESS:
            ret = yield from self._init_platform_lang()
        ro = BS_RT | EFI_VARIABLE_READ_ONLY
        steps = [("OsIndicationsSupported", EFI_GLOBAL_VARIABLE, struct.pack("<Q", OS_INDICATIONS_SUPPORTED)),
                 ("SignatureSupport", EFI_GLOBAL_VARIABLE, guid_bytes(EFI_CERT_SHA256) + guid_bytes(EFI_CERT_X509)),
                 ("CapsuleMax", EFI_CAPSULE_REPORT, f"Capsule{CAPSULE_MAX:04X}".encode("utf-16-le"))]
        for name, guid, value in steps:
            if ret != S.SUCCESS:
                break
            ret = yield from self.set_variable_int(name, guid, ro, value, ro_check=False)
        if ret != S.SUCCESS:
            self.log("Cannot initialize UEFI sub-system")
        return ret

    def _init_platform_lang(self) -> Firmware[int]:
        ret = yield from self.set_variable_int("PlatformLangCodes", EFI_GLOBAL_VARIABLE,
                                               BS_RT | EFI_VARIABLE_READ_ONLY, PLATFORM_LANG_CODES, ro_check=False)
        if ret != S.SUCCESS:
            return ret
        ret, _, _, _ = yield from self.get_variable_int("PlatformLang", EFI_GLOBAL_VARIABLE, attributes=False,
                                                        data_size=0, data=True)
        if ret == S.BUFFER_TOO_SMALL:
            return S.SUCCESS  # already set: not changed
        lang = PLATFORM_LANG_CODES.split(b";")[0].rstrip(b"\0") + b"\0"
        return (yield from self.set_variable_int("PlatformLang", EFI_GLOBAL_VARIABLE, NV_BS_RT, lang,
                                                 ro_check=False))

    def init_secure_state(self) -> Firmware[int]:
        """efi_init_secure_state() with CONFIG_EFI_SECURE_BOOT: user mode when PK exists, else setup mode."""
        def get_u8(name: str) -> Firmware[int]:
            ret, _, _, value = yield from self.get_variable_int(name, EFI_GLOBAL_VARIABLE, attributes=False,
                                                                data_size=1, data=True)
            return value[0] if ret == S.SUCCESS and value else 0

        deployed = yield from get_u8("DeployedMode")
        audit = yield from get_u8("AuditMode")
        ret, _, _, _ = yield from self.get_variable_int("PK", EFI_GLOBAL_VARIABLE, attributes=False, data_size=0,
                                                        data=False)
        if ret == S.BUFFER_TOO_SMALL:
            setup, audit = 0, 0
        else:
            setup, deployed = 1, 0
        if deployed:
            modes, mode = (1, 0, 0, 1), "deployed"
        elif audit:
            modes, mode = (0, 1, 1, 0), "audit"
        elif setup:
            modes, mode = (0, 1, 0, 0), "setup"
        else:
            modes, mode = (1, 0, 0, 0), "user"
        if mode == "audit":
            ret = yield from self.set_variable_int("PK", EFI_GLOBAL_VARIABLE, BS_RT, b"", ro_check=False)
            if ret != S.SUCCESS:
                return ret
        secure_boot, setup_mode, audit_mode, deployed_mode = modes
        ro, rw = BS_RT | EFI_VARIABLE_READ_ONLY, BS_RT
        states = [("SecureBoot", secure_boot, ro), ("SetupMode", setup_mode, ro),
                  ("AuditMode", audit_mode, ro if audit_mode or setup_mode else rw),
                  ("DeployedMode", deployed_mode, ro if audit_mode or deployed_mode or setup_mode else rw),
                  ("VendorKeys", 0, ro)]  # efi_set_secure_state(), then VendorKeys (always 0: no vendor keys)
        for name, value, attributes in states:
            ret = yield from self.set_variable_int(name, EFI_GLOBAL_VARIABLE, attributes, bytes([value]),
                                                   ro_check=False)
            if ret != S.SUCCESS:
                self.log("ERROR: Secure state transition failed")
                return ret
        self.secure_boot = bool(secure_boot)
        return S.SUCCESS

    def exit_boot_services(self) -> Firmware[None]:
        """efi_variables_boot_exit_notify(), and (mainline) the runtime copy of the RT variables."""
        comm, ret = self._setup_mm_hdr(0, MmFunction.EXIT_BOOT_SERVICE)
        if comm is not None:
            ret = yield from self._mm_communicate(comm)
        if ret != S.SUCCESS:
            self.log("Unable to notify the MM partition for ExitBootServices")
        if self.cfg.configuration == "mainline":
            ret = yield from self._collect_runtime_variables()
            if ret != S.SUCCESS:
                self.log("Can't populate EFI variables. No runtime variables will be available")
        self.exited_boot_services = True

    def _collect_runtime_variables(self) -> Firmware[int]:
        """efi_var_collect(..., EFI_VARIABLE_RUNTIME_ACCESS) into the runtime buffer (efi_var_buf_update())."""
        found: list[SnapVar] = []
        name, guid = "", uuid.UUID(int=0)
        while True:
            ret, _, next_name, next_guid = yield from self.get_next_variable_name_int(
                0x2_0000, name, guid)  # the rest of EFI_VAR_BUF_SIZE (128 KB)
            if ret == S.NOT_FOUND:
                break
            if ret != S.SUCCESS:
                return ret
            name, guid = next_name, next_guid
            ret, attr, _, data = yield from self.get_variable_int(name, guid, attributes=True, data_size=0x2_0000,
                                                                  data=True)
            if ret != S.SUCCESS:
                return ret
            if attr & 0x4:  # RUNTIME_ACCESS
                found.append(SnapVar(name=name, guid=guid, attr=attr, data=data))
        self.snapshot = found
        return S.SUCCESS

    # -- the runtime services the OS calls -----------------------------------------------------------

    def rt_get_variable(self, name: str, guid: uuid.UUID, *, attributes: bool, data_size: int, data: bool
                        ) -> Firmware[tuple[int, int | None, int, bytes | None]]:
        """GetVariable(): the RAM copy (mainline) or the SP (series); READ_ONLY is masked off."""
        if self.cfg.configuration == "mainline":
            result = self._get_variable_mem(name, guid, attributes, data_size, data)
        else:
            result = yield from self.get_variable_int(name, guid, attributes=attributes, data_size=data_size,
                                                      data=data)
        status, attr, size, value = result
        return status, (attr & ATTRIBUTE_MASK_UEFI if attr is not None else None), size, value

    def rt_get_next_variable_name(self, name_size: int, name: str, guid: uuid.UUID
                                  ) -> Firmware[tuple[int, int, str, uuid.UUID]]:
        if self.cfg.configuration == "mainline":
            return self._get_next_variable_name_mem(name_size, name, guid)
        return (yield from self.get_next_variable_name_int(name_size, name, guid))

    def rt_set_variable(self, name: str, guid: uuid.UUID, attributes: int, data: bytes) -> Firmware[int]:
        if self.cfg.configuration == "mainline":
            return S.UNSUPPORTED  # efi_set_variable_runtime()
        if attributes & ~ATTRIBUTE_MASK_UEFI:
            return S.INVALID_PARAMETER
        return (yield from self.set_variable_int(name, guid, attributes, data, ro_check=True))

    def rt_query_variable_info(self, attributes: int) -> Firmware[tuple[int, tuple[int, int, int] | None]]:
        if self.cfg.configuration == "mainline":
            return S.UNSUPPORTED, None  # efi_query_variable_info_runtime()
        return (yield from self.query_variable_info_int(attributes))

    # -- efi_var_mem.c: the runtime copy -------------------------------------------------------------

    def _get_variable_mem(self, name, guid, attributes, data_size, data):
        var = next((v for v in self.snapshot if v.name == name and v.guid == guid), None)
        if var is None or not var.attr & 0x4:
            return S.NOT_FOUND, None, data_size, None
        attr = var.attr if attributes else None
        if data_size < len(var.data):
            return S.BUFFER_TOO_SMALL, attr, len(var.data), None
        if not data:
            return S.INVALID_PARAMETER, attr, len(var.data), None
        return S.SUCCESS, attr, len(var.data), var.data

    def _get_next_variable_name_mem(self, name_size, name, guid):
        if len(name) >= name_size // 2:  # u16_strnlen(variable_name, len) == len: no terminator
            return S.INVALID_PARAMETER, name_size, name, guid
        if name:
            pos = next((i for i, v in enumerate(self.snapshot) if v.name == name and v.guid == guid), None)
            if pos is None:
                return S.INVALID_PARAMETER, name_size, name, guid
            rest = self.snapshot[pos + 1:]
        else:
            rest = self.snapshot
        for var in rest:
            needed = len(ucs2(var.name))
            if name_size < needed:
                return S.BUFFER_TOO_SMALL, needed, name, guid
            if var.attr & 0x4:
                return S.SUCCESS, needed, var.name, var.guid
        return S.NOT_FOUND, name_size, name, guid
