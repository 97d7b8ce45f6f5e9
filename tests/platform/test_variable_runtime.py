"""The UEFI firmware (U-Boot) over FF-A: boot, the two configurations, MM calls per EFI call, limits, errors.

Sources: U-Boot lib/efi_loader/efi_variable_tee.c (ffa_mm_communicate(),
ffa_notify_mm_sp(), get_max_payload(), efi_get_variable_int(),
efi_set_variable_int(), efi_variables_boot_exit_notify()),
efi_var_common.c (efi_init_secure_state(), efi_get_variable_runtime()),
efi_runtime.c (efi_init_runtime_supported()), efi_setup.c; the "FF-A
runtime support" series for the runtime path.
"""

from __future__ import annotations

import struct
import uuid

import pytest

from lfafs.platform import Platform
from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FfaFn, NsMemory, fid32, fid64
from lfafs.platform.profile import ProfileError, profile_from_dict
from lfafs.platform.uboot import UBoot, UBootConfig, run_sync
from lfafs.platform.variable_store import AccessVariable
from lfafs.uefi import EFI_RT_PROPERTIES_TABLE, RT_PROPERTIES
from lfafs.uefi import EfiStatus as S

from .ffa_rig import direct_requests, get_variable, names, set_variable, uefi_platform

GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")


async def test_u_boot_creates_its_volatile_variables_read_only_in_setup_mode(fvp):
    for name, value in (("SecureBoot", b"\0"), ("SetupMode", b"\1"), ("AuditMode", b"\0"), ("DeployedMode", b"\0"),
                        ("VendorKeys", b"\0")):
        status, attributes, _, data = await get_variable(fvp, name)
        assert (status, attributes, data) == (S.SUCCESS, 0x6, value), name
        assert await set_variable(fvp, name, b"\1", 0x6) == S.WRITE_PROTECTED
    assert (await get_variable(fvp, "PlatformLang"))[1:] == (7, 6, b"en-US\0")


async def test_a_profile_with_secure_boot_boots_in_user_mode():
    p = uefi_platform(secure_boot=True)
    assert (await get_variable(p, "SecureBoot"))[3] == b"\1"
    assert (await get_variable(p, "SetupMode"))[3] == b"\0"
    assert (await get_variable(p, "PK"))[1] == 0x27


async def test_profile_variables_are_provisioned_once_and_survive_a_power_cycle(fvp):
    assert (await get_variable(fvp, "BootOrder"))[3] == b"\x01\x00\x00\x00"
    assert await set_variable(fvp, "BootOrder", b"\x00\x00") == S.SUCCESS
    assert await set_variable(fvp, "Scratch", b"x", 0x6) == S.SUCCESS
    fvp.reset()
    assert (await get_variable(fvp, "BootOrder"))[3] == b"\x00\x00"
    assert (await get_variable(fvp, "Scratch"))[0] == S.NOT_FOUND


async def test_the_series_advertises_set_and_query_and_mainline_does_not(fvp):
    version, length, mask = RT_PROPERTIES.unpack(fvp.uefi.system_table.table(EFI_RT_PROPERTIES_TABLE))
    assert mask == 0x21F0
    mainline = uefi_platform(configuration="mainline")
    assert RT_PROPERTIES.unpack(mainline.uefi.system_table.table(EFI_RT_PROPERTIES_TABLE))[2] == 0x1B0


async def test_mainline_answers_from_the_exit_boot_services_copy():
    p = uefi_platform(configuration="mainline")
    before = len(p.trace.records())
    assert (await get_variable(p, "BootOrder"))[3] == b"\x01\x00\x00\x00"
    assert direct_requests(p, before) == []  # never reaches the SP
    # a change the SP makes later is invisible to the OS
    raw = "BootOrder".encode("utf-16-le") + b"\0\0"
    p.uefi.sp.store.set_variable(AccessVariable(guid=GLOBAL.bytes_le, data_size=2, name_size=len(raw),
                                                attributes=7, name=raw, data=b"\x09\x00"))
    assert (await get_variable(p, "BootOrder"))[3] == b"\x01\x00\x00\x00"
    assert await set_variable(p, "BootOrder", b"\x00\x00") == S.UNSUPPORTED
    assert (await p.uefi.runtime.query_variable_info(7))[0] == S.UNSUPPORTED
    assert ("BootOrder", GLOBAL) in await names(p)


@pytest.mark.parametrize(("call", "functions"), [
    ("get", [mm.MmFunction.GET_VARIABLE]),
    ("get_attributes", [mm.MmFunction.GET_VARIABLE, mm.MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET]),
    ("get_next", [mm.MmFunction.GET_NEXT_VARIABLE_NAME]),
    ("set", [mm.MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET, mm.MmFunction.SET_VARIABLE]),
    ("set_read_only", [mm.MmFunction.VAR_CHECK_VARIABLE_PROPERTY_GET]),
    ("query", [mm.MmFunction.QUERY_VARIABLE_INFO]),
    ("query_no_attributes", []),
])
async def test_mm_calls_per_efi_call(fvp, call, functions):
    rt = fvp.uefi.runtime
    before = fvp.trace.last_seq
    if call.startswith("get"):
        if call == "get_next":
            await rt.get_next_variable_name(512, "", uuid.UUID(int=0))
        else:
            await rt.get_variable("BootOrder", GLOBAL, attributes=call == "get_attributes", data_size=0, data=False)
    elif call == "set":
        assert await set_variable(fvp, "BootOrder", b"\x00\x00") == S.SUCCESS
    elif call == "set_read_only":
        assert await set_variable(fvp, "SecureBoot", b"\x01", 6) == S.WRITE_PROTECTED
    else:
        status, _ = await rt.query_variable_info(0 if call == "query_no_attributes" else 7)
        assert status == (S.INVALID_PARAMETER if call == "query_no_attributes" else S.SUCCESS)
    seen = [r.decoded.split(": MM ")[1].split()[0] for r in direct_requests(fvp, before)]
    assert seen == [f.name for f in functions]


async def test_a_request_over_u_boots_payload_limit_is_refused_before_any_ffa_call():
    p = uefi_platform(mm_buffer_size=0x1000)
    limit = p.uefi.uboot.max_payload_size  # 4096 - 78
    name = "Big"  # 8 bytes of UCS-2 with its NUL
    before = p.trace.last_seq
    assert await set_variable(p, name, bytes(limit - 40 - 8 + 1)) == S.INVALID_PARAMETER
    assert direct_requests(p, before) == []
    assert await set_variable(p, name, bytes(limit - 40 - 8)) == S.SUCCESS


async def test_the_sp_still_refuses_data_over_4096_bytes(fvp):
    assert await set_variable(fvp, "Big", bytes(4097)) == S.INVALID_PARAMETER
    assert await set_variable(fvp, "Big", bytes(4096)) == S.SUCCESS


def _scripted(responses):
    """A U-Boot whose SMCs a script answers: FF-A probe and discovery succeed, the doorbell gets ``responses``."""
    mem = NsMemory(0x1000_0000, 0x3000)
    ub = UBoot(UBootConfig(shared_buf=0x1000_0000, shared_buf_size=0x1000, tx=0x1000_1000, rx=0x1000_2000,
                           rt_supported=0x21F0), mem)
    mem.write(0x1000_2000, struct.pack("<HHI", 0x8002, 1, 3))
    doorbell = iter(responses)

    def smc(x):
        fn = x[0] & 0xFF
        if fn == FfaFn.VERSION:
            return [0x10003] + [0] * 7
        if fn == FfaFn.PARTITION_INFO_GET:
            return [fid32(FfaFn.SUCCESS), 0, 1, 0, 0, 0, 0, 0]
        if fn == FfaFn.MSG_SEND_DIRECT_REQ:
            return next(doorbell)
        return [fid32(FfaFn.SUCCESS)] + [0] * 7
    ub.max_payload_size = 0x1000 - 78
    return ub, smc


def _resp(x3: int):
    return [fid64(FfaFn.MSG_SEND_DIRECT_RESP), 0x8002 << 16, 0, x3 & ((1 << 64) - 1), 0, 0, 0, 0]


def _error(code: int):
    return [fid32(FfaFn.ERROR), 0, code & 0xFFFF_FFFF, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("answer", "status"), [
    (_resp(-1), S.DEVICE_ERROR),  # MM NOT_SUPPORTED -> -EINVAL
    (_resp(-2), S.INVALID_PARAMETER),  # MM INVALID_PARAMETER -> -EPERM
    (_resp(-3), S.ACCESS_DENIED),  # MM DENIED -> -EACCES
    (_resp(-5), S.OUT_OF_RESOURCES),  # MM NO_MEMORY -> -EBUSY
    (_resp(-4), S.ACCESS_DENIED),  # any other MM code -> -EACCES
    (_error(-4), S.OUT_OF_RESOURCES),  # FFA BUSY (an SP being activated) -> -EBUSY
    (_error(-2), S.DEVICE_ERROR),  # FFA INVALID_PARAMETERS (a destroyed SP) -> -EINVAL
    (_error(-1), S.ACCESS_DENIED),  # NOT_SUPPORTED -> -EOPNOTSUPP
    (_error(-6), S.ACCESS_DENIED),  # DENIED -> -EACCES
    (_error(-7), S.ACCESS_DENIED),  # RETRY -> -EAGAIN: not retried
    (_error(-8), S.ACCESS_DENIED),  # ABORTED -> -ECANCELED
])
def test_ffa_and_mm_errors_become_efi_statuses_as_u_boot_maps_them(answer, status):
    ub, smc = _scripted([answer])
    got = run_sync(ub.get_variable_int("BootOrder", GLOBAL, attributes=False, data_size=4, data=True), smc)
    assert got[0] == status


def test_a_reply_longer_than_the_request_is_out_of_resources():
    ub, smc = _scripted([_resp(0)])

    def sp_claims_a_long_reply(x):
        if (x[0] & 0xFF) == FfaFn.MSG_SEND_DIRECT_REQ:
            ub.memory.write(0x1000_0010, struct.pack("<Q", 0x800))  # MessageLength of the reply
        return smc(x)
    got = run_sync(ub.get_variable_int("BootOrder", GLOBAL, attributes=False, data_size=4, data=True),
                   sp_claims_a_long_reply)
    assert got[0] == S.OUT_OF_RESOURCES


async def test_flash_state_carries_the_nv_store_and_restores_it_byte_for_byte(fvp):
    assert await set_variable(fvp, "Keep", b"\x01\x02\x03") == S.SUCCESS
    state, staged = fvp.flash_state(), fvp.staged_images()
    assert state["secure_flash"]["format"] == "lfafs-secure-flash-1"
    fresh = Platform.from_profile()
    fresh.restore_flash(state, staged)
    assert fresh.secure_flash.objects == fvp.secure_flash.objects
    assert (await get_variable(fresh, "Keep"))[3] == b"\x01\x02\x03"
    older = {k: v for k, v in state.items() if k != "secure_flash"}  # a state saved before UEFI existed
    fresh.restore_flash(older, staged)
    assert (await get_variable(fresh, "Keep"))[0] == S.NOT_FOUND
    assert (await get_variable(fresh, "BootOrder"))[0] == S.SUCCESS  # provisioned again


@pytest.mark.parametrize(("uefi", "field"), [
    ({"configuration": "edk2"}, "uefi.configuration"),
    ({"variable_sp": "rmm"}, "uefi.variable_sp"),
    ({"esrt": ["nope"]}, "uefi.esrt"),
    ({"variable": [{"name": "V", "u8": [1], "attributes": ["BS", "RT"]}]}, "uefi.variable[0].attributes"),
    ({"variable": [{"name": "V", "u8": [1], "text": "x"}]}, "uefi.variable[0]"),
    ({"colour": "blue"}, "uefi.colour"),
])
def test_a_bad_uefi_table_names_the_field(uefi, field):
    with pytest.raises(ProfileError) as e:
        profile_from_dict({"base": "fvp-den0147", "uefi": uefi}, "<t>")
    assert e.value.field == field


def test_configuration_none_has_no_efi_and_leaves_sp2_generic():
    p = uefi_platform(configuration="none")
    assert p.uefi is None and type(p.component("sp2").activator).__name__ == "SpActivator"


async def test_u_boot_passes_attribute_0x80_to_the_sp_and_refuses_bits_above_0xff_itself(fvp):
    """U-Boot's EFI_VARIABLE_MASK is 0xFF (efi_set_variable()); Trusted Services refuses 0x80 (check_capabilities())."""
    before = fvp.trace.last_seq
    assert await set_variable(fvp, "Enh", b"x", 0x87) == S.UNSUPPORTED
    assert [r.decoded.split(": MM ")[1].split()[0] for r in direct_requests(fvp, before)] == \
        ["VAR_CHECK_VARIABLE_PROPERTY_GET", "SET_VARIABLE"]
    before = fvp.trace.last_seq
    assert await set_variable(fvp, "Enh", b"x", 0x107) == S.INVALID_PARAMETER
    assert direct_requests(fvp, before) == []
