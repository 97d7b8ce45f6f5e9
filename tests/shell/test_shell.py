"""Real bash, cat, echo, grep, ls and stat against a mount, as the driver's cover letters use it."""

from __future__ import annotations

import subprocess

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def sh(mount, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=mount.lfa, capture_output=True, text=True, timeout=60)


def test_grep_dot_star_in_an_image_directory(mount):
    r = sh(mount, f"cd {RMM} && grep . *")
    assert r.returncode == 2  # grep saw unreadable files
    assert "grep: activate: Permission denied" in r.stderr
    assert "grep: cancel: Permission denied" in r.stderr
    lines = set(r.stdout.splitlines())
    assert {"name:TF-RMM", "activation_capable:1", "activation_pending:0", "cpu_rendezvous:1",
            "current_version:0.9", "pending_version:N/A", "force_cpu_rendezvous:1", "auto_activate:0",
            "may_reset_cpu:0"} == lines


def test_ls_l_shows_sysfs_modes(mount):
    r = sh(mount, f"ls -l {RMM}")
    modes = {line.split()[-1]: line.split()[0] for line in r.stdout.splitlines()[1:]}
    assert modes["activate"] == "--w-------" and modes["cancel"] == "--w-------"
    assert modes["force_cpu_rendezvous"] == "-rw-r--r--" and modes["name"] == "-r--r--r--"
    assert all(line.split()[2:5] == ["root", "root", "4096"] for line in r.stdout.splitlines()[1:])


def test_stat_reports_size_and_mode(mount):
    r = sh(mount, f"stat -c '%s %a %U' {RMM}/pending_version {RMM}/activate")
    assert r.stdout.split("\n")[:2] == ["4096 444 root", "4096 200 root"]


def test_echo_1_to_activate_with_an_update_pending(mount):
    mount.call(mount.platform.stage, "rmm", (1, 0))
    r = sh(mount, f"cat {RMM}/activation_pending && echo 1 > {RMM}/activate; echo status=$?; cat {RMM}/current_version")
    assert r.stdout.split() == ["1", "status=0", "1.0"], r.stderr


def test_echo_1_to_activate_with_nothing_pending_fails_with_operation_canceled(mount):
    r = sh(mount, f"echo 1 > {RMM}/activate; echo status=$?")
    assert "status=1" in r.stdout
    assert "write error: Operation canceled" in r.stderr


def test_echo_to_a_read_only_file_is_permission_denied(mount):
    r = sh(mount, f"echo 1 > {RMM}/name; echo status=$?")
    assert "status=1" in r.stdout and "Permission denied" in r.stderr


def test_echo_bad_boolean_is_invalid_argument(mount):
    r = sh(mount, f"echo 2 > {RMM}/force_cpu_rendezvous; echo status=$?; cat {RMM}/force_cpu_rendezvous")
    assert "write error: Invalid argument" in r.stderr
    assert r.stdout.split() == ["status=1", "1"]


def test_cancel_with_nothing_primed(mount):
    r = sh(mount, f"echo 1 > {RMM}/cancel; echo status=$?")
    assert "status=1" in r.stdout and "Invalid argument" in r.stderr


def test_a_script_that_activates_every_pending_image(mount):
    mount.call(mount.platform.stage, "sp1", (2, 0))
    mount.call(mount.platform.stage, "rmm", (1, 0))
    script = r'''
set -u
for d in */; do
  d=${d%/}
  if [ "$(cat $d/activation_capable)" = 1 ] && [ "$(cat $d/may_reset_cpu)" = 0 ] && [ "$(cat $d/activation_pending)" = 1 ]; then
    if echo 1 > $d/activate; then echo "activated $(cat $d/name) $(cat $d/current_version)"; else echo "failed $d"; fi
    [ -w $d/cancel ] && echo 1 > $d/cancel 2>/dev/null
  fi
done
'''
    r = sh(mount, script)
    assert "activated TF-RMM 1.0" in r.stdout, (r.stdout, r.stderr)
    assert "activated f07b2a96-1d47-4d17-9ec8-86a64e253e5c 2.0" in r.stdout


def test_ls_U_and_find_list_in_kernfs_hash_order(mount):
    # fs/kernfs/dir.c, kernfs_fop_readdir(): entries in sibling-rbtree (kernfs_name_hash) order,
    # the order `find /sys | grep lfa` printed on Vera (NV-Kernels pull requests 312 and 314).
    r = sh(mount, f"ls -U {RMM}")
    assert r.stdout.split() == ["may_reset_cpu", "pending_version", "cpu_rendezvous", "auto_activate", "cancel",
                                "force_cpu_rendezvous", "activate", "activation_capable", "activation_pending",
                                "current_version", "name"]
    r = sh(mount, "find . | head -n 4")
    assert r.stdout.split() == [".", f"./{RMM}", f"./{RMM}/may_reset_cpu", f"./{RMM}/pending_version"]


def test_cat_of_a_long_file_into_an_attribute_succeeds(mount):
    # fs/kernfs/file.c, kernfs_fop_write_iter(): each write is cut to a page, never E2BIG.
    r = sh(mount, f"head -c 6000 /dev/zero | tr '\\0' y > {RMM}/auto_activate; echo status=$?; "
                  f"cat {RMM}/auto_activate")
    assert r.stdout.split() == ["status=0", "1"], r.stderr


def test_touch_rm_mkdir_answer_as_on_sys(mount):
    # kernfs_iop_setattr() takes root's times; lookup_open() has no ->create (EACCES);
    # vfs_unlink() and kernfs_iop_mkdir() refuse with EPERM.
    r = sh(mount, f"touch {RMM}/name; echo touch=$?; touch {RMM}/new; echo create=$?; "
                  f"rm -f {RMM}/name; echo rm=$?; mkdir {RMM}/d; echo mkdir=$?")
    assert r.stdout.split() == ["touch=0", "create=1", "rm=1", "mkdir=1"]
    assert "touch: cannot touch" in r.stderr and "Permission denied" in r.stderr
    assert r.stderr.count("Operation not permitted") == 2
