"""U-Boot's FF-A MM client as the SPMC sees it: discovery, the doorbell's registers, the MM calls of a boot.

Each test names the behaviour and the upstream code it follows. Expected
values are restated from that code, not taken from the model:

- U-Boot drivers/firmware/arm-ffa/arm-ffa-uclass.c ffa_get_partitions_info_hdlr()
  (descriptors from the partition cache filled at probe, in its order) and
  ffa_msg_send_direct_req_hdlr() (SMC64 FFA_MSG_SEND_DIRECT_REQ, w1 =
  (endpoint id << 16) | destination, w2 = 0, x3..x7 = data0..data4);
- U-Boot lib/efi_loader/efi_variable_tee.c ffa_discover_mm_sp_id() (the MM
  SP's UUID string through uuid_str_to_le_bin(), then descs[0]),
  ffa_notify_mm_sp() (data0 = CONFIG_FFA_SHARED_MM_BUF_OFFSET, the rest 0),
  efi_init_variables() (GET_PAYLOAD_SIZE first), efi_set_variable_int()
  (property get, SET_VARIABLE, property set for EFI_VARIABLE_READ_ONLY) and
  efi_variables_boot_exit_notify() (EXIT_BOOT_SERVICE).
"""

from __future__ import annotations

import re
import struct
import uuid

from lfafs.platform.ffa import FfaFn, NsMemory
from lfafs.platform.uboot import UBoot, UBootConfig, run_sync

GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
PARTITION_INFO_GET_32 = 0x84000068  # FF-A 1.0: FFA_PARTITION_INFO_GET has an SMC32 form only
DIRECT_REQ_64 = 0xC400006F
DIRECT_RESP_64 = 0xC4000070
SUCCESS_32 = 0x84000061
# ed32d533-99e6-4209-9cc0-2d72cdd998a7 as U-Boot passes it: uuid_str_to_le_bin() of
# "33d532ed-e699-0942-c09c-a798d9cd722d", read as four little-endian words
MM_UUID_WORDS = (0x33D532ED, 0x0942E699, 0x722DC09C, 0xA798D9CD)

BUF, RX = 0x1000_0000, 0x1000_2000


def _scripted_uboot(partitions: list[int], *, endpoint_id: int = 0, offset: int = 0):
    """A U-Boot whose SMCs a script answers; (uboot, the SMCs it made as x0..x7 lists)."""
    mem = NsMemory(BUF, 0x3000)
    ub = UBoot(UBootConfig(shared_buf=BUF, shared_buf_size=0x1000, shared_buf_offset=offset, tx=0x1000_1000, rx=RX,
                           rt_supported=0x21F0), mem)
    ub.max_payload_size = 0x1000 - 78
    made: list[list[int]] = []

    def smc(x: list[int]) -> list[int]:
        made.append(list(x))
        fn = x[0] & 0xFF
        if fn == FfaFn.VERSION:
            return [0x10003] + [0] * 7
        if fn == FfaFn.ID_GET:
            return [SUCCESS_32, 0, endpoint_id, 0, 0, 0, 0, 0]
        if fn == FfaFn.PARTITION_INFO_GET:
            # FF-A 1.0 descriptors in the RX buffer: id, execution contexts, properties
            mem.write(RX, b"".join(struct.pack("<HHI", pid, 1, 3) for pid in partitions))
            return [SUCCESS_32, 0, len(partitions), 0, 0, 0, 0, 0]
        if fn == FfaFn.MSG_SEND_DIRECT_REQ:
            return [DIRECT_RESP_64, (x[1] & 0xFFFF) << 16, 0, 0, 0, 0, 0, 0]
        return [SUCCESS_32] + [0] * 7
    return ub, smc, made


def test_discovery_asks_partition_info_get_smc32_with_the_mm_uuid_and_takes_the_first_match():
    """Two partitions carry the MM UUID: U-Boot uses the first (ffa_discover_mm_sp_id(): descs[0].info.id)."""
    ub, smc, made = _scripted_uboot([0x8005, 0x8002])
    run_sync(ub.get_variable_int("BootOrder", GLOBAL, attributes=False, data_size=4, data=True), smc)
    queries = [x for x in made if x[0] == PARTITION_INFO_GET_32]
    assert [tuple(q[1:5]) for q in queries] == [(0, 0, 0, 0), MM_UUID_WORDS]  # probe (all), then the MM SP
    assert ub.mm_sp_id == 0x8005
    doorbells = [x for x in made if x[0] == DIRECT_REQ_64]
    assert doorbells and all(x[1] & 0xFFFF == 0x8005 for x in doorbells)


def test_the_doorbell_is_smc64_with_the_ids_in_w1_and_the_buffer_offset_in_x3_and_nothing_else():
    """ffa_notify_mm_sp(): x0 0xC400006F, w1 = (endpoint id << 16) | SP id, w2 = 0, x3 = the offset, x4..x7 = 0."""
    ub, smc, made = _scripted_uboot([0x8002], endpoint_id=0x0007, offset=0x40)
    run_sync(ub.get_variable_int("BootOrder", GLOBAL, attributes=False, data_size=4, data=True), smc)
    doorbells = [x for x in made if (x[0] & 0xFF) == FfaFn.MSG_SEND_DIRECT_REQ]
    assert doorbells == [[DIRECT_REQ_64, (0x0007 << 16) | 0x8002, 0, 0x40, 0, 0, 0, 0]]


async def test_u_boots_runtime_doorbell_on_the_platform_carries_the_same_registers(fvp):
    """The live platform's record of a runtime GetVariable: SMC64, w1 = (0 << 16) | 0x8002, w2 = 0, x3 = 0, x4 = 0."""
    before = fvp.trace.last_seq
    await fvp.uefi.runtime.get_variable("BootOrder", GLOBAL, attributes=False, data_size=16)
    rings = [r for r in fvp.trace.records(before) if r.fid == DIRECT_REQ_64]
    assert rings and all(r.args == (0x8002, 0, 0, 0) for r in rings)
    assert all(r.result[0] == DIRECT_RESP_64 and r.result[3] == 0 for r in rings)  # x3 of the reply: MM SUCCESS


def _mm_functions(records) -> list[str]:
    out = []
    for r in records:
        if r.fid == DIRECT_REQ_64:
            m = re.search(r": MM (\w+)", r.decoded)
            assert m, r.decoded
            out.append(m.group(1))
    return out


def test_a_boot_asks_the_payload_size_first_and_ends_with_exit_boot_services(fvp):
    """efi_init_variables() sends GET_PAYLOAD_SIZE before any variable call; ExitBootServices sends function 6."""
    functions = _mm_functions(fvp.trace.boot_records)
    assert functions[0] == "GET_PAYLOAD_SIZE" and functions.count("GET_PAYLOAD_SIZE") == 1
    assert functions[-1] == "EXIT_BOOT_SERVICE" and functions.count("EXIT_BOOT_SERVICE") == 1


def test_a_read_only_boot_variable_is_set_with_a_property_get_set_variable_and_property_set(fvp):
    """efi_set_variable_int() with EFI_VARIABLE_READ_ONLY (SecureBoot, efi_init_secure_state()): 10, 3, then 9."""
    records = [r for r in fvp.trace.boot_records
               if r.fid == DIRECT_REQ_64 and "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c" in r.decoded]
    assert _mm_functions(records)[-3:] == ["VAR_CHECK_VARIABLE_PROPERTY_GET", "SET_VARIABLE",
                                           "VAR_CHECK_VARIABLE_PROPERTY_SET"]
