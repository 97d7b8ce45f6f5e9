"""efivarfs over the whole chain (Linux, U-Boot, the SPMC, the variable SP): behaviours composed across layers.

Each test names the behaviour and the upstream code it follows. Expected
values are restated from that code, never read back from the model:

- Linux fs/efivarfs/file.c efivarfs_file_read() and efivarfs_file_write(),
  fs/efivarfs/vars.c efivar_entry_size() (GetVariable with a NULL attributes
  pointer), efivar_entry_get() (with one), efivar_entry_set_get_size(),
  efivar_entry_delete(); fs/efivarfs/super.c efivarfs_statfs() (QueryVariableInfo
  only when EFI_RT_SUPPORTED_QUERY_VARIABLE_INFO is in the RT mask);
  drivers/firmware/efi/efi.c efi_status_to_err();
- U-Boot lib/efi_loader/efi_variable_tee.c ffa_notify_mm_sp() (MM return code
  to errno), ffa_mm_communicate() (errno to EFI status), get_max_payload() (the
  SP's payload size minus 2), efi_get_variable_int() (the property get only
  with an attributes pointer), efi_set_variable_int() (property get, then
  SET_VARIABLE; a payload over the limit is EFI_INVALID_PARAMETER before any call);
- Trusted Services components/service/uefi/smm_variable/backend/
  uefi_variable_store.c check_access_permitted() and the walk of
  variable_index.c variable_index_find_next() (a BS-only variable is hidden
  after ExitBootServices), authenticate_secure_boot_variable() (no PK: accepted;
  with PK: the signer must be enrolled, else EFI_SECURITY_VIOLATION);
- Hafnium src/api.c api_ffa_msg_send_direct_req() (an aborted SP with a restart
  action answers BUSY); Linux drivers/firmware/smccc/lfa_fw.c activate_fw_image()
  (v3 retries LFA_BUSY until its 10 s budget is spent, then the write fails).
"""

from __future__ import annotations

import errno
import os
import re
import struct
import uuid

import pytest
import trio

from lfafs.driver import LfaDriver
from lfafs.driver.image import DriverError
from lfafs.driver.lfa import platform_conduit
from lfafs.platform import variable_auth as auth
from lfafs.platform.ffa import FfaError
from lfafs.platform.spmc import RequestFault
from lfafs.platform.uefi_stack import KEK_CERT
from lfafs.smccc import Fid, s64

from .conftest import make_rig
from .efi_rig import SP2_GUID, boot, name, platform, read_all, staged, write_once

TEST_GUID = "210be57c-9849-4fc7-a635-e6382d1aec27"
DB_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"  # EFI_IMAGE_SECURITY_DATABASE_GUID
ATTRS = struct.pack("<I", 7)
BOOT_ORDER = b"\x07\x00\x00\x00\x01\x00\x00\x00"  # the profile's BootOrder 0001,0000 with NV|BS|RT
DIRECT_REQ_64 = 0xC400006F

# U-Boot ffa_notify_mm_sp(): MM code -> errno; ffa_mm_communicate(): errno -> EFI status; Linux
# efi_status_to_err(): EFI status -> errno. Composed: MM NOT_SUPPORTED (-1) -> -EINVAL -> DEVICE_ERROR -> EIO;
# INVALID_PARAMETER (-2) -> -EPERM -> INVALID_PARAMETER -> EINVAL; DENIED (-3) -> -EACCES -> ACCESS_DENIED ->
# EINVAL; NO_MEMORY (-5) -> -EBUSY -> OUT_OF_RESOURCES -> ENOSPC; any other code -> -EACCES -> EINVAL.
MM_CODE_ERRNO = [(-1, errno.EIO), (-2, errno.EINVAL), (-3, errno.EINVAL), (-5, errno.ENOSPC), (-4, errno.EINVAL)]


async def _errno_of(op) -> int:
    with pytest.raises(DriverError) as e:
        await op()
    return e.value.errno


def _mm_functions(p, since: int) -> list[str]:
    out = []
    for r in p.trace.records(since):
        if r.fid == DIRECT_REQ_64:
            m = re.search(r": MM (\w+)", r.decoded)
            assert m, r.decoded
            out.append(m.group(1))
    return out


# -- the end-to-end error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), MM_CODE_ERRNO)
async def test_an_mm_return_code_reaches_a_read_and_a_write_as_u_boot_and_linux_map_it(code, expected):
    """An MM return code in x3 of the SP's response, through U-Boot and efi_status_to_err(), on read and write."""
    p, t = await boot()
    fs = t.efivarfs
    p.uefi.partition.fault = RequestFault(mm_return=code)
    assert await _errno_of(lambda: read_all(fs, name("BootOrder"))) == expected
    assert await _errno_of(lambda: write_once(fs, name("BootOrder"), ATTRS + b"\x00\x00")) == expected
    p.uefi.partition.fault = None
    assert await read_all(fs, name("BootOrder")) == BOOT_ORDER  # nothing was changed


async def test_ffa_busy_is_enospc_on_a_read_as_well_as_on_a_write():
    """FFA_ERROR BUSY: U-Boot -EBUSY, EFI_OUT_OF_RESOURCES, ENOSPC; nobody retries, so reads fail too."""
    p, t = await boot()
    fs = t.efivarfs
    p.uefi.partition.fault = RequestFault(ffa_error=FfaError.BUSY)
    assert await _errno_of(lambda: read_all(fs, name("BootOrder"))) == errno.ENOSPC
    assert await _errno_of(lambda: write_once(fs, name("Timeout"), ATTRS + b"\x01\x00")) == errno.ENOSPC


async def test_a_write_over_u_boots_payload_limit_is_einval_before_any_ffa_call():
    """A 4 KiB buffer: the SP offers 4096 - 76, U-Boot keeps 2 less; payload = 40 + NameSize + DataSize."""
    p, t = await boot(mm_buffer_size=0x1000)
    fs = t.efivarfs
    limit = 0x1000 - 76 - 2
    name_size = len("Big".encode("utf-16-le")) + 2
    most = limit - 40 - name_size  # 3970 bytes, under the SP's own 4096
    before = p.trace.last_seq
    assert await _errno_of(lambda: write_once(fs, f"Big-{TEST_GUID}", ATTRS + bytes(most + 1), create=True)) \
        == errno.EINVAL
    assert [r for r in p.trace.records(before) if r.fid == DIRECT_REQ_64] == []
    assert await write_once(fs, f"Big2-{TEST_GUID}", ATTRS + bytes(limit - 40 - 10), create=True) \
        == 4 + limit - 40 - 10  # "Big2" is 10 bytes with its NUL: just fits


# -- calls per operation, composed ----------------------------------------------------------------------


async def test_each_efivarfs_operation_costs_the_mm_calls_of_its_efi_calls():
    """read: size probe (NULL attributes: GET_VARIABLE) + get (GET_VARIABLE, then the property get);
    write: SetVariable (property get, SET_VARIABLE) + size probe; unlink: SetVariable only."""
    p, t = await boot()
    fs = t.efivarfs
    for op, expected in (
            (lambda: read_all(fs, name("BootOrder")),
             ["GET_VARIABLE", "GET_VARIABLE", "VAR_CHECK_VARIABLE_PROPERTY_GET"]),
            (lambda: write_once(fs, name("BootOrder"), ATTRS + b"\x00\x00"),
             ["VAR_CHECK_VARIABLE_PROPERTY_GET", "SET_VARIABLE", "GET_VARIABLE"]),
            (lambda: fs.unlink(name("BootOrder")), ["VAR_CHECK_VARIABLE_PROPERTY_GET", "SET_VARIABLE"])):
        before = p.trace.last_seq
        await op()
        assert _mm_functions(p, before) == expected


# -- statfs without QueryVariableInfo ---------------------------------------------------------------------


async def test_without_query_variable_info_in_the_rt_mask_statfs_sizes_are_0_and_writes_still_work():
    """The series' mask without bit 0x2000: efivarfs_statfs() never calls it; SetVariable (0x40) keeps it writable."""
    p, t = await boot(rt_supported=0x21F0 & ~0x2000)
    fs = t.efivarfs
    mark = fs.rt.call_count
    st = await fs.statfs()
    assert (st["f_bsize"], st["f_blocks"], st["f_bfree"], st["f_bavail"], st["f_namemax"]) == (1, 0, 0, 0, 255)
    assert "QueryVariableInfo" not in fs.rt.calls_since(mark)
    assert not fs.read_only
    assert await write_once(fs, name("BootOrder"), ATTRS + b"\x00\x00") == 6


# -- after ExitBootServices ----------------------------------------------------------------------------------


async def test_a_boot_services_only_variable_is_not_listed_and_its_file_reads_eof():
    """NV|BS without RT: hidden from GetNextVariableName and GetVariable (NOT_FOUND) once boot services ended."""
    p = platform(variable=[{"name": "BootOnly", "guid": TEST_GUID, "attributes": ["NV", "BS"], "u8": [1]},
                           {"name": "BootOrder", "u16": [1, 0]}])
    p, t = await boot(p)
    fs = t.efivarfs
    assert f"BootOnly-{TEST_GUID}" not in fs.listdir()
    f = fs.create(f"BootOnly-{TEST_GUID}", 0o644, os.O_RDWR | os.O_CREAT)
    try:
        assert await fs.read(f, 64, 0) == b""
    finally:
        fs.release(f)


# -- authenticated variables ------------------------------------------------------------------------------


async def test_without_pk_a_well_formed_authenticated_write_is_accepted_and_the_header_stripped():
    """No PK: the signature is not checked; the file then holds the attributes and the bare payload."""
    p, t = await boot()
    fs = t.efivarfs
    attributes = 0x27  # TIME_BASED_AUTHENTICATED_WRITE_ACCESS | RT | BS | NV
    data = auth.authenticated_data("db", uuid.UUID(DB_GUID), attributes, b"entries", auth.efi_time(2026),
                                   b"anyone's certificate")
    fname = f"db-{DB_GUID}"
    assert await write_once(fs, fname, struct.pack("<I", attributes) + data, create=True) == 4 + len(data)
    assert await read_all(fs, fname) == struct.pack("<I", attributes) + b"entries"


async def test_with_pk_an_append_signed_by_an_unknown_key_is_eacces_and_by_kek_is_accepted():
    """With PK: db must be signed by PK or KEK; EFI_SECURITY_VIOLATION is EACCES (efi_status_to_err())."""
    p, t = await boot(secure_boot=True)
    fs = t.efivarfs
    fname = f"db-{DB_GUID}"
    fs.set_flags(fs.lookup(fname), 0)
    attributes = 0x67  # APPEND_WRITE | TIME_BASED_AUTHENTICATED_WRITE_ACCESS | RT | BS | NV, as fwupd writes db
    before = await read_all(fs, fname)
    forged = auth.authenticated_data("db", uuid.UUID(DB_GUID), attributes, b"more", auth.efi_time(2027),
                                     b"an unknown certificate")
    assert await _errno_of(lambda: write_once(fs, fname, struct.pack("<I", attributes) + forged)) == errno.EACCES
    assert await read_all(fs, fname) == before
    signed = auth.authenticated_data("db", uuid.UUID(DB_GUID), attributes, b"more", auth.efi_time(2027), KEK_CERT)
    assert await write_once(fs, fname, struct.pack("<I", attributes) + signed) == 4 + len(signed)
    assert (await read_all(fs, fname)).endswith(b"more")


# -- live activation ----------------------------------------------------------------------------------------



async def test_with_the_default_rendezvous_on_two_cpus_a_read_waits_out_the_whole_activation(nursery,
                                                                                              autojump_clock):
    """force_cpu_rendezvous = 1: stop_machine (kernel/stop_machine.c multi_cpu_stop()) holds every CPU until the
    round is over, so no EFI call runs inside the SP's window (drivers/firmware/smccc/lfa_fw.c activate_fw_image())."""
    p = platform(cpus=2, sp2_latency=1.0)
    p, t = await boot(p)
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    seen = {}
    async with trio.open_nursery() as n:
        async def activate():
            try:
                seen["activate"] = await rig.write(SP2_GUID, "activate")
            except DriverError as e:
                seen["activate"] = e.errno
            seen["activated_at"] = trio.current_time()
        n.start_soon(activate)
        await trio.sleep(0.5)
        seen["read"] = await read_all(t.efivarfs, name("BootOrder"))  # never ENOSPC
        seen["read_at"] = trio.current_time()
    assert seen["read"] == BOOT_ORDER
    assert seen["read_at"] >= 1.0  # it could only run once the round was over


async def test_an_sp_aborted_with_the_restart_action_answers_busy_so_later_access_is_enospc(nursery):
    """A FINISH failure with abort-action restart: Hafnium answers BUSY to the aborted SP; reads and writes ENOSPC."""
    p, t = await boot(sp_abort_action="restart")
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    p.inject("sp2", "boot", status="LFA_CRITICAL_ERROR", once=True)
    assert await _errno_of(lambda: rig.write(SP2_GUID, "activate")) == errno.ECANCELED
    assert await _errno_of(lambda: read_all(t.efivarfs, name("BootOrder"))) == errno.ENOSPC
    assert await _errno_of(lambda: write_once(t.efivarfs, name("Timeout"), ATTRS + b"\x01\x00")) == errno.ENOSPC


async def test_v3_gives_up_on_an_sp_busy_longer_than_its_10_second_budget(nursery, autojump_clock):
    """START meets an SP running a request for 15 s: LFA_BUSY at every attempt; v3 retries for 10 s, then fails."""
    p = platform(cpus=2, sp_latency=15.0)
    p, t = await boot(p)
    attempts: list[tuple[float, int]] = []

    async def smc(fid, *args, cpu=0):
        r = await p.smc(fid, *args, cpu=cpu)
        if fid == Fid.LFA_ACTIVATE:
            attempts.append((trio.current_time(), s64(r[0])))
        return r
    driver = LfaDriver(platform_conduit(p, smc=smc), abi="v3", notification=p.profile.notification)
    await driver.probe(nursery)
    p.stage("sp2", version=(2, 0))
    await driver.read(SP2_GUID, "activation_pending")
    await driver.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    seen = {}
    async with trio.open_nursery() as n:
        async def read():
            seen["read"] = await read_all(t.efivarfs, name("Timeout"))
        n.start_soon(read)
        await trio.sleep(0.5)
        seen["activate"] = await _errno_of(lambda: driver.write(SP2_GUID, "activate", b"1\n"))
    assert seen["activate"] == errno.ECANCELED
    assert {status for _, status in attempts} == {-2}  # LFA_BUSY: the SPMC answered START with RETRY
    assert 9.9 <= attempts[-1][0] - attempts[0][0] <= 10.1  # retried for the budget, then gave up
    assert seen["read"] == b"\x07\x00\x00\x00\x05\x00"  # the request that kept the SP busy completed
