"""The pytest11 plugin, used the way another project's tests would use it."""

from __future__ import annotations

import pytest

from tests.fs.harness import fuse_unavailable

OTHER_PROJECTS_TESTS = r'''
import os
import subprocess

def test_a_shell_script_activates_the_rmm(lfafs_mount):
    lfafs_mount.stage("rmm", "1.0")
    script = f"""
    cd {lfafs_mount.image("rmm")}
    [ "$(cat activation_pending)" = 1 ] || exit 3
    echo 1 > activate || exit 4
    cat current_version
    """
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "1.0\n"

def test_a_fwupd_style_plugin_reads_sysfsfwdir(lfafs_mount):
    # fwupd finds /sys/firmware through FWUPD_SYSFSFWDIR
    sysfsfwdir = str(lfafs_mount.root)
    lfa = os.path.join(sysfsfwdir, "lfa")
    found = {}
    for guid in os.listdir(lfa):
        with open(os.path.join(lfa, guid, "name")) as f:
            found[guid] = f.read().strip()
    assert found["6c0762a6-12f2-4b56-92cb-ba8f633606d9"] == "TF-RMM"

def test_error_paths(lfafs_mount):
    lfafs_mount.stage("sp1", "2.0")
    lfafs_mount.read("sp1", "activation_pending")
    lfafs_mount.fail("sp1", at="load", status="LFA_AUTH_ERROR", once=True)
    try:
        lfafs_mount.write("sp1", "activate")
    except OSError as e:
        assert e.errno == 125  # ECANCELED
    else:
        raise AssertionError("the activation should have failed")

def test_older_driver(lfafs_platform):
    m = lfafs_platform(kernel_abi="v1")
    assert "auto_activate" not in os.listdir(m.image("rmm"))
'''


def test_fixtures_work_in_another_projects_tests(pytester):
    if fuse_unavailable():
        pytest.skip(f"needs a real FUSE mount: {fuse_unavailable()}")
    pytester.makepyfile(test_other=OTHER_PROJECTS_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=4)


def test_fixtures_skip_with_a_reason_where_mounting_is_impossible(pytester, monkeypatch):
    pytester.makepyfile(test_other="def test_x(lfafs_mount):\n    pass\n")
    pytester.makeconftest("import lfafs.service.testing as t\nt.unavailable = lambda: 'no /dev/fuse here (simulated)'\n")
    result = pytester.runpytest_subprocess("-q", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no /dev/fuse here (simulated)*"])
