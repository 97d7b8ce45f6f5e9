"""Faults of the UEFI variable service at the platform level: the SPMC's RequestFault hook and the full storage.

Expected values come from the upstream code the model follows, restated here
rather than imported from the model:

- U-Boot drivers/firmware/arm-ffa/arm-ffa-uclass.c: ffa_to_std_errmap[]
  (through ffa_to_std_errno()) turns FFA_ERROR's w2 into an errno;
- U-Boot lib/efi_loader/efi_variable_tee.c: ffa_notify_mm_sp() turns the MM
  return code in x3 of the direct response into an errno, ffa_mm_communicate()
  turns either errno into an EFI status, efi_set_variable_int() stops at a
  failed get_property_int();
- Trusted Services components/service/uefi/smm_variable/backend/
  uefi_variable_store.c: psa_to_efi_storage_status(), store_variable_data(),
  store_overwrite(), store_append_write(), remove_variable_data(),
  select_delegate_store(), uefi_variable_store_query_variable_info() with
  space_used(), uefi_variable_store_init() (the capacities);
- Hafnium src/api.c api_ffa_msg_send_direct_req(): a partition that is not
  waiting is answered FFA_ERROR BUSY before anything else.
"""

from __future__ import annotations

import errno
import struct

import pytest

from lfafs.platform import Platform, uefi_setup
from lfafs.platform import mm_communicate as mm
from lfafs.platform.ffa import FfaError, FfaFn, fid32
from lfafs.platform.plat_lfa import PlatformError
from lfafs.platform.spmc import RequestFault, SpState
from lfafs.uefi import EFI_GLOBAL_VARIABLE
from lfafs.uefi import EfiStatus as S

from .ffa_rig import DIRECT_RESP_64, FFA_ERROR, access_payload, get, get_variable, names, put, ring, set_variable

NV_BS_RT, BS_RT, APPEND_WRITE = 0x7, 0x6, 0x40
DIRECT_REQ_32 = fid32(FfaFn.MSG_SEND_DIRECT_REQ)
DIRECT_RESP_32 = fid32(FfaFn.MSG_SEND_DIRECT_RESP)

# U-Boot arm-ffa-uclass.c ffa_to_std_errmap[], indexed by -w2 (enum ffa_abi_errcode: NOT_SUPPORTED = 1, ...)
UBOOT_FFA_ERRNO = {"NOT_SUPPORTED": -errno.EOPNOTSUPP, "INVALID_PARAMETERS": -errno.EINVAL,
                   "NO_MEMORY": -errno.ENOMEM, "BUSY": -errno.EBUSY, "INTERRUPTED": -errno.EINTR,
                   "DENIED": -errno.EACCES, "RETRY": -errno.EAGAIN, "ABORTED": -errno.ECANCELED}
# U-Boot efi_variable_tee.c ffa_notify_mm_sp(): MM_SUCCESS 0, MM_NOT_SUPPORTED -1, MM_INVALID_PARAMETER -2,
# MM_DENIED -3, MM_NO_MEMORY -5; any other value is -EACCES
UBOOT_MM_ERRNO = {0: 0, -1: -errno.EINVAL, -2: -errno.EPERM, -3: -errno.EACCES, -5: -errno.EBUSY}
# U-Boot efi_variable_tee.c ffa_mm_communicate(): the errno's EFI status; any other errno is ACCESS_DENIED
UBOOT_ERRNO_EFI = {-errno.EINVAL: S.DEVICE_ERROR, -errno.EPERM: S.INVALID_PARAMETER, -errno.EACCES: S.ACCESS_DENIED,
                   -errno.EBUSY: S.OUT_OF_RESOURCES}


def efi_status_of_ffa_error(name: str) -> int:
    return UBOOT_ERRNO_EFI.get(UBOOT_FFA_ERRNO[name], S.ACCESS_DENIED)


def efi_status_of_mm_return(code: int) -> int:
    return UBOOT_ERRNO_EFI.get(UBOOT_MM_ERRNO.get(code, -errno.EACCES), S.ACCESS_DENIED)


def arm(p: Platform, **fault) -> RequestFault:
    p.uefi.partition.fault = RequestFault(**fault)
    return p.uefi.partition.fault


def contents(p: Platform) -> tuple[list, dict]:
    """Every variable the SP's store holds, and the secure flash's objects."""
    return uefi_setup.variables(p), dict(p.uefi.sp.store.persistent.objects)


def put_get_variable(p: Platform, name: str = "BootOrder") -> bytes:
    """A GetVariable MM request in the shared buffer at offset 0, as U-Boot copies it there."""
    request = mm.header(mm.MmFunction.GET_VARIABLE, access_payload(name, bytes(16), attributes=0))
    put(p, request)
    return request


async def efi_calls(p: Platform) -> tuple[int, int, int]:
    """The statuses of GetVariable, SetVariable (an existing NV variable) and QueryVariableInfo."""
    got = (await get_variable(p, "BootOrder"))[0]
    sett = await set_variable(p, "Timeout", b"\x09\x00")
    query = (await p.uefi.runtime.query_variable_info(NV_BS_RT))[0]
    return got, sett, query


# -- ffa_error: the SPMC answers FFA_ERROR, the SP never runs ---------------------------------------------------


@pytest.mark.parametrize("error", list(FfaError), ids=lambda e: e.name)
async def test_an_ffa_error_fault_is_the_spmcs_answer_and_the_sp_never_sees_the_request(fvp, error):
    arm(fvp, ffa_error=error)
    request = put_get_variable(fvp)
    r = await ring(fvp)
    assert r.x0 == FFA_ERROR and r.x2 & 0xFFFF_FFFF == error & 0xFFFF_FFFF
    assert get(fvp, len(request)) == request  # no reply was written: MessageLength and ReturnStatus as sent
    assert fvp.uefi.partition.state == SpState.WAITING


@pytest.mark.parametrize("error", list(FfaError), ids=lambda e: e.name)
async def test_u_boot_turns_each_injected_ffa_error_into_the_efi_status_of_its_tables(fvp, error):
    expected = efi_status_of_ffa_error(error.name)
    before = contents(fvp)
    arm(fvp, ffa_error=error)
    assert await efi_calls(fvp) == (expected, expected, expected)
    assert contents(fvp) == before


# -- mm_return: the SP answers that MM code without touching its store ------------------------------------------


MM_CODES = [-1, -2, -3, -5, -4, 7]  # the four U-Boot names, then two it does not (its default branch)


@pytest.mark.parametrize("code", MM_CODES)
async def test_an_mm_return_fault_is_the_sps_direct_response_without_a_reply(fvp, code):
    arm(fvp, mm_return=code)
    request = put_get_variable(fvp)
    r = await ring(fvp)
    assert r.x0 == DIRECT_RESP_64 and mm.signed32(r.x3) == code
    assert get(fvp, len(request)) == request  # the SP did not handle the request
    assert fvp.uefi.partition.state == SpState.WAITING  # and is ready for the next


@pytest.mark.parametrize("code", MM_CODES)
async def test_u_boot_turns_each_injected_mm_return_into_the_efi_status_of_its_tables(fvp, code):
    expected = efi_status_of_mm_return(code)
    before = contents(fvp)
    arm(fvp, mm_return=code)
    assert await efi_calls(fvp) == (expected, expected, expected)
    assert contents(fvp) == before


# -- how a fault is consumed -------------------------------------------------------------------------------------


async def test_an_uncounted_fault_stays_until_cleared(fvp):
    uefi_setup.inject(fvp, "ffa-error", ffa_error="DENIED")
    for _ in range(5):
        assert (await get_variable(fvp, "BootOrder"))[0] == efi_status_of_ffa_error("DENIED")
    uefi_setup.clear(fvp)
    assert (await get_variable(fvp, "BootOrder"))[3] == b"\x01\x00\x00\x00"


@pytest.mark.parametrize("fault", [{"ffa_error": FfaError.DENIED}, {"mm_return": -3}], ids=["ffa_error", "mm_return"])
async def test_a_counted_fault_answers_exactly_that_many_direct_requests(fvp, fault):
    arm(fvp, remaining=2, **fault)
    replies = []
    for _ in range(4):
        put_get_variable(fvp)
        r = await ring(fvp)
        replies.append((r.x0, mm.signed32(r.x3)))
    injected = (FFA_ERROR, 0) if "ffa_error" in fault else (DIRECT_RESP_64, -3)
    assert replies == [injected, injected, (DIRECT_RESP_64, 0), (DIRECT_RESP_64, 0)]


async def test_a_count_is_of_direct_requests_not_of_efi_calls(fvp):
    # efi_set_variable_int() reads the variable's property first and stops when that fails,
    # so one spent request is a whole failed SetVariable that never sends SET_VARIABLE
    before = contents(fvp)
    uefi_setup.inject(fvp, "mm-error", mm_return="NO_MEMORY", count=1)
    assert await set_variable(fvp, "Timeout", b"\x09\x00") == efi_status_of_mm_return(-5)
    assert contents(fvp) == before
    assert await set_variable(fvp, "Timeout", b"\x09\x00") == S.SUCCESS
    assert (await get_variable(fvp, "Timeout"))[3] == b"\x09\x00"


async def test_a_request_the_spmc_refuses_for_another_reason_does_not_spend_the_fault(fvp):
    fault = arm(fvp, ffa_error=FfaError.DENIED, remaining=1)
    fvp.uefi.partition.state = SpState.CREATED  # between START and FINISH of a live activation
    put_get_variable(fvp)
    r = await ring(fvp)
    assert (r.x0, r.x2 & 0xFFFF_FFFF) == (FFA_ERROR, FfaError.BUSY & 0xFFFF_FFFF)  # Hafnium's own answer
    assert fault.remaining == 1
    fvp.uefi.partition.state = SpState.WAITING
    r = await ring(fvp)
    assert (r.x0, r.x2 & 0xFFFF_FFFF) == (FFA_ERROR, FfaError.DENIED & 0xFFFF_FFFF)
    assert fault.remaining == 0


async def test_a_32_bit_request_meets_an_ffa_error_fault_but_not_an_mm_fault(fvp):
    # the SPMC answers before any SP; Trusted Services answers a 32-bit request NOT_SUPPORTED (-1) itself
    fault = arm(fvp, ffa_error=FfaError.ABORTED, remaining=5)
    r = await ring(fvp, fid=DIRECT_REQ_32)
    assert (r.x0, r.x2 & 0xFFFF_FFFF, fault.remaining) == (FFA_ERROR, FfaError.ABORTED & 0xFFFF_FFFF, 4)
    fault = arm(fvp, mm_return=-5, remaining=5)
    r = await ring(fvp, fid=DIRECT_REQ_32)
    assert (r.x0, r.x3, fault.remaining) == (DIRECT_RESP_32, 0xFFFF_FFFF, 5)


async def test_a_reset_boots_an_sp_without_request_faults_but_the_full_storage_stays(fvp):
    # docs/efi.md: a platform reset clears all but the full storage, a property of the flash
    uefi_setup.inject(fvp, "busy")
    uefi_setup.inject(fvp, "storage-full")
    fvp.reset()
    assert fvp.uefi.partition.fault is None
    assert (await get_variable(fvp, "BootOrder"))[3] == b"\x01\x00\x00\x00"
    assert await set_variable(fvp, "LfafsNew", b"x") == S.OUT_OF_RESOURCES


def test_describe_is_readable_and_names_what_efi_fail_names():
    denied = RequestFault(ffa_error=FfaError.DENIED, remaining=3).describe()
    assert "ffa-error" in denied and "DENIED" in denied and "3" in denied
    assert "busy" in RequestFault(ffa_error=FfaError.BUSY).describe()
    mm_text = RequestFault(mm_return=-5).describe()
    assert "mm-error" in mm_text and "NO_MEMORY" in mm_text
    assert "-4" in RequestFault(mm_return=-4).describe()  # a code with no name shows its value
    assert "spent" in RequestFault(ffa_error=FfaError.DENIED, remaining=0).describe()
    for fault in (RequestFault(ffa_error=FfaError.DENIED), RequestFault(mm_return=-5, remaining=1)):
        assert "RequestFault(" not in fault.describe() and "<" not in fault.describe()


async def test_an_mm_error_fault_cannot_be_success(fvp):
    """U-Boot efi_variable_tee.c ffa_notify_mm_sp() takes MM SUCCESS as a handled request: not a fault."""
    with pytest.raises(PlatformError):
        uefi_setup.inject(fvp, "mm-error", mm_return="SUCCESS")


def test_a_fault_count_must_be_at_least_one(fvp):
    """As the LFA faults (faults.make_fault), a fault that would never act is refused."""
    with pytest.raises(PlatformError):
        uefi_setup.inject(fvp, "busy", count=0)


# -- storage full: the Protected Storage SP answers PSA_ERROR_INSUFFICIENT_STORAGE ------------------------------


async def test_storage_full_refuses_a_new_nv_variable_and_leaves_no_trace(fvp):
    store = fvp.uefi.sp.store
    before, listed = contents(fvp), await names(fvp)
    slots = sum(e is not None for e in store.index.slots)
    uefi_setup.inject(fvp, "storage-full")
    # store_overwrite() -> psa set: INSUFFICIENT_STORAGE; psa_to_efi_storage_status(): EFI_OUT_OF_RESOURCES
    assert await set_variable(fvp, "LfafsNew", b"\x2a") == S.OUT_OF_RESOURCES
    assert (await get_variable(fvp, "LfafsNew"))[0] == S.NOT_FOUND
    # store_variable_data() purges the index entry it synced first (purge_orphan_index_entries())
    assert (contents(fvp), await names(fvp)) == (before, listed)
    assert sum(e is not None for e in store.index.slots) == slots


@pytest.mark.parametrize(("attributes", "data"), [(NV_BS_RT, b"\x00\x00"), (NV_BS_RT | APPEND_WRITE, b"\x02\x00")],
                         ids=["overwrite", "append"])
async def test_storage_full_refuses_changing_an_nv_variable_and_keeps_its_data(fvp, attributes, data):
    before = contents(fvp)
    uefi_setup.inject(fvp, "storage-full")
    assert await set_variable(fvp, "BootOrder", data, attributes) == S.OUT_OF_RESOURCES
    assert contents(fvp) == before
    assert (await get_variable(fvp, "BootOrder"))[1:] == (NV_BS_RT, 4, b"\x01\x00\x00\x00")


async def test_storage_full_still_deletes(fvp):
    # uefi_variable_store_set_variable(): remove_variable_data() (a psa remove, which needs no space) comes
    # before the index sync, and its status is not even checked
    flash = fvp.uefi.sp.store.persistent
    timeout = uefi_setup.get(fvp, "Timeout", EFI_GLOBAL_VARIABLE).data
    before = dict(flash.objects)
    uefi_setup.inject(fvp, "storage-full")
    assert await set_variable(fvp, "Timeout", b"") == S.SUCCESS
    assert (await get_variable(fvp, "Timeout"))[0] == S.NOT_FOUND
    assert uefi_setup.get(fvp, "Timeout", EFI_GLOBAL_VARIABLE) is None
    gone = {uid: data for uid, data in before.items() if uid not in flash.objects}
    assert list(gone.values()) == [timeout]  # the data object itself left the flash, so its space is free


async def test_storage_full_takes_an_empty_append(fvp):
    # store_append_write() returns PSA_SUCCESS for data_length 0 before any storage call
    uefi_setup.inject(fvp, "storage-full")
    assert await set_variable(fvp, "BootOrder", b"", NV_BS_RT | APPEND_WRITE) == S.SUCCESS
    assert (await get_variable(fvp, "BootOrder"))[3] == b"\x01\x00\x00\x00"


async def test_storage_full_is_the_nv_store_only(fvp):
    # select_delegate_store(): a variable without NON_VOLATILE goes to the volatile store in SP memory
    uefi_setup.inject(fvp, "storage-full")
    assert await set_variable(fvp, "LfafsVolatile", b"\x2a", BS_RT) == S.SUCCESS
    assert (await get_variable(fvp, "LfafsVolatile"))[1:] == (BS_RT, 1, b"\x2a")


def test_storage_full_refuses_the_setup_menu_too(fvp):
    uefi_setup.inject(fvp, "storage-full")
    with pytest.raises(PlatformError, match="OUT_OF_RESOURCES"):
        uefi_setup.set_variable(fvp, "LfafsMenu", EFI_GLOBAL_VARIABLE, NV_BS_RT, b"\x01")


async def test_query_variable_info_counts_what_is_stored_whether_or_not_storage_is_full(fvp):
    max_variables = fvp.profile.uefi.max_variables
    max_size = fvp.profile.uefi.max_variable_size

    def expected(attributes: int) -> tuple[int, int, int]:
        # uefi_variable_store_init(): total_capacity = max_variable_size * max_variables per store;
        # query_variable_info(): Remaining = capacity - space_used(), the stored sizes of the set variables
        # whose NON_VOLATILE bit matches, from the index: the storage's own free space is never asked
        used = sum(len(v.data) for v in uefi_setup.variables(fvp) if v.attributes & 1 == attributes & 1)
        capacity = max_size * max_variables
        return capacity, max(capacity - used, 0), max_size

    async def query(attributes: int) -> tuple[int, int, int]:
        status, figures = await fvp.uefi.runtime.query_variable_info(attributes)
        assert status == S.SUCCESS
        return figures

    nv = await query(NV_BS_RT)
    assert nv == expected(NV_BS_RT)
    uefi_setup.inject(fvp, "storage-full")
    assert await query(NV_BS_RT) == nv
    assert await set_variable(fvp, "LfafsNew", bytes(100)) == S.OUT_OF_RESOURCES
    assert await query(NV_BS_RT) == nv  # a refused write uses nothing
    assert await set_variable(fvp, "BootOrder", b"") == S.SUCCESS
    assert await query(NV_BS_RT) == (nv[0], nv[1] + 4, nv[2]) == expected(NV_BS_RT)  # BootOrder's 4 bytes back
    volatile = await query(BS_RT)
    assert await set_variable(fvp, "LfafsVolatile", bytes(10), BS_RT) == S.SUCCESS
    assert await query(BS_RT) == (volatile[0], volatile[1] - 10, volatile[2]) == expected(BS_RT)


@pytest.mark.parametrize(("name", "attributes", "size"), [("LfafsBig", NV_BS_RT, 4097),
                                                          ("BootOrder", NV_BS_RT | APPEND_WRITE, 4093)],
                         ids=["overwrite", "append"])
async def test_storage_full_does_not_hide_the_size_limit(fvp, name, attributes, size):
    assert size + (4 if attributes & APPEND_WRITE else 0) > fvp.profile.uefi.max_variable_size
    assert size <= fvp.uefi.uboot.max_payload_size  # U-Boot passes it on to the SP
    assert await set_variable(fvp, name, bytes(size), attributes) == S.INVALID_PARAMETER  # not full: the limit
    uefi_setup.inject(fvp, "storage-full")
    assert await set_variable(fvp, name, bytes(size), attributes) == S.INVALID_PARAMETER


async def test_without_a_fault_the_sp_answers_in_the_buffer(fvp):
    # the control of the "no reply was written" checks above: an SP that handles the request rewrites
    # MessageLength and ReturnStatus (smm_variable_mm_service.c), so the buffer differs from the request
    request = put_get_variable(fvp)
    r = await ring(fvp)
    assert (r.x0, r.x3) == (DIRECT_RESP_64, 0)
    assert get(fvp, len(request)) != request
    assert struct.unpack_from("<Q", get(fvp, 40), 32)[0] == S.SUCCESS
