"""efivarfs while the variable SP is live-activated through the Linux LFA driver.

Sources: Linux drivers/firmware/smccc/lfa_fw.c (force_cpu_rendezvous,
activate_fw_image(): v3 retries LFA_BUSY within its budget, v2 does not);
Hafnium src/api.c api_ffa_msg_send_direct_req() (BUSY while the SP is
being activated); U-Boot efi_variable_tee.c ffa_mm_communicate() (-EBUSY is
EFI_OUT_OF_RESOURCES); Linux efi.c efi_status_to_err() (ENOSPC).
"""

from __future__ import annotations

import errno
import os

import pytest
import trio

from lfafs.driver.image import DriverError
from lfafs.uefi import EFI_SYSTEM_RESOURCE_TABLE

from .conftest import make_rig
from .efi_rig import SP2_GUID, boot, name, platform, read_all, staged


async def test_with_force_cpu_rendezvous_0_a_read_during_the_activation_is_enospc(nursery, autojump_clock):
    p = platform(cpus=2, sp2_latency=1.0)
    p, t = await boot(p)
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    seen = {}
    async with trio.open_nursery() as n:
        async def activate():
            seen["activate"] = await rig.write(SP2_GUID, "activate")
        n.start_soon(activate)
        await trio.sleep(0.5)
        with pytest.raises(DriverError) as e:
            await read_all(t.efivarfs, name("BootOrder"))
        seen["read"] = e.value.errno
    assert seen == {"activate": 2, "read": errno.ENOSPC}
    assert await read_all(t.efivarfs, name("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"


async def test_with_the_default_rendezvous_no_read_overlaps_the_activation(nursery, autojump_clock):
    p = platform(cpus=1, sp2_latency=1.0)
    p, t = await boot(p)
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    seen = {}
    async with trio.open_nursery() as n:
        async def activate():
            seen["activate"] = await rig.write(SP2_GUID, "activate")
        n.start_soon(activate)
        await trio.sleep(0.5)
        seen["read"] = await read_all(t.efivarfs, name("BootOrder"))  # waits for the CPU, then reads
        seen["after"] = trio.current_time()
    assert seen["activate"] == 2 and seen["read"] == b"\x07\x00\x00\x00\x01\x00\x00\x00" and seen["after"] >= 1.0


@pytest.mark.parametrize(("abi", "outcome"), [("v3", 2), ("v2", errno.ECANCELED)])
async def test_an_sp_busy_at_start_is_retried_by_v3_and_fails_v2(nursery, autojump_clock, abi, outcome):
    p = platform(cpus=2, sp_latency=2.0)
    p, t = await boot(p)
    rig = await make_rig(nursery, abi=abi, platform=p)
    await staged(rig)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    seen = {}
    async with trio.open_nursery() as n:
        async def read():
            seen["read"] = await read_all(t.efivarfs, name("Timeout"))
        n.start_soon(read)
        await trio.sleep(0.5)
        try:
            seen["activate"] = await rig.write(SP2_GUID, "activate")
        except DriverError as e:
            seen["activate"] = e.errno
    assert seen["activate"] == outcome
    assert any("LFA_BUSY" in line or "successfully activated" in line for line in rig.driver.klog.messages())


async def test_a_failed_new_image_makes_later_access_eio(nursery):
    p, t = await boot()
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    p.inject("sp2", "boot", status="LFA_CRITICAL_ERROR", once=True)
    with pytest.raises(DriverError) as e:
        await rig.write(SP2_GUID, "activate")
    assert e.value.errno == errno.ECANCELED
    with pytest.raises(DriverError) as e:
        await read_all(t.efivarfs, name("BootOrder"))
    assert e.value.errno == errno.EIO


async def test_after_two_activations_the_version_changed_and_the_listing_and_esrt_did_not(nursery):
    p, t = await boot()
    rig = await make_rig(nursery, platform=p)
    listing, esrt = t.efivarfs.listdir(), p.uefi.system_table.table(EFI_SYSTEM_RESOURCE_TABLE)
    esrt_files = dict(t.sysfs.files)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    for version in ((2, 0), (2, 1)):
        await staged(rig, version)
        assert await rig.write(SP2_GUID, "activate") == 2
        assert await rig.read(SP2_GUID, "current_version") == f"{version[0]}.{version[1]}\n".encode()
        assert await read_all(t.efivarfs, name("BootOrder")) == b"\x07\x00\x00\x00\x01\x00\x00\x00"
    assert t.efivarfs.listdir() == listing and t.sysfs.files == esrt_files
    assert p.uefi.system_table.table(EFI_SYSTEM_RESOURCE_TABLE) == esrt


async def test_after_a_naive_restart_a_lost_variable_keeps_its_file_which_reads_nothing(nursery):
    p, t = await boot(live_state="naive")
    rig = await make_rig(nursery, platform=p)
    await staged(rig)
    await rig.write(SP2_GUID, "force_cpu_rendezvous", b"0\n")
    assert await rig.write(SP2_GUID, "activate") == 2
    fs = t.efivarfs
    assert name("SecureBoot") in fs.listdir()
    assert await read_all(fs, name("SecureBoot")) == b""
    assert fs.stat(fs.lookup(name("SecureBoot")))["st_size"] == 5  # stale, as the kernel keeps it
    f = fs.open(name("BootOrder"), os.O_RDONLY)
    assert await fs.read(f, 8, 0) == b"\x07\x00\x00\x00\x01\x00\x00\x00"
    fs.release(f)
