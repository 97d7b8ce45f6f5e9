"""Real server shapes through a real mount: the Vera-like profile and a 512-CPU, 4 TB node."""

from __future__ import annotations

import errno
import os

import pytest

from lfafs.platform import embedded_names, load_profile

VERA_GUIDS = {"6c0762a6-12f2-4b56-92cb-ba8f633606d9", "65922703-2f74-e644-8dff-579ac1ff0610",
              "0509b633-5734-422f-a681-6096e932d93a", "3ab71f81-32b9-496d-841b-e3d0e9fd1a48"}
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def test_vera_serves_its_four_guids_with_v3_names_and_activates_the_rmm_on_176_cpus(mount_factory):
    m = mount_factory(profile="vera")
    assert set(os.listdir(m.lfa)) == VERA_GUIDS
    # v3's name table knows TF-RMM; get_image_name() falls back to the GUID for the others
    # (Linux drivers/firmware/smccc/lfa_fw.c, v3 patch of 2026-07-06)
    names = {g: m.read(g, "name").strip() for g in VERA_GUIDS}
    assert names == {g: ("TF-RMM" if g == RMM else g) for g in VERA_GUIDS}
    m.call(lambda: m.platform.stage("rmm", version=(0, 10)))
    assert m.read(RMM, "activation_pending").strip() == "1"
    assert m.write(RMM, "activate") > 0
    assert m.read(RMM, "current_version").strip() == "0.10"
    report = m.call(lambda: m.platform.last_report)
    assert report.cpus == 176 and report.status == 0


def test_a_512_cpu_4_tb_node_activates_through_the_mount(mount_factory, tmp_path):
    end = 0x8000_0000 + (4 << 40)
    profile = tmp_path / "big.toml"
    profile.write_text(f'''base = "vera"
name = "big"
dram_size = "4T"
topology = {{ sockets = 2, clusters = 128, cores = 1, threads = 2 }}
[rmm]
base = {end - (5 << 30):#x}
limit = {end - 0x40_1000:#x}
va_pool_size = "8G"
''')
    m = mount_factory(profile=str(profile))
    assert m.call(lambda: (m.platform.ncpus, m.platform.profile.dram_size)) == (512, 4 << 40)
    m.call(lambda: m.platform.stage("rmm", version=(0, 11)))
    m.read(RMM, "activation_pending")
    assert m.write(RMM, "activate") > 0
    assert m.read(RMM, "current_version").strip() == "0.11"
    assert m.call(lambda: m.platform.last_report.cpus) == 512


@pytest.mark.parametrize("name", embedded_names())
def test_every_shipped_profile_mounts_lists_and_activates(mount_factory, name):
    profile = load_profile(name)
    m = mount_factory(profile=name)
    guids = {str(c.guid) for c in profile.components}
    assert set(os.listdir(m.lfa)) == guids
    rmm = next((c for c in profile.components if c.activator == "rmm"), None)
    if rmm is None:
        # Linux refuses an image that may reset CPUs before any SMC (lfa_fw.c, activate_fw_image():
        # ECANCELED, no PRIME): on these shapes the kernel can activate nothing live.
        bl31 = str(profile.component("bl31").guid)
        before = len(m.smcs("LFA_PRIME"))
        with pytest.raises(OSError) as e:
            m.write(bl31, "activate")
        assert e.value.errno == errno.ECANCELED and len(m.smcs("LFA_PRIME")) == before
        return
    guid = str(rmm.guid)
    if profile.activation_pending == "staged":
        m.call(lambda: m.platform.stage("rmm", version=(7, 7)))
    assert m.read(guid, "activation_pending").strip() == "1"
    assert m.write(guid, "activate") > 0
    if profile.inventory_versions:
        assert m.read(guid, "current_version").strip() == "7.7"
    assert m.call(lambda: m.platform.last_report.status) == 0
