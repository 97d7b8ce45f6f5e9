"""Platform profiles: the embedded default, additions, and clear errors."""

from __future__ import annotations

import pytest

from lfafs.platform import Platform, PlatformError, ProfileError, load_profile
from lfafs.smccc import Fid

from .conftest import call


def test_fvp_mirrors_tf_a_table_with_every_option():
    # TF-A include/plat/arm/common/plat_arm_lfa_components.h (table order),
    # plat/arm/board/fvp/platform.mk (2 clusters x 4 CPUs), fvp_lfa.c (pending hard-wired),
    # lfa_main.c lfa_get_inventory() (SMC_RET4: no versions in x4/x5)
    p = load_profile("fvp")
    assert [c.name for c in p.components] == ["bl31", "bl32", "bl33", "rmm", "sp1", "sp2"]
    assert p.cpus == 8 and p.rmm.va_pool_size == 1 << 30
    assert not p.inventory_versions and p.activation_pending == "hardwired" and p.notification == "none"
    bl31 = p.component("bl31")
    assert bl31.may_reset_cpu and bl31.cpu_rendezvous_required
    assert not p.component("sp1").cpu_rendezvous_required
    assert p.component("6c0762a6-12f2-4b56-92cb-ba8f633606d9").name == "rmm"


def test_the_default_is_the_fvp_with_a_den0147_port():
    p = load_profile()
    assert p.name == "fvp-den0147"
    fvp = load_profile("fvp")
    assert p.components == fvp.components and p.rmm == fvp.rmm and p.dram_size == fvp.dram_size
    assert p.cpus == 4 and p.inventory_versions and p.activation_pending == "staged" and p.notification == "dt"


def write(tmp_path, text):
    f = tmp_path / "p.toml"
    f.write_text(text)
    return f


async def test_a_profile_adds_components_and_sets_the_machine(tmp_path):
    f = write(tmp_path, '''
base = "fvp-den0147"
name = "lab"
cpus = 2
dram_size = "1G"
[rmm]
va_pool_size = "2G"
base = 0xBDC0_0000
limit = 0xBFBF_F000
[[component]]
name = "scp"
guid = "11111111-2222-3333-4444-555555555555"
activator = "generic"
cpu_rendezvous = "optional"
version = "3.1"
latency = { activate = 0.5 }
''')
    p = Platform.from_profile(f)
    assert p.ncpus == 2 and p.profile.dram_size == 1 << 30 and p.profile.rmm.va_pool_size == 2 << 30
    assert [c.name for c in p.components][-1] == "scp"
    r = await call(p, Fid.LFA_GET_INFO, 0)
    assert r.x1 == 7
    r = await call(p, Fid.LFA_GET_INVENTORY, 6)
    assert r.x3 == 0x9 and r.x4 == (3 << 32) | 1
    assert Platform.from_profile(f, cpus=3).ncpus == 3


@pytest.mark.parametrize(("text", "field", "words"), [
    ('base = "fvp-den0147"\ncpus = 0', "cpus", "between 1 and 512"),
    ('base = "fvp-den0147"\ncpus = "four"', "cpus", "expected int"),
    ('base = "fvp-den0147"\ndram_size = "lots"', "dram_size", "size"),
    ('base = "fvp-den0147"\n[rmm]\nva_pool_size = "1536M"', "rmm.va_pool_size", "multiple of 1 GB"),
    ('base = "fvp-den0147"\nfrobnicate = 1', "frobnicate", "unknown field"),
    ('base = "nowhere"', "base", "not an embedded profile"),
    ('base = "fvp-den0147"\n[[component]]\nname = "x"\nguid = "not-a-guid"\nversion = "1.0"', "component[0].guid", "badly formed"),
    ('base = "fvp-den0147"\n[[component]]\nname = "x"\nguid = "11111111-2222-3333-4444-555555555555"\nversion = "1"', "component[0].version", "MAJOR.MINOR"),
    ('base = "fvp-den0147"\n[[component]]\nname = "x"\nguid = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"\nversion = "1.0"', "component.guid", "duplicate"),
    ('base = "fvp-den0147"\n[[component]]\nname = "x"\nguid = "11111111-2222-3333-4444-555555555555"\nactivator = "magic"\nversion = "1.0"', "component[0].activator", "not one of"),
    ('base = "fvp-den0147"\n[[component]]\nname = "x"\nguid = "11111111-2222-3333-4444-555555555555"\nactivator = "rmm"\nversion = "1.0"', "component", "at most one"),
    ('name = "broken', "toml", ""),
])
def test_bad_profiles_name_the_file_and_field(tmp_path, text, field, words):
    f = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    assert e.value.source == str(f)
    assert e.value.field == field
    assert words in str(e.value)


def test_missing_profile_lists_the_embedded_ones(tmp_path):
    with pytest.raises(ProfileError) as e:
        load_profile(tmp_path / "nope.toml")
    assert "fvp" in str(e.value)


def test_platform_rejects_bad_cpu_counts():
    with pytest.raises(PlatformError):
        Platform.from_profile("fvp", cpus=0)


async def test_smc_on_an_unknown_or_off_cpu_is_refused(fvp):
    with pytest.raises(PlatformError):
        await call(fvp, Fid.LFA_VERSION, cpu=9)
    fvp.power(2, False)
    with pytest.raises(PlatformError) as e:
        await call(fvp, Fid.LFA_VERSION, cpu=2)
    assert "off" in str(e.value)
    for c in (0, 1, 3):
        if c != 3:
            fvp.power(c, False)
    with pytest.raises(PlatformError):
        fvp.power(3, False)  # the last running CPU


def test_staging_checks_its_inputs(fvp):
    with pytest.raises(PlatformError):
        fvp.stage("nosuch", version=(1, 0))
    with pytest.raises(PlatformError):
        fvp.stage("rmm")
    with pytest.raises(PlatformError):
        fvp.stage("rmm", version="one")
    from lfafs.platform import images

    img = images.build(fvp.component("rmm").spec.guid, (1, 2), fvp.profile.auth_key, rmm=True)
    with pytest.raises(PlatformError):
        fvp.stage("rmm", version=(1, 3), image=img)
    fvp.stage("RMM", image=img)
    assert fvp.component("rmm").staged_version == (1, 2)
