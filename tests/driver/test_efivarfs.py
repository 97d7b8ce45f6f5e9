"""efivarfs over the emulated firmware: files, names, immutability, writes, deletes, statfs, errors.

Sources: Linux fs/efivarfs/super.c (efivarfs_fill_super(), efivarfs_callback(),
efivarfs_statfs(), efivarfs_d_hash()), inode.c (efivarfs_valid_name(),
efivarfs_create(), efivarfs_unlink(), efivarfs_fileattr_set()), file.c
(efivarfs_file_read(), efivarfs_file_write(), efivarfs_file_release()),
vars.c (efivar_init(), efivar_entry_set_get_size(), efivar_entry_delete());
drivers/firmware/efi/vars.c (efivar_validate(), efivar_variable_is_removable());
drivers/firmware/efi/efi.c (efi_status_to_err()); the kernel selftest
tools/testing/selftests/efivarfs/efivarfs.sh (its file name lists).
"""

from __future__ import annotations

import errno
import os
import struct

import pytest

from lfafs.driver.image import DriverError
from lfafs.platform.variable_store import AccessVariable
from lfafs.uefi import ucs2

from .efi_rig import GLOBAL, boot, name, platform, read_all, write_once

TEST_GUID = "210be57c-9849-4fc7-a635-e6382d1aec27"  # the kernel selftest's vendor
ATTRS = struct.pack("<I", 7)


def errno_of(e: pytest.ExceptionInfo) -> int:
    return e.value.errno


async def test_a_file_is_the_attributes_then_the_data_and_its_size_counts_both():
    p, t = await boot()
    fs = t.efivarfs
    assert await read_all(fs, name("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"
    assert fs.stat(fs.lookup(name("BootOrder")))["st_size"] == 8
    assert await read_all(fs, name("SecureBoot")) == b"\x06\x00\x00\x00\x00"


async def test_names_carry_a_lower_case_guid_and_an_upper_case_one_finds_the_same_file():
    p, t = await boot()
    fs = t.efivarfs
    assert name("BootOrder") in fs.listdir()
    assert fs.lookup(name("BootOrder", GLOBAL.upper())) is fs.lookup(name("BootOrder"))
    with pytest.raises(DriverError) as e:
        fs.lookup(name("bootorder"))  # the name part is case-sensitive
    assert errno_of(e) == errno.ENOENT


@pytest.mark.parametrize("var", ["abc", "dump-type0-11-1-1362436005", "1234", "-"])
async def test_the_selftests_valid_names_can_be_created(var):
    p, t = await boot()
    assert await write_once(t.efivarfs, f"{var}-{TEST_GUID}", ATTRS + b"\0", create=True) == 5
    assert t.efivarfs.stat(t.efivarfs.lookup(f"{var}-{TEST_GUID}"))["st_size"] == 5


@pytest.mark.parametrize("fname", [
    "-1234-1234-1234-123456789abc", "foo", "foo-bar", "-foo-", "foo-barbazba-foob-foob-foob-foobarbazfoo",
    "foo-------------------------------------", "-12345678-1234-1234-1234-123456789abc",
    "a-12345678=1234-1234-1234-123456789abc", "a-12345678-1234=1234-1234-123456789abc",
    "a-12345678-1234-1234=1234-123456789abc", "a-12345678-1234-1234-1234=123456789abc",
    "1112345678-1234-1234-1234-123456789abc"])
async def test_the_selftests_invalid_names_are_einval_at_lookup_and_create(fname):
    p, t = await boot()
    for op in (lambda: t.efivarfs.lookup(fname), lambda: t.efivarfs.create(fname, 0o644, os.O_CREAT)):
        with pytest.raises(DriverError) as e:
            op()
        assert errno_of(e) == errno.EINVAL


async def test_the_random_seed_vendor_is_never_listed_and_cannot_be_created():
    seed = "1ce1e5bc-7ceb-42f2-81e5-8aadf180f57b"
    p = platform(variable=[{"name": "RandomSeed", "guid": seed, "data": "00112233"},
                           {"name": "BootOrder", "u16": [1]}])
    p, t = await boot(p)
    assert not any(seed in n for n in t.efivarfs.listdir())
    with pytest.raises(DriverError) as e:
        t.efivarfs.create(f"Seed-{seed}", 0o644, os.O_CREAT)
    assert errno_of(e) == errno.EPERM


async def test_a_variable_outside_the_allow_list_is_immutable_but_its_creator_may_write_it():
    p, t = await boot()
    fs = t.efivarfs
    for op in (lambda: fs.open(name("SecureBoot"), os.O_WRONLY), lambda: fs.open(name("SecureBoot"), os.O_TRUNC),
               lambda: fs.setattr(fs.lookup(name("SecureBoot")), size=0)):
        with pytest.raises(DriverError) as e:
            op()
        assert errno_of(e) == errno.EPERM
    with pytest.raises(DriverError) as e:
        await fs.unlink(name("SecureBoot"))
    assert errno_of(e) == errno.EPERM
    assert await write_once(fs, f"Mine-{TEST_GUID}", ATTRS + b"x", create=True) == 5
    assert fs.lookup(f"Mine-{TEST_GUID}").immutable
    assert not fs.lookup(name("BootOrder")).immutable and not fs.lookup(name("Boot0001")).immutable


async def test_getflags_shows_immutable_and_setflags_takes_only_that_bit_with_the_capability():
    p, t = await boot()
    fs = t.efivarfs
    inode = fs.lookup(name("SecureBoot"))
    assert fs.get_flags(inode) == 0x10 and fs.fsxattr_flags(inode) == 0x8
    for flags, cap, err in ((0x10 | 0x20, True, errno.EOPNOTSUPP), (0, False, errno.EPERM)):
        with pytest.raises(DriverError) as e:
            fs.set_flags(inode, flags, cap_linux_immutable=cap)
        assert errno_of(e) == err
    fs.set_flags(inode, 0)
    assert fs.get_flags(inode) == 0


async def test_a_short_write_or_attribute_0x80_is_einval_before_any_firmware_call():
    p, t = await boot()
    fs, calls = t.efivarfs, t.efivarfs.rt.call_count
    for data in (b"\x07\0\0", struct.pack("<I", 0x87) + b"x"):
        with pytest.raises(DriverError) as e:
            await write_once(fs, name("BootOrder"), data)
        assert errno_of(e) == errno.EINVAL
    assert fs.rt.calls_since(calls) == []


async def test_writing_only_the_attributes_deletes_and_deleting_again_is_eio():
    p, t = await boot()
    fs = t.efivarfs
    f = fs.open(name("BootOrder"), os.O_WRONLY)
    assert await fs.write(f, ATTRS) == 4
    with pytest.raises(DriverError) as e:
        await fs.write(f, ATTRS)
    assert errno_of(e) == errno.EIO  # NOT_FOUND from SetVariable -> -ENOENT -> EIO
    fs.release(f)
    assert name("BootOrder") not in fs.listdir()


async def test_a_failing_unlink_is_einval_and_unlink_of_an_uncommitted_file_succeeds():
    p, t = await boot(secure_boot=True)
    fs = t.efivarfs
    fs.set_flags(fs.lookup(name("KEK")), 0)
    with pytest.raises(DriverError) as e:
        await fs.unlink(name("KEK"))  # SECURITY_VIOLATION: an authenticated variable
    assert errno_of(e) == errno.EINVAL
    f = fs.create(f"Never-{TEST_GUID}", 0o644, os.O_CREAT)
    fs.release(f)
    fs.set_flags(f.inode, 0)
    await fs.unlink(f"Never-{TEST_GUID}")  # NOT_FOUND counts as deleted


@pytest.mark.parametrize(("var", "data"), [
    ("BootOrder", b"\x01\x00\x02"), ("BootNext", b"\x01\x00\x00"), ("Timeout", b"\x05"),
    ("Boot0001", b"\x01\x00\x00\x00\x04\x00d\x00\x00\x00\x7f\xff"),  # device path shorter than a node
    ("Boot0001", b"\x01\x00\x00\x00\x04\x00d\x00\x00\x00\x04\x04\x04\x00"),  # no End-Entire node
    ("Boot00010", b"\x01\x00\x00\x00\x04\x00d\x00\x00\x00\x7f\xff\x04\x00"),  # four hex digits, then more
    ("Lang", b"en\xff\x00"), ("PlatformLang", b"en-US"), ("ConOut", b"\x01\x02\x04\x00")])
async def test_format_checks_fail_with_einval_and_no_firmware_call(var, data):
    p, t = await boot()
    fs = t.efivarfs
    calls = fs.rt.call_count
    with pytest.raises(DriverError) as e:
        await write_once(fs, name(var), ATTRS + data, create=name(var) not in fs.listdir())
    assert errno_of(e) == errno.EINVAL
    assert fs.rt.calls_since(calls) == []


async def test_well_formed_boot_variables_pass_the_checks():
    p, t = await boot()
    fs = t.efivarfs
    option = b"\x01\x00\x00\x00\x04\x00" + "d".encode("utf-16-le") + b"\0\0" + b"\x7f\xff\x04\x00"
    assert await write_once(fs, name("Boot0007"), ATTRS + option, create=True) == 4 + len(option)
    assert await write_once(fs, name("BootNext"), ATTRS + b"\x07\x00", create=True) == 6
    assert await write_once(fs, name("OsIndications"), ATTRS + b"\x01", create=True) == 5  # no check


@pytest.mark.parametrize(("abi", "size"), [("v6.14", 8), ("v6.13", 0)])
async def test_truncation_is_accepted_and_v6_14_keeps_the_size(abi, size):
    p, t = await boot(abi=abi)
    fs = t.efivarfs
    f = fs.open(name("BootOrder"), os.O_WRONLY | os.O_TRUNC)
    fs.release(f)
    assert fs.stat(fs.lookup(name("BootOrder")))["st_size"] == size
    assert await read_all(fs, name("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"


@pytest.mark.parametrize(("abi", "after_close"), [("v6.13", True), ("v6.14-rc", False), ("v6.14", True)])
async def test_a_file_created_and_never_written_reads_eof_and_lives_by_the_kernel_build(abi, after_close):
    p, t = await boot(abi=abi)
    fs = t.efivarfs
    f = fs.create(f"Empty-{TEST_GUID}", 0o644, os.O_RDWR | os.O_CREAT)
    assert await fs.read(f, 100, 0) == b"" and fs.stat(f.inode)["st_size"] == 0
    fs.release(f)
    assert (f"Empty-{TEST_GUID}" in fs.listdir()) is after_close


@pytest.mark.parametrize(("abi", "open_size", "listed_while_open"), [
    ("v6.13", None, False), ("v6.14-rc", 0, True), ("v6.14", 1, True)])
async def test_a_deleting_write_removes_the_file_at_once_or_at_the_last_close(abi, open_size, listed_while_open):
    p, t = await boot(abi=abi)
    fs = t.efivarfs
    first, second = fs.open(name("BootOrder"), os.O_WRONLY), fs.open(name("BootOrder"), os.O_RDONLY)
    await fs.write(first, ATTRS)
    fs.release(first)
    assert (name("BootOrder") in fs.listdir()) is listed_while_open
    if open_size is not None:
        assert fs.stat(second.inode)["st_size"] == open_size
    fs.release(second)
    assert name("BootOrder") not in fs.listdir()


@pytest.mark.parametrize(("abi", "stays"), [("v6.13", True), ("v6.14-rc", False), ("v6.14", True)])
async def test_a_failed_first_write_leaves_the_file_as_the_kernel_build_says(abi, stays):
    p, t = await boot(abi=abi)
    fs = t.efivarfs
    f = fs.create(f"Fails-{TEST_GUID}", 0o644, os.O_WRONLY | os.O_CREAT)
    with pytest.raises(DriverError) as e:
        await fs.write(f, struct.pack("<I", 0x5) + b"x")  # runtime access without boot-service access
    assert errno_of(e) == errno.EINVAL
    fs.release(f)
    assert (f"Fails-{TEST_GUID}" in fs.listdir()) is stays


def _firmware_set(p, var: str, data: bytes, attributes: int = 7) -> None:
    """A change made by firmware (another OS, a capsule...) behind Linux's back, straight in the SP."""
    raw = ucs2(var)
    p.uefi.sp.store.set_variable(AccessVariable(guid=bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c"),
                                                data_size=len(data), name_size=len(raw), attributes=attributes,
                                                name=raw, data=data))


async def test_every_read_asks_firmware_but_the_listing_is_the_mount_time_snapshot():
    p, t = await boot()
    fs = t.efivarfs
    _firmware_set(p, "BootOrder", b"\x09\x00")
    assert await read_all(fs, name("BootOrder")) == b"\x07\x00\x00\x00\x09\x00"
    assert fs.stat(fs.lookup(name("BootOrder")))["st_size"] == 8  # not refreshed behind the kernel
    _firmware_set(p, "Fresh", b"\x01")
    assert name("Fresh") not in fs.listdir()
    _firmware_set(p, "Timeout", b"", 0)  # firmware deletes it
    assert name("Timeout") in fs.listdir() and await read_all(fs, name("Timeout")) == b""


async def test_statfs_reports_query_variable_info_in_bytes():
    p, t = await boot()
    st = await t.efivarfs.statfs()
    total, remaining, _ = p.uefi.sp.store.query_variable_info(7)
    assert st == {"f_type": 0xDE5E81E4, "f_bsize": 1, "f_frsize": 1, "f_blocks": total, "f_bfree": remaining,
                  "f_bavail": remaining, "f_files": 0, "f_ffree": 0, "f_namemax": 255}
    assert total == 35 * 4096


async def test_mainline_u_boot_gives_a_read_only_snapshot_with_empty_statfs():
    p, t = await boot(configuration="mainline")
    fs = t.efivarfs
    assert fs.read_only
    _firmware_set(p, "BootOrder", b"\x09\x00")
    assert await read_all(fs, name("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"
    for op in (lambda: fs.open(name("BootOrder"), os.O_WRONLY), lambda: fs.create(f"X-{TEST_GUID}", 0o644, 0),
               lambda: fs.set_flags(fs.lookup(name("BootOrder")), 0)):
        with pytest.raises(DriverError) as e:
            op()
        assert errno_of(e) == errno.EROFS
    with pytest.raises(DriverError) as e:
        await fs.unlink(name("BootOrder"))
    assert errno_of(e) == errno.EROFS
    st = await fs.statfs()
    assert (st["f_blocks"], st["f_bfree"]) == (0, 0)


async def test_reads_by_other_users_are_rate_limited_after_100_a_second(autojump_clock):
    import trio
    p, t = await boot()
    fs = t.efivarfs
    f = fs.open(name("BootOrder"), os.O_RDONLY)
    start = trio.current_time()
    for _ in range(100):
        await fs.read(f, 16, 0, uid=1000)
    assert trio.current_time() == start
    await fs.read(f, 16, 0, uid=1000)
    assert trio.current_time() - start >= 1.0  # slept in 50 ms steps until the window passed
    root_start = trio.current_time()
    for _ in range(200):
        await fs.read(f, 16, 0, uid=0)
    assert trio.current_time() == root_start


async def test_secure_boot_variables_are_immutable_and_after_chattr_a_write_is_erofs():
    p, t = await boot()
    fs = t.efivarfs
    for var in ("SecureBoot", "SetupMode", "AuditMode", "DeployedMode"):
        inode = fs.lookup(name(var))
        assert inode.immutable
        fs.set_flags(inode, 0)
        with pytest.raises(DriverError) as e:
            await write_once(fs, name(var), struct.pack("<I", 6) + b"\x01")
        assert errno_of(e) == errno.EROFS  # U-Boot: EFI_WRITE_PROTECTED


@pytest.mark.parametrize(("var", "data", "err"), [
    ("BootOrder", struct.pack("<I", 3) + b"\x01\x00", errno.EINVAL),  # other attributes than stored
    ("New", struct.pack("<I", 0x17) + b"x", errno.EINVAL),  # AUTHENTICATED_WRITE_ACCESS: UNSUPPORTED
    ("New", ATTRS + bytes(4097), errno.EINVAL),  # over the SP's 4096 bytes
    ("New", struct.pack("<I", 0x27) + b"no descriptor", errno.EACCES),  # SECURITY_VIOLATION
])
async def test_firmware_refusals_come_back_as_the_kernel_maps_them(var, data, err):
    p, t = await boot()
    fs = t.efivarfs
    with pytest.raises(DriverError) as e:
        await write_once(fs, name(var), data, create=name(var) not in fs.listdir())
    assert errno_of(e) == err


async def test_a_full_store_is_enospc():
    p, t = await boot(max_variables=16)
    fs = t.efivarfs
    used = sum(1 for e in p.uefi.sp.store.index.slots if e is not None)
    for i in range(16 - used):
        await write_once(fs, name(f"Fill{i}", TEST_GUID), ATTRS + b"x", create=True)
    with pytest.raises(DriverError) as e:
        await write_once(fs, name("OneMore", TEST_GUID), ATTRS + b"x", create=True)
    assert errno_of(e) == errno.ENOSPC


async def test_runtime_calls_per_efivarfs_operation():
    p = platform()
    before = p.trace.last_seq
    p, t = await boot(p)
    fs = t.efivarfs
    n = len(fs.listdir())
    calls = fs.rt.calls_since(0)
    assert calls.count("GetNextVariableName") == n + 1 and calls.count("GetVariable") == n
    for op, expected in (
            (lambda: read_all(fs, name("BootOrder")), ["GetVariable", "GetVariable"]),
            (lambda: write_once(fs, name("BootOrder"), ATTRS + b"\x00\x00"), ["SetVariable", "GetVariable"]),
            (lambda: fs.unlink(name("BootOrder")), ["SetVariable"])):
        mark = fs.rt.call_count
        await op()
        assert fs.rt.calls_since(mark) == expected
    assert p.trace.last_seq > before


_OPS = ["create", "write", "unlink", "chattr", "truncate", "read"]


def test_misuse_from_linux_gets_errno_answers_and_leaves_the_nv_store_consistent():
    """Random efivarfs calls: each succeeds or fails with an errno; a store reloaded from NV agrees with the SP."""
    import hypothesis.strategies as hs
    import trio
    from hypothesis import HealthCheck, given, settings

    from lfafs.platform.variable_store import SecureStorage, UefiVariableStore

    names = hs.sampled_from([name("BootOrder"), name("Boot0001"), name("BootNext"), name("SecureBoot"),
                             f"T-{TEST_GUID}", f"Long{'x' * 70}-{TEST_GUID}", "bad-name", f"U-{TEST_GUID.upper()}"])
    step = hs.tuples(hs.sampled_from(_OPS), names, hs.integers(0, 0x1FF), hs.binary(max_size=40))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=hs.lists(step, max_size=12))
    def run(steps):
        async def main():
            p, t = await boot()
            fs = t.efivarfs
            for op, fname, attributes, data in steps:
                try:
                    if op == "create":
                        fs.release(fs.create(fname, 0o644, os.O_CREAT | os.O_WRONLY))
                    elif op == "write":
                        await write_once(fs, fname, struct.pack("<I", attributes) + data)
                    elif op == "unlink":
                        await fs.unlink(fname)
                    elif op == "chattr":
                        fs.set_flags(fs.lookup(fname), attributes & 0x30)
                    elif op == "truncate":
                        fs.setattr(fs.lookup(fname), size=0)
                    else:
                        await read_all(fs, fname, uid=attributes & 1)
                except DriverError as e:
                    assert e.errno in (errno.EINVAL, errno.ENOENT, errno.EPERM, errno.EIO, errno.EEXIST,
                                       errno.EOPNOTSUPP, errno.ENOSPC, errno.EACCES, errno.EROFS)
            live = p.uefi.sp.store
            again = UefiVariableStore(live.index.max_variables, SecureStorage(dict(p.secure_flash.objects)),
                                      SecureStorage())
            for e in again.index.slots:
                if e is not None and e.is_variable_set:
                    assert p.secure_flash.objects[e.uid] == live.persistent.get(e.uid)
        trio.run(main)

    run()
