"""The UEFI control commands (var list/get/set/delete/fill, efi fail/clear-faults) and [[variable]] scenario
entries, seen from inside `lfafs run` as a client sees their effect on efivarfs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lfafs.service import access

LFAFS = [sys.executable, "-m", "lfafs"]
EFIVARS = "/sys/firmware/efi/efivars"
GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
BOOT_ORDER = f"{EFIVARS}/BootOrder-{GLOBAL}"
# one write(2) of attributes 0x7 and the hex data that follows, its errno on stderr (sh's printf hides it)
WRITE = (f"{sys.executable} -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT); "
         "os.write(fd, bytes.fromhex(\"07000000\" + sys.argv[2]))'")


@pytest.fixture(autouse=True)
def needs_fuse():
    why = access.fuse_problem()
    if why:
        pytest.skip(f"needs a real FUSE mount: {why}")


def run(script: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LFAFS, "run", *options, "--", "sh", "-c", script], capture_output=True, text=True,
                          timeout=180)


def test_var_list_get_set_delete_act_on_the_store():
    r = run("lfafs ctl var list && lfafs ctl var get BootOrder && "
            "lfafs ctl var set Timeout --data 0900 && od -An -tx1 /sys/firmware/efi/efivars/Timeout-* && "
            f"lfafs ctl var delete Timeout && cat {EFIVARS}/Timeout-{GLOBAL} | wc -c; "
            "lfafs ctl var get Timeout")
    out = r.stdout
    assert f"BootOrder-{GLOBAL}  attributes 0x7  4 bytes" in out and f"SecureBoot-{GLOBAL}  attributes 0x6" in out
    assert f"BootOrder-{GLOBAL} attributes 0x7\n01000000\n" in out
    assert " 07 00 00 00 09 00\n" in out  # the kernel reads the new data of a file it lists
    # the file stays listed (efivarfs's listing is a mount-time snapshot) and reads as empty (ENOENT is EOF)
    assert f"deleted Timeout-{GLOBAL}\n0\n" in out and f"no variable Timeout-{GLOBAL}" in r.stderr, out + r.stderr


def test_var_set_refusals_name_the_efi_status():
    r = run("lfafs ctl var set SecureBoot --data 01 --attributes bs,rt; "
            "lfafs ctl var set Boot0000 --data 01 --attributes nv,bs; lfafs ctl var set X --data zz")
    assert "SetVariable(SecureBoot-" in r.stderr and "WRITE_PROTECTED" in r.stderr  # U-Boot's read-only property
    assert "INVALID_PARAMETER" in r.stderr  # attributes of an existing variable cannot change
    assert "data must be hex bytes" in r.stderr


def test_var_fill_leaves_no_room_for_efivar_writes():
    r = run(f"lfafs ctl var fill && {WRITE} {EFIVARS}/LfafsNew-{GLOBAL} 78; echo rc=$?")
    assert "the store is full" in r.stdout and "rc=1" in r.stdout, r.stdout + r.stderr
    assert "No space left on device" in r.stderr


@pytest.mark.parametrize(("fault", "errno_text"), [
    ("busy", "No space left on device"),  # FFA_ERROR BUSY -> U-Boot OUT_OF_RESOURCES -> ENOSPC
    ("mm-error", "No space left on device"),  # MM NO_MEMORY -> U-Boot -EBUSY -> OUT_OF_RESOURCES
    ("sp-failure", "Input/output error"),  # destroyed SP: INVALID_PARAMETERS -> DEVICE_ERROR -> EIO
])
def test_efi_faults_reach_a_reader_of_efivarfs(fault, errno_text):
    r = run(f"lfafs ctl efi fail {fault} && cat {BOOT_ORDER} >/dev/null; "
            f"lfafs ctl efi clear-faults; lfafs ctl reset >/dev/null && od -An -tx1 {BOOT_ORDER}")
    assert errno_text in r.stderr, r.stdout + r.stderr
    assert "07 00 00 00 01 00 00 00" in r.stdout  # cleared, and a reset boots a new SP


def test_a_counted_fault_spends_itself():
    r = run(f"lfafs ctl efi fail busy --count 1 >/dev/null; cat {BOOT_ORDER} >/dev/null; echo first=$?; "
            f"cat {BOOT_ORDER} >/dev/null; echo second=$?")
    assert "first=1" in r.stdout and "second=0" in r.stdout, r.stdout + r.stderr


def test_storage_full_refuses_writes_but_not_reads():
    r = run(f"lfafs ctl efi fail storage-full >/dev/null; {WRITE} {EFIVARS}/Timeout-{GLOBAL} 0900; echo rc=$?; "
            f"od -An -tx1 {BOOT_ORDER}; lfafs ctl status --json")
    assert "rc=1" in r.stdout and "No space left on device" in r.stderr, r.stdout + r.stderr
    status = json.loads(r.stdout[r.stdout.index("{"):])
    assert status["uefi"]["faults"] == ["storage-full"] and status["uefi"]["efivarfs"] == "read-write"


def test_a_scenario_preloads_variables(tmp_path):
    scenario = tmp_path / "vars.toml"
    scenario.write_text(textwrap.dedent("""\
        [[variable]]
        name = "Timeout"
        data = "0200"

        [[variable]]
        name = "LfafsSetting"
        guid = "6c666166-7300-4669-8c6c-000000000002"
        attributes = "nv,bs,rt"
        data = "2a"
        """))
    r = run(f"od -An -tx1 {EFIVARS}/Timeout-{GLOBAL} {EFIVARS}/LfafsSetting-6c666166-7300-4669-8c6c-000000000002",
            "--scenario", str(scenario))
    assert " 07 00 00 00 02 00 07 00 00 00 2a\n" in r.stdout.replace("\n 07", " 07"), r.stdout + r.stderr


def test_a_bad_variable_entry_names_its_line(tmp_path):
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[[variable]]\nname = "Timeout"\ndata = "zz"\n')
    r = run("true", "--scenario", str(scenario))
    assert r.returncode != 0 and f"{scenario}:3: variable[0].data: data must be hex bytes" in r.stderr, r.stderr
