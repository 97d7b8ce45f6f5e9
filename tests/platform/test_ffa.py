"""FF-A as the Normal world sees it through the SPMD: ids, registers, discovery, direct messages, errors.

Sources: TF-A include/services/ffa_svc.h; Hafnium src/api.c
(api_ffa_partition_info_get(), api_ffa_msg_send_direct_req()); U-Boot
drivers/firmware/arm-ffa/arm-ffa-uclass.c (the client at boot); Trusted
Services deployments/smm-gateway/env/commonsp/smm_gateway_sp.c (the SP's
answer to a 32-bit request).
"""

from __future__ import annotations

import struct

from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FFA_VERSION_1_0, FfaError, FfaFn, fid32, fid64, uuid_words
from lfafs.uefi import EfiStatus

from .ffa_rig import DIRECT_RESP_64, FFA_ERROR, FFA_SUCCESS, VAR_SP, mm_call, ring


def err(r) -> str:
    assert r.x0 == FFA_ERROR, hex(r.x0)
    return FfaError.name_of(r.x2)


async def test_version_answers_the_spmc_version(fvp):
    r = await fvp.smc8(fid32(FfaFn.VERSION), FFA_VERSION_1_0)
    assert r.x0 == 0x10003
    r = await fvp.smc8(fid32(FfaFn.VERSION), 1 << 31)  # bit 31 must be zero
    assert r.x0 == 0xFFFF_FFFF


async def test_id_get_is_endpoint_0_without_a_hypervisor(fvp):
    r = await fvp.smc8(fid32(FfaFn.ID_GET))
    assert (r.x0, r.x2) == (FFA_SUCCESS, 0)


async def test_features_of_rxtx_map_says_4k_buffers_and_unknown_calls_are_not_supported(fvp):
    r = await fvp.smc8(fid32(FfaFn.FEATURES), fid64(FfaFn.RXTX_MAP))
    assert (r.x0, r.x2) == (FFA_SUCCESS, 0)
    assert err(await fvp.smc8(fid32(FfaFn.FEATURES), fid64(FfaFn.MEM_SHARE))) == "NOT_SUPPORTED"


async def test_discovery_passes_the_mm_uuid_as_four_little_endian_words(fvp):
    """The MM SP's UUID reaches PARTITION_INFO_GET as w1..w4 0x33d532ed 0x0942e699 0x722dc09c 0xa798d9cd."""
    assert uuid_words(mm.SMM_VARIABLE_GUID) == (0x33D532ED, 0x0942E699, 0x722DC09C, 0xA798D9CD)
    r = await fvp.smc8(fid32(FfaFn.PARTITION_INFO_GET), 0x33D532ED, 0x0942E699, 0x722DC09C, 0xA798D9CD)
    assert (r.x0, r.x2) == (FFA_SUCCESS, 1)
    rx = fvp.uefi.uboot.cfg.rx
    assert struct.unpack("<HHI", fvp.uefi.memory.read(rx, 8)) == (VAR_SP, 1, 0x3)  # v1.0 descriptor
    assert (await fvp.smc8(fid32(FfaFn.RX_RELEASE))).x0 == FFA_SUCCESS


async def test_u_boot_discovers_the_sp_at_boot_and_takes_the_first_match(fvp):
    """U-Boot efi_variable_tee.c ffa_discover_mm_sp_id(): all partitions at probe, then the MM UUID."""
    boot = [(r.name, r.args) for r in fvp.trace.boot_records[:8]]
    assert [n for n, _ in boot] == ["FFA_VERSION", "FFA_ID_GET", "FFA_FEATURES", "FFA_RXTX_MAP_64",
                                     "FFA_PARTITION_INFO_GET", "FFA_RX_RELEASE", "FFA_PARTITION_INFO_GET",
                                     "FFA_RX_RELEASE"]
    assert boot[4][1] == (0, 0, 0, 0) and boot[6][1] == (0x33D532ED, 0x0942E699, 0x722DC09C, 0xA798D9CD)
    assert fvp.uefi.uboot.mm_sp_id == VAR_SP


async def test_partition_info_needs_the_rx_buffer_back(fvp):
    words = uuid_words(mm.SMM_VARIABLE_GUID)
    assert (await fvp.smc8(fid32(FfaFn.PARTITION_INFO_GET), *words)).x0 == FFA_SUCCESS
    assert err(await fvp.smc8(fid32(FfaFn.PARTITION_INFO_GET), *words)) == "BUSY"
    assert (await fvp.smc8(fid32(FfaFn.RX_RELEASE))).x0 == FFA_SUCCESS
    assert err(await fvp.smc8(fid32(FfaFn.RX_RELEASE))) == "DENIED"


async def test_partition_info_of_an_unknown_uuid_is_invalid_parameters(fvp):
    assert err(await fvp.smc8(fid32(FfaFn.PARTITION_INFO_GET), 1, 2, 3, 4)) == "INVALID_PARAMETERS"


async def test_mapping_rx_tx_twice_is_denied(fvp):
    cfg = fvp.uefi.uboot.cfg
    assert err(await fvp.smc8(fid64(FfaFn.RXTX_MAP), cfg.tx, cfg.rx, 1)) == "DENIED"


async def test_the_doorbell_is_a_64_bit_direct_request_and_the_reply_carries_the_mm_code_in_x3(fvp):
    """w1 = (0 << 16) | SP id, w2 = 0, x3 = offset; the reply swaps the ids, x3 = MM code, x4..x7 = 0."""
    mm_req = mm.header(mm.MmFunction.GET_PAYLOAD_SIZE, bytes(8))
    fvp.uefi.memory.write(fvp.uefi.spec.mm_buffer, mm_req)
    r = await ring(fvp, 0)
    assert r.x0 == DIRECT_RESP_64
    assert (r.x1, r.x2, r.x3, r.x4, r.x5, r.x6, r.x7) == (VAR_SP << 16, 0, 0, 0, 0, 0, 0)


async def test_a_32_bit_direct_request_gets_a_32_bit_not_supported(fvp):
    fvp.uefi.memory.write(fvp.uefi.spec.mm_buffer, mm.header(mm.MmFunction.GET_PAYLOAD_SIZE, bytes(8)))
    r = await ring(fvp, 0, fid=fid32(FfaFn.MSG_SEND_DIRECT_REQ))
    assert (r.x0, r.x1, r.x3) == (fid32(FfaFn.MSG_SEND_DIRECT_RESP), VAR_SP << 16, 0xFFFF_FFFF)


async def test_direct_requests_with_wrong_ids_or_flags_are_refused(fvp):
    assert err(await ring(fvp, 0, x1=(5 << 16) | VAR_SP)) == "INVALID_PARAMETERS"  # not the caller's id
    assert err(await ring(fvp, 0, x1=0x8009)) == "INVALID_PARAMETERS"  # no such partition
    assert err(await ring(fvp, 0, x2=1 << 31)) == "INVALID_PARAMETERS"  # a framework message from NS


async def test_ffa_from_another_world_and_unmodelled_calls_are_not_supported(fvp):
    assert err(await fvp.smc8(fid32(FfaFn.ID_GET), world="realm")) == "NOT_SUPPORTED"
    assert err(await fvp.smc8(fid64(FfaFn.MEM_SHARE))) == "NOT_SUPPORTED"
    assert err(await fvp.smc8(fid64(FfaFn.VERSION))) == "NOT_SUPPORTED"  # VERSION has no SMC64 form


async def test_each_exchange_is_in_the_smc_trace_with_its_decoded_mm_request_and_reply(fvp):
    code, status, body = await mm_call(fvp, mm.MmFunction.GET_PAYLOAD_SIZE, bytes(8))
    assert (code, status) == (0, EfiStatus.SUCCESS)
    rec = fvp.trace.records()[-1]
    assert rec.name == "FFA_MSG_SEND_DIRECT_REQ_64"
    assert "MM GET_PAYLOAD_SIZE" in rec.decoded and "payload 32692" in rec.decoded
    assert rec.to_dict()["decoded"] == rec.decoded


async def test_smc_with_four_arguments_reaches_ffa_too(fvp):
    r = await fvp.smc(fid32(FfaFn.ID_GET))
    assert (r.x0, r.x2) == (FFA_SUCCESS, 0)
    assert fvp.trace.records()[-1].name == "FFA_ID_GET"
