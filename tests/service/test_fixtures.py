"""The pytest plugin's scoped fixtures, helpers, scenario marker and --lfafs-require, used the
way another project's tests use them (pytester runs them in a subprocess)."""

from __future__ import annotations

import pytest

from lfafs.service import access

SHARED = r'''
import pytest

def test_first_stages(lfafs_mount_module):
    lfafs_mount_module.stage("rmm", "1.1")

def test_second_sees_it_the_platform_is_shared(lfafs_mount_module, lfafs_mount_session):
    assert lfafs_mount_module.read("rmm", "activation_pending") == "1\n"
    assert lfafs_mount_session.root != lfafs_mount_module.root

def test_session_platform_is_one(lfafs_mount_session):
    lfafs_mount_session.stage("sp1", "3.0")
'''

HELPERS = r'''
def test_helpers(lfafs_mount):
    m = lfafs_mount
    m.stage("rmm", "1.2")
    m.unstage("rmm")
    assert m.read("rmm", "activation_pending") == "0\n"
    m.stage("rmm", "1.2")
    m.fail("rmm", at="load", status="LFA_AUTH_ERROR", once=True)
    m.clear_faults("rmm")
    m.cpu(3, False)
    assert [c["on"] for c in m.status()["cpus"]] == [True, True, True, False]
    r = m.run("cat /sys/firmware/lfa/*/name | sort | head -1; cd /sys/firmware/lfa/" + m.guid("rmm")
              + " && cat activation_pending >/dev/null && echo 1 > activate && cat current_version")
    assert r.returncode == 0 and r.stdout.endswith("1.2\n"), r.stderr
    assert any("TF-RMM: successfully activated" in line for line in m.dmesg())
    assert any(t["name"] == "LFA_PRIME" for t in m.trace(limit=50))
    assert m.notify() == {"activations": []}
'''

SCENARIO = r'''
import pytest

@pytest.mark.lfafs_scenario("auth.toml")
def test_the_marker_serves_the_scenario(lfafs_mount):
    assert lfafs_mount.read("rmm", "pending_version") == "2.0\n"
    assert "load: LFA_AUTH_ERROR" in str(lfafs_mount.status()["components"])

def test_the_factory_takes_a_scenario_and_flags(lfafs_platform):
    m = lfafs_platform(scenario="auth.toml", stage=["sp1=4.0"], fail=["sp1:prime:LFA_BUSY:once"])
    assert m.read("sp1", "pending_version") == "4.0\n"
'''

AUTH_TOML = '''
[[stage]]
component = "rmm"
version = "2.0"

[[fault]]
component = "rmm"
at = "load"
status = "LFA_AUTH_ERROR"
'''


@pytest.fixture
def needs_fuse():
    why = access.fuse_problem()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")


def test_module_and_session_fixtures_share_one_platform(pytester, needs_fuse):
    pytester.makepyfile(test_shared=SHARED)
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=3)


def test_the_helpers_drive_the_platform(pytester, needs_fuse):
    if access.userns_problem():
        pytest.skip(f"LfaMount.run needs a namespace: {access.userns_problem()}")
    pytester.makepyfile(test_helpers=HELPERS)
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)


def test_a_scenario_by_marker_or_factory(pytester, needs_fuse):
    pytester.makefile(".toml", auth=AUTH_TOML)
    pytester.makepyfile(test_scenario=SCENARIO)
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


def test_a_bad_scenario_fails_the_test_with_its_line(pytester, needs_fuse):
    pytester.makefile(".toml", bad='[[stage]]\ncomponent = "rmm"\nversion = "x"\n')
    pytester.makepyfile(test_bad='import pytest\n@pytest.mark.lfafs_scenario("bad.toml")\n'
                                 'def test_x(lfafs_mount):\n    pass\n')
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.toml:3: stage[[]0[]].version: expected a version MAJOR.MINOR*"])


UNAVAILABLE = "import lfafs.service.testing as t\nt.unavailable = lambda: 'no /dev/fuse here (simulated)'\n"


def test_without_a_mount_the_fixtures_skip_saying_why(pytester, monkeypatch):
    monkeypatch.delenv("LFAFS_REQUIRE", raising=False)  # CI sets it for the other tests of this file
    pytester.makeconftest(UNAVAILABLE)
    pytester.makepyfile(test_other="def test_x(lfafs_mount):\n    pass\n"
                                   "def test_y(lfafs_mount_module):\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*lfafs cannot mount here: no /dev/fuse here (simulated)*"])


@pytest.mark.parametrize("how", [("--lfafs-require",), ("env",)])
def test_lfafs_require_fails_instead_of_skipping(pytester, monkeypatch, how):
    pytester.makeconftest(UNAVAILABLE)
    pytester.makepyfile(test_other="def test_x(lfafs_mount):\n    pass\n"
                                   "def test_y(lfafs_platform):\n    pass\n")
    if how == ("env",):
        monkeypatch.setenv("LFAFS_REQUIRE", "1")
        how = ()
    result = pytester.runpytest_subprocess("-q", *how)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*lfafs cannot mount here and --lfafs-require is set: no /dev/fuse here*"])
