"""The MM communicate buffer at the SP: layout, sizes, and what malformed requests get.

Sources: Trusted Services v1.2.0 components/rpc/mm_communicate/endpoint/sp/
mm_communicate_call_ep.c (handle_mm_communicate()),
components/service/uefi/smm_variable/frontend/mm_communicate/
smm_variable_mm_service.c (smm_var_receive()),
components/service/uefi/smm_variable/provider/smm_variable_provider.c
(the handlers and get_payload_size_handler()),
components/service/common/provider/service_provider.c (an unknown
opcode); U-Boot lib/efi_loader/efi_variable_tee.c get_max_payload().
"""

from __future__ import annotations

import hashlib
import struct

import hypothesis.strategies as hs
import trio
from hypothesis import HealthCheck, given, settings

from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FfaFn, fid32
from lfafs.uefi import EfiStatus

from .ffa_rig import DIRECT_RESP_64, FFA_ERROR, access_payload, get, get_variable, mm_call, put, ring, uefi_platform

F = mm.MmFunction
MM_INVALID, MM_NOT_SUPPORTED, MM_DENIED, MM_NO_MEMORY = -2, -1, -3, -5


async def test_payload_size_is_the_buffer_minus_76_and_u_boot_keeps_2_bytes_less(fvp):
    code, status, body = await mm_call(fvp, F.GET_PAYLOAD_SIZE, bytes(8))
    assert (code, status, struct.unpack("<Q", body)[0]) == (0, 0, 0x8000 - 76)
    assert fvp.uefi.uboot.max_payload_size == 0x8000 - 78


async def test_payload_size_follows_the_buffer_and_the_offset():
    p = uefi_platform(mm_buffer_size=0x1000)
    assert struct.unpack("<Q", (await mm_call(p, F.GET_PAYLOAD_SIZE, bytes(8)))[2])[0] == 4096 - 76
    assert struct.unpack("<Q", (await mm_call(p, F.GET_PAYLOAD_SIZE, bytes(8), offset=0x100))[2])[0] \
        == 4096 - 76 - 0x100


async def test_a_header_beyond_the_buffer_is_invalid_parameter(fvp):
    r = await ring(fvp, 0x8000 - 23)
    assert (r.x0, mm.signed32(r.x3)) == (DIRECT_RESP_64, MM_INVALID)
    assert mm.signed32((await ring(fvp, (1 << 64) - 8)).x3) == MM_INVALID  # offset + 24 overflows


async def test_a_message_longer_than_the_buffer_is_invalid_parameter(fvp):
    for length in (0x8000, (1 << 64) - 1):
        put(fvp, mm.SMM_VARIABLE_GUID.bytes_le + struct.pack("<Q", length))
        assert mm.signed32((await ring(fvp, 0)).x3) == MM_INVALID


async def test_an_unknown_header_guid_is_not_supported(fvp):
    put(fvp, bytes(16) + struct.pack("<QQQ", 16, F.GET_PAYLOAD_SIZE, 0))
    assert mm.signed32((await ring(fvp, 0)).x3) == MM_NOT_SUPPORTED


async def test_a_message_shorter_than_the_variable_header_is_denied(fvp):
    put(fvp, mm.SMM_VARIABLE_GUID.bytes_le + struct.pack("<QQ", 8, F.GET_PAYLOAD_SIZE))
    assert mm.signed32((await ring(fvp, 0)).x3) == MM_DENIED
    assert struct.unpack("<Q", get(fvp, 8, 16))[0] == 0  # MessageLength rewritten to the reply's


async def test_an_unknown_function_is_invalid_parameter_with_status_0(fvp):
    for function in (F.READY_TO_BOOT, F.GET_STATISTICS, F.LOCK_VARIABLE, F.INIT_RUNTIME_VARIABLE_CACHE_CONTEXT, 99):
        put(fvp, mm.header(function, bytes(8)))
        put(fvp, struct.pack("<Q", 0xDEAD), 32)
        assert mm.signed32((await ring(fvp, 0)).x3) == MM_INVALID
        assert struct.unpack("<QQ", get(fvp, 16, 16)) == (16, function)
        assert struct.unpack("<Q", get(fvp, 8, 32))[0] == 0


async def test_the_function_number_is_read_as_32_bits(fvp):
    code, status, body = await mm_call(fvp, (1 << 32) | F.GET_PAYLOAD_SIZE, bytes(8))
    assert (code, struct.unpack("<Q", body)[0]) == (0, 0x8000 - 76)


async def test_a_message_length_with_u_boots_4_spare_bytes_is_accepted(fvp):
    for spare in (True, False):
        payload = access_payload(f"Spare{int(spare)}", b"\x01\x02", attributes=7, spare=spare)
        code, status, _ = await mm_call(fvp, F.SET_VARIABLE, payload)
        assert (code, status) == (0, EfiStatus.SUCCESS)
    payload = access_payload("Short", b"\x01\x02", attributes=7, spare=False)[:-1]  # one byte of data missing
    assert (await mm_call(fvp, F.SET_VARIABLE, payload))[1] == EfiStatus.INVALID_PARAMETER


async def test_a_name_size_beyond_the_message_or_without_nul_is_invalid(fvp):
    payload = access_payload("Name", data_size=4)
    bad_size = payload[:24] + struct.pack("<Q", 4000) + payload[32:]
    assert (await mm_call(fvp, F.GET_VARIABLE, bad_size))[1] == EfiStatus.INVALID_PARAMETER
    no_nul = payload[:36] + "Name".encode("utf-16-le") + b"x\0" + payload[46:]
    assert (await mm_call(fvp, F.GET_VARIABLE, no_nul))[1] == EfiStatus.INVALID_PARAMETER


async def test_a_reply_that_would_not_fit_is_no_memory():
    p = uefi_platform(mm_buffer_size=0x1000)
    # 56 bytes after the header: GetNextVariableName claims a big name buffer; the first name,
    # Boot0000 (18 bytes), makes a 24 + 18 + 16 = 58-byte reply
    payload = struct.pack("<16sQ", bytes(16), 4000) + b"\0\0"
    code, status, _ = await mm_call(p, F.GET_NEXT_VARIABLE_NAME, payload, offset=0x1000 - 24 - 56)
    assert (code, status) == (MM_NO_MEMORY, EfiStatus.SUCCESS)


async def test_get_variable_fills_size_attributes_and_data(fvp):
    code, status, body = await mm_call(fvp, F.GET_VARIABLE, access_payload("BootOrder", data_size=64))
    assert (code, status) == (0, EfiStatus.SUCCESS)
    _, size, name_size, attributes = mm.ACCESS.unpack_from(body)
    assert (size, attributes) == (4, 7) and body[36 + name_size:36 + name_size + 4] == b"\x01\x00\x00\x00"
    code, status, body = await mm_call(fvp, F.GET_VARIABLE, access_payload("BootOrder", data_size=1))
    assert status == EfiStatus.BUFFER_TOO_SMALL and mm.ACCESS.unpack_from(body)[1] == 4


def _flash_digest(p) -> str:
    return hashlib.sha256(repr(sorted(p.secure_flash.objects.items())).encode()).hexdigest()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=hs.one_of(hs.integers(0, 0x8100), hs.integers(0, (1 << 64) - 1)),
       function=hs.sampled_from([1, 2, 4, 5, 6, 7, 10, 11, 12, 0xFFFF_FFFF]),
       length=hs.one_of(hs.integers(0, 200), hs.integers(0, (1 << 64) - 1)),
       body=hs.binary(max_size=200))
def test_malformed_requests_get_an_answer_and_leave_the_nv_store_alone(offset, function, length, body):
    """No request without SET_VARIABLE or a property set changes the NV store, and every one is answered."""
    async def main():
        p = _fuzz_platform()
        before = _flash_digest(p)
        raw = mm.SMM_VARIABLE_GUID.bytes_le + struct.pack("<QQQ", length, function, 0) + body
        if offset < 0x8000:
            put(p, raw[:0x8000 - offset], offset)
        r = await ring(p, offset)
        assert r.x0 in (DIRECT_RESP_64, FFA_ERROR)
        r32 = await ring(p, offset, fid=fid32(FfaFn.MSG_SEND_DIRECT_REQ))
        assert r32.x3 == 0xFFFF_FFFF
        assert _flash_digest(p) == before
        status, attrs, size, data = await get_variable(p, "BootOrder")
        assert (status, attrs, data) == (EfiStatus.SUCCESS, 7, b"\x01\x00\x00\x00")
    trio.run(main)


_FUZZ = []


def _fuzz_platform():
    if not _FUZZ:
        _FUZZ.append(uefi_platform())
    return _FUZZ[0]
