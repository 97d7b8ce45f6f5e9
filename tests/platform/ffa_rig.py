"""Speaking FF-A and MM to the platform as a Normal-world endpoint would, for the platform tests."""

from __future__ import annotations

import struct
import uuid

from lfafs.platform import Platform
from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FfaFn, fid32, fid64
from lfafs.platform.profile import profile_from_dict
from lfafs.uefi import EFI_GLOBAL_VARIABLE, EfiStatus, guid_bytes, ucs2

VAR_SP = 0x8002  # sp2, TF-A's FFA_ID_SP2
DIRECT_REQ_64 = fid64(FfaFn.MSG_SEND_DIRECT_REQ)
DIRECT_RESP_64 = fid64(FfaFn.MSG_SEND_DIRECT_RESP)
FFA_ERROR = fid32(FfaFn.ERROR)
FFA_SUCCESS = fid32(FfaFn.SUCCESS)


SP2 = {"name": "sp2", "guid": "c3ff2127-7e41-a9f8-05af-24a1afa33474", "activator": "sp", "version": "1.0"}


def uefi_platform(cpus: int | None = None, sp2_latency: float = 0.0, **uefi) -> Platform:
    """The default profile with [uefi] fields changed, and sp2's activation taking ``sp2_latency`` seconds."""
    data = {"base": "fvp-den0147", "uefi": uefi}
    if sp2_latency:
        data["component"] = [{**SP2, "latency": {"activate": sp2_latency}}]
    return Platform(profile_from_dict(data, "<uefi test>"), cpus=cpus)


def buf(p: Platform) -> int:
    return p.uefi.spec.mm_buffer


def put(p: Platform, data: bytes, offset: int = 0) -> None:
    p.uefi.memory.write(buf(p) + offset, data)


def get(p: Platform, n: int, offset: int = 0) -> bytes:
    return p.uefi.memory.read(buf(p) + offset, n)


async def ring(p: Platform, x3: int = 0, *, cpu: int = 0, fid: int = DIRECT_REQ_64, x1: int | None = None,
               x2: int = 0):
    """FFA_MSG_SEND_DIRECT_REQ to the variable SP with x3 (the MM header's offset)."""
    return await p.smc8(fid, VAR_SP if x1 is None else x1, x2, x3, cpu=cpu)


def access_payload(name: str, data: bytes = b"", *, attributes: int = 0, data_size: int | None = None,
                   guid: uuid.UUID = EFI_GLOBAL_VARIABLE, spare: bool = True) -> bytes:
    raw = ucs2(name)
    head = mm.ACCESS.pack(guid_bytes(guid), len(data) if data_size is None else data_size, len(raw), attributes)
    return head + raw + data + (b"\0" * 4 if spare else b"")


async def mm_call(p: Platform, function: int, payload: bytes, offset: int = 0) -> tuple[int, int, bytes]:
    """One MM request at ``offset``: (MM return code, EFI ReturnStatus, reply payload)."""
    put(p, mm.header(function, payload), offset)
    r = await ring(p, offset)
    assert r.x0 == DIRECT_RESP_64, hex(r.x0)
    code = mm.signed32(r.x3)
    length = struct.unpack("<Q", get(p, 8, offset + 16))[0]
    status = struct.unpack("<Q", get(p, 8, offset + 32))[0]
    body = get(p, max(0, min(length, 0x8000) - 16), offset + 40)
    return code, status, body


async def get_variable(p: Platform, name: str, guid: uuid.UUID = EFI_GLOBAL_VARIABLE, *, attributes: bool = True):
    return await p.uefi.runtime.get_variable(name, guid, attributes=attributes, data_size=4096)


async def set_variable(p: Platform, name: str, data: bytes, attributes: int = 7,
                       guid: uuid.UUID = EFI_GLOBAL_VARIABLE) -> int:
    return await p.uefi.runtime.set_variable(name, guid, attributes, data)


async def names(p: Platform) -> list[tuple[str, uuid.UUID]]:
    """Every variable GetNextVariableName walks to, in its order."""
    out, name, guid = [], "", uuid.UUID(int=0)
    while True:
        status, _, name, guid = await p.uefi.runtime.get_next_variable_name(1024, name, guid)
        if status != EfiStatus.SUCCESS:
            return out
        out.append((name, guid))


def direct_requests(p: Platform, since: int = 0) -> list:
    return [r for r in p.trace.records(since) if r.name == "FFA_MSG_SEND_DIRECT_REQ_64"]
