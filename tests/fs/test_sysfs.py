"""/sys/firmware/lfa through a real FUSE mount: the attributes of docs/sysfs-abi.md, "The tree" to "Kernel log"."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time

import pytest

from lfafs.smccc import Fid

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
BL31 = "47d4086d-4cfe-9846-9b95-2950cbbd5a00"
BL33 = "d6d0eea7-fcea-d54b-9782-9934f234b6e4"
SP1 = "f07b2a96-1d47-4d17-9ec8-86a64e253e5c"
FILES_V3 = sorted(["activate", "activation_capable", "activation_pending", "auto_activate", "cancel",
                   "cpu_rendezvous", "current_version", "force_cpu_rendezvous", "may_reset_cpu", "name",
                   "pending_version"])


def stage(m, comp, version):
    m.call(m.platform.stage, comp, version)


def err_of(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


def test_lfa_is_a_directory_of_guid_directories_only(mount):
    st = os.stat(mount.lfa)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    names = os.listdir(mount.lfa)
    assert len(names) == 6 and all(os.path.isdir(os.path.join(mount.lfa, n)) for n in names)
    assert BL31 in names and all(len(n) == 36 and n.count("-") == 4 and n == n.lower() for n in names)


def test_each_image_has_exactly_the_eleven_files(mount):
    assert sorted(os.listdir(mount.path(RMM))) == FILES_V3


@pytest.mark.parametrize(("attr", "mode"), [("activate", 0o200), ("cancel", 0o200), ("force_cpu_rendezvous", 0o644),
                                            ("auto_activate", 0o644), ("name", 0o444), ("pending_version", 0o444)])
def test_modes_owner_and_size(mount, attr, mode):
    st = os.stat(mount.path(RMM, attr))
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
    assert (st.st_uid, st.st_gid, st.st_size) == (0, 0, 4096)
    assert stat.S_IMODE(os.stat(mount.path(RMM)).st_mode) == 0o755


@pytest.mark.parametrize("attr", ["activate", "cancel"])
def test_write_only_files_cannot_be_read_even_by_root(mount, attr):
    assert err_of(os.open, mount.path(RMM, attr), os.O_RDONLY) == errno.EACCES


@pytest.mark.parametrize("attr", ["name", "activation_pending", "current_version"])
def test_read_only_files_cannot_be_opened_for_writing_even_by_root(mount, attr):
    assert err_of(os.open, mount.path(RMM, attr), os.O_WRONLY) == errno.EACCES
    assert err_of(os.open, mount.path(RMM, attr), os.O_RDWR) == errno.EACCES


def test_booleans_are_exactly_two_bytes(mount):
    for attr in ("activation_capable", "activation_pending", "may_reset_cpu", "cpu_rendezvous",
                 "force_cpu_rendezvous", "auto_activate"):
        assert mount.read(RMM, attr) in ("0\n", "1\n")


def test_flags(mount):
    assert mount.read(RMM, "activation_capable") == "1\n"
    assert mount.read(BL33, "activation_capable") == "0\n"
    assert mount.read(BL31, "may_reset_cpu") == "1\n"
    assert mount.read(RMM, "cpu_rendezvous") == "1\n"
    assert mount.read(SP1, "cpu_rendezvous") == "0\n"


def test_activation_pending_is_fresh_on_every_read(mount):
    assert mount.read(RMM, "activation_pending") == "0\n"
    stage(mount, "rmm", (1, 2))
    assert mount.read(RMM, "activation_pending") == "1\n"
    assert mount.read(RMM, "pending_version") == "1.2\n"
    mount.call(mount.platform.unstage, "rmm")
    assert mount.read(RMM, "activation_pending") == "0\n"
    assert mount.read(RMM, "pending_version") == "N/A\n"


def test_new_images_default_to_forced_rendezvous_and_no_auto_activate(mount):
    assert (mount.read(SP1, "force_cpu_rendezvous"), mount.read(SP1, "auto_activate")) == ("1\n", "0\n")


@pytest.mark.parametrize(("text", "value"), [("0", "0"), ("n\n", "0"), ("off", "0"), ("d", "0"), ("f", "0"),
                                             ("yes\n", "1"), ("t", "1"), ("e", "1"), ("on\n", "1"), ("1", "1")])
def test_kstrtobool_writes(mount, text, value):
    mount.write(SP1, "force_cpu_rendezvous", "0" if value == "1" else "1")
    assert mount.write(SP1, "force_cpu_rendezvous", text) == len(text)
    assert mount.read(SP1, "force_cpu_rendezvous") == value + "\n"
    assert mount.write(SP1, "auto_activate", text) == len(text)
    assert mount.read(SP1, "auto_activate") == value + "\n"


@pytest.mark.parametrize("text", ["2", "x", "-1", "o", " 1"])
def test_bad_booleans_are_einval_and_change_nothing(mount, text):
    assert err_of(mount.write, SP1, "force_cpu_rendezvous", text) == errno.EINVAL
    assert mount.read(SP1, "force_cpu_rendezvous") == "1\n"


def test_zero_length_write_does_nothing(mount):
    assert mount.write(SP1, "auto_activate", "") == 0
    assert mount.write(RMM, "activate", "") == 0
    assert mount.read(SP1, "auto_activate") == "0\n"
    assert mount.call(lambda: [r for r in mount.platform.trace.records() if r.name == "LFA_PRIME"]) == []


def test_names(mount):
    assert mount.read(BL31, "name") == "TF-A BL31 runtime\n"
    assert mount.read(BL33, "name") == "BL33 non-secure payload\n"
    assert mount.read(RMM, "name") == "TF-RMM\n"
    assert mount.read(SP1, "name") == SP1 + "\n"


@pytest.mark.parametrize(("abi", "sp_name", "nfiles"), [("v2", "\n", 11), ("v1", "(unknown)\n", 10)])
def test_older_abis(mount_factory, abi, sp_name, nfiles):
    m = mount_factory(abi=abi)
    assert m.read(SP1, "name") == sp_name
    assert len(os.listdir(m.path(SP1))) == nfiles


def test_versions(mount):
    assert mount.read(RMM, "current_version") == "0.9\n"
    assert mount.read(RMM, "pending_version") == "N/A\n"


def test_activate_ignores_content_and_blocks_until_done(mount):
    stage(mount, "rmm", (1, 0))
    assert mount.read(RMM, "activation_pending") == "1\n"
    assert mount.write(RMM, "activate", "0") == 1  # "0" activates too
    assert mount.read(RMM, "current_version") == "1.0\n"  # done when the write returned
    assert mount.read(RMM, "activation_pending") == "0\n"
    assert mount.read(RMM, "pending_version") == "N/A\n"


def test_activate_without_a_pending_update_is_ecanceled(mount):
    assert err_of(mount.write, RMM, "activate") == errno.ECANCELED


def test_activate_of_a_may_reset_cpu_image_is_ecanceled_without_prime(mount):
    stage(mount, "bl31", (2, 16))
    mount.read(BL31, "activation_pending")
    assert err_of(mount.write, BL31, "activate") == errno.ECANCELED
    assert mount.call(lambda: [r for r in mount.platform.trace.records() if r.name == "LFA_PRIME"]) == []


@pytest.mark.parametrize(("stage_", "status", "cancels"), [("load", "LFA_AUTH_ERROR", 0),
                                                          ("activate", "LFA_DEVICE_ERROR", 1)])
def test_prime_and_activate_failures(mount, stage_, status, cancels):
    stage(mount, "sp1", (2, 0))
    mount.read(SP1, "activation_pending")
    mount.call(lambda: mount.platform.inject("sp1", stage_, status=status, once=True))
    assert err_of(mount.write, SP1, "activate") == errno.ECANCELED
    assert len(mount.call(lambda: [r for r in mount.platform.trace.records() if r.name == "LFA_CANCEL"])) == cancels


def test_rendezvous_and_skip_flag(mount):
    stage(mount, "sp1", (2, 0))
    mount.read(SP1, "activation_pending")
    mount.write(SP1, "force_cpu_rendezvous", "0")
    mount.write(SP1, "activate")
    acts = mount.call(lambda: [r for r in mount.platform.trace.records() if r.name == "LFA_ACTIVATE"])
    assert [r.args[1] for r in acts] == [1]


def test_rescan_keeps_settings_by_guid(mount):
    mount.write(RMM, "auto_activate", "1")
    mount.write(RMM, "force_cpu_rendezvous", "0")
    stage(mount, "rmm", (1, 0))
    mount.read(RMM, "activation_pending")
    mount.write(RMM, "activate")
    assert (mount.read(RMM, "auto_activate"), mount.read(RMM, "force_cpu_rendezvous")) == ("1\n", "0\n")


def test_cancel(mount):
    assert err_of(mount.write, RMM, "cancel") == errno.EINVAL
    stage(mount, "rmm", (1, 0))
    mount.read(RMM, "activation_pending")
    mount.acall(mount.platform.smc, Fid.LFA_PRIME, 3)
    assert mount.write(RMM, "cancel", "whatever") == 8


def test_reads_of_pending_block_during_activation_but_cached_reads_answer(mount):
    stage(mount, "rmm", (1, 0))
    mount.read(RMM, "activation_pending")
    mount.call(lambda: mount.platform.inject("rmm", "activate", latency=1.0))
    t = threading.Thread(target=mount.write, args=(RMM, "activate"))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert mount.read(RMM, "current_version") == "0.9\n"
    assert mount.read(SP1, "name") == SP1 + "\n"
    cached = time.monotonic() - t0
    pending = mount.read(RMM, "activation_pending")
    blocked = time.monotonic() - t0
    t.join()
    assert cached < 0.3 and blocked > 0.4 and pending == "0\n"


@pytest.mark.parametrize(("abi", "second", "primes"), [("v3", errno.ECANCELED, 2), ("nvidia-v3", errno.EBUSY, 1)])
def test_concurrent_activate_writers(mount_factory, abi, second, primes):
    # Upstream serialises nothing: the agent answers the second PRIME with LFA_BUSY while the
    # first image is being primed (lfa_fw.c v3, activate_store()). NVIDIA's tree refuses the
    # second writer at once (NV-Kernels lfa_fw.c @08ba8802aa8e, activate_store():
    # mutex_trylock(&lfa_activation_lock)).
    m = mount_factory(abi=abi)
    stage(m, "rmm", (1, 0))
    stage(m, "sp1", (2, 0))
    m.read(RMM, "activation_pending")
    m.read(SP1, "activation_pending")
    m.call(lambda: m.platform.inject("rmm", "load", latency=0.5))
    out = {}

    def w(guid):
        t0 = time.monotonic()
        try:
            out[guid] = m.write(guid, "activate")
        except OSError as e:
            out[guid] = e.errno
        out[guid, "took"] = time.monotonic() - t0

    threads = [threading.Thread(target=w, args=(g,)) for g in (RMM, SP1)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert (out[RMM], out[SP1]) == (2, second)
    assert out[SP1, "took"] < 0.3  # at once, not after the first activation
    assert len(m.smcs("LFA_PRIME")) == primes


def test_notification_activates_auto_images(mount):
    stage(mount, "sp1", (2, 0))
    mount.write(SP1, "auto_activate", "1")
    assert mount.acall(mount.driver.notify) is True  # the profile's DT interrupt
    assert mount.read(SP1, "current_version") == "2.0\n"


def test_a_notification_shows_a_non_auto_images_pending_version(mount):
    # The handler's walk queries every image's pending state before it tests auto_activate
    # (lfa_fw.c v3 4/8, 20260706134455.132091-5-, activate_pending_image()), so the cached
    # flag behind pending_version is fresh afterwards and the agent has seen the image.
    stage(mount, "rmm", (1, 2))
    mount.acall(mount.driver.notify)
    assert mount.read(RMM, "pending_version") == "1.2\n"
    assert mount.write(RMM, "activate") == 2


def test_reads_return_the_value_at_offset_0_then_eof(mount):
    fd = os.open(mount.path(RMM, "name"), os.O_RDONLY)
    try:
        assert os.read(fd, 3) == b"TF-"
        assert os.read(fd, 100) == b"RMM\n"
        assert os.read(fd, 100) == b""
        assert os.pread(fd, 100, 0) == b"TF-RMM\n"
    finally:
        os.close(fd)


def test_listing_follows_rescans(mount):
    before = set(os.listdir(mount.lfa))
    assert len(before) == 6


def test_kernel_log(mount):
    lines = mount.call(mount.driver.klog.text)
    assert any("Arm LFA: Live Firmware Activation: detected v1.0" in line for line in lines)


def test_passthrough_serves_the_hosts_other_firmware_entries_read_only(mount_factory, tmp_path):
    host = tmp_path / "host-firmware"
    (host / "dmi" / "tables").mkdir(parents=True)
    (host / "dmi" / "tables" / "smbios_entry_point").write_bytes(b"_SM3_")
    (host / "lfa").mkdir()  # the host's own lfa/ is hidden behind the emulated one
    m = mount_factory(passthrough=str(host))
    assert sorted(os.listdir(m.mnt)) == ["dmi", "lfa"]
    with open(os.path.join(m.mnt, "dmi", "tables", "smbios_entry_point"), "rb") as f:
        assert f.read() == b"_SM3_"
    assert err_of(os.open, os.path.join(m.mnt, "dmi", "tables", "smbios_entry_point"), os.O_WRONLY) == errno.EACCES
    assert len(os.listdir(m.lfa)) == 6


def test_rescan_after_activation_adds_and_removes_directories(mount):
    import uuid

    from lfafs.platform.profile import ComponentSpec

    scp = ComponentSpec(name="scp", guid=uuid.UUID("11111111-2222-3333-4444-555555555555"), activator="none",
                        version=(1, 0), may_reset_cpu=False, cpu_rendezvous_required=False)
    sp2 = "c3ff2127-7e41-a9f8-05af-24a1afa33474"
    mount.write(RMM, "auto_activate", "1")
    mount.call(mount.platform.remove_component, "sp2")
    mount.call(mount.platform.add_component, scp)
    assert sp2 in os.listdir(mount.lfa)  # nothing rescans until an activation
    stage(mount, "rmm", (1, 0))
    mount.read(RMM, "activation_pending")
    mount.write(RMM, "activate")
    assert "11111111-2222-3333-4444-555555555555" in os.listdir(mount.lfa)  # before the write returned
    assert mount.read("11111111-2222-3333-4444-555555555555", "name") == "11111111-2222-3333-4444-555555555555\n"
    for _ in range(100):
        if sp2 not in os.listdir(mount.lfa):
            break
        time.sleep(0.01)
    assert sp2 not in os.listdir(mount.lfa)  # removed shortly after
    assert mount.read(RMM, "auto_activate") == "1\n"  # kept by GUID

