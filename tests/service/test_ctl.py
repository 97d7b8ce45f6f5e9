"""lfafs ctl and the control protocol, against a daemon in its own process."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from lfafs.service.control import Client, ControlError, socket_path

LFAFS = [sys.executable, "-m", "lfafs"]
RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


@pytest.fixture(scope="module")
def daemon(daemon):
    """The module's daemon (conftest.py), by its mountpoint."""
    return daemon.mountpoint


def ctl(mnt, *args):
    return subprocess.run([*LFAFS, "ctl", "--mount", mnt, *args], capture_output=True, text=True, timeout=60)


def lfa(mnt, attr):
    with open(os.path.join(mnt, "lfa", RMM, attr)) as f:
        return f.read()


def test_socket_is_private(daemon):
    path = socket_path(daemon)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_stage_activate_report_round_trip(daemon):
    r = ctl(daemon, "stage", "rmm", "--version", "1.1")
    assert r.returncode == 0 and "staged rmm 1.1" in r.stdout
    assert lfa(daemon, "activation_pending") == "1\n"
    with open(os.path.join(daemon, "lfa", RMM, "activate"), "w") as f:
        f.write("1")
    st = json.loads(ctl(daemon, "status", "--json").stdout)
    rmm = next(c for c in st["components"] if c["name"] == "rmm")
    assert rmm["version"] == "1.1" and rmm["staged_version"] is None
    assert st["last_report"]["to_version"] == "1.1" and st["last_report"]["status"] == 0
    assert "last activation: rmm 0.9 -> 1.1 status 0 on 4 CPUs" in ctl(daemon, "status").stdout
    assert "TF-RMM: successfully activated" in ctl(daemon, "dmesg").stdout
    assert "LFA_ACTIVATE" in ctl(daemon, "trace", "--limit", "10").stdout


def test_stage_an_image_file_by_guid(daemon, tmp_path):
    import uuid

    from lfafs.platform import images

    img = images.build(uuid.UUID("f07b2a96-1d47-4d17-9ec8-86a64e253e5c"), (4, 2), b"wrong key")
    f = tmp_path / "sp1.img"
    f.write_bytes(img)
    r = ctl(daemon, "stage", "f07b2a96-1d47-4d17-9ec8-86a64e253e5c", "--image", str(f))
    assert r.returncode == 0 and "4.2" in r.stdout
    path = os.path.join(daemon, "lfa", "f07b2a96-1d47-4d17-9ec8-86a64e253e5c")
    with open(os.path.join(path, "activation_pending")) as fh:
        assert fh.read() == "1\n"
    r = subprocess.run(["bash", "-c", f"echo 1 > {path}/activate"], capture_output=True, text=True)
    assert "Operation canceled" in r.stderr  # AUTH_ERROR at PRIME
    assert "LFA_AUTH_ERROR" in ctl(daemon, "dmesg").stdout
    # TF-A keeps a component whose PRIME failed claimed, and the driver does not
    # cancel after a PRIME error: until this cancel nothing else can activate.
    assert "agent: sp1 prime=STARTED" in ctl(daemon, "status").stdout
    with open(os.path.join(path, "cancel"), "w") as fh:
        fh.write("1")
    assert "agent: idle" in ctl(daemon, "status").stdout
    assert ctl(daemon, "unstage", "sp1").returncode == 0


def test_faults_from_the_command_line(daemon):
    assert ctl(daemon, "fail", "rmm", "--at", "activate", "--status", "LFA_ACTIVATION_FAILED", "--once").returncode == 0
    assert "activate: LFA_ACTIVATION_FAILED (once)" in ctl(daemon, "status").stdout
    ctl(daemon, "stage", "rmm", "--version", "2.0")
    lfa(daemon, "activation_pending")
    r = subprocess.run(["bash", "-c", f"echo 1 > {daemon}/lfa/{RMM}/activate"], capture_output=True, text=True)
    assert "Operation canceled" in r.stderr
    assert lfa(daemon, "current_version") != "2.0\n"
    r = subprocess.run(["bash", "-c", f"echo 1 > {daemon}/lfa/{RMM}/activate"], capture_output=True, text=True)
    assert r.returncode == 0 and lfa(daemon, "current_version") == "2.0\n"


def test_cpu_power_and_notify(daemon):
    assert ctl(daemon, "cpu", "3", "off").returncode == 0
    assert "3:off" in ctl(daemon, "status").stdout
    ctl(daemon, "stage", "rmm", "--version", "3.0")
    with open(os.path.join(daemon, "lfa", RMM, "auto_activate"), "w") as f:
        f.write("1")
    r = ctl(daemon, "notify")
    assert r.returncode == 0 and "activated rmm" in r.stdout and "-> 3.0" in r.stdout
    assert ctl(daemon, "cpu", "3", "on").returncode == 0


def test_a_fault_beyond_tf_a_is_asked_for_explicitly(daemon):
    r = ctl(daemon, "fail", "rmm", "--at", "activate", "--status", "LFA_DEVICE_ERROR")
    assert r.returncode == 1 and "beyond TF-A" in r.stderr
    r = ctl(daemon, "fail", "rmm", "--at", "activate", "--status", "LFA_DEVICE_ERROR", "--beyond-tf-a")
    assert r.returncode == 0 and "LFA_DEVICE_ERROR, beyond TF-A" in r.stdout
    assert ctl(daemon, "clear-faults", "rmm").returncode == 0


@pytest.mark.parametrize(("args", "words"), [
    (["stage", "nope", "--version", "1.0"], "unknown component"),
    (["stage", "rmm", "--version", "one"], "MAJOR.MINOR"),
    (["fail", "rmm", "--at", "notify", "--status", "LFA_BUSY"], "cannot return"),
    (["cpu", "9", "on"], "no CPU 9"),
    (["component", "remove", "rmm"], "cannot be removed"),
])
def test_bad_commands_are_explained_and_change_nothing(daemon, args, words):
    before = json.loads(ctl(daemon, "status", "--json").stdout)
    r = ctl(daemon, *args)
    assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr
    after = json.loads(ctl(daemon, "status", "--json").stdout)
    assert before["components"] == after["components"] and before["cpus"] == after["cpus"]


@pytest.mark.parametrize(("raw", "code"), [
    (b"not json\n", "bad-request"),
    (b'[1, 2]\n', "bad-request"),
    (b'{"cmd": "explode"}\n', "unknown-command"),
    (b'{"cmd": "stage", "args": {"component": 3}}\n', "bad-request"),
    (b'{"cmd": "stage", "args": {"component": "rmm", "colour": "red"}}\n', "bad-request"),
    (b'{"cmd": "cpu", "args": {"cpu": 1}}\n', "bad-request"),
    (b'{"cmd": "stage", "args": {"component": "rmm", "image": "***"}}\n', "bad-request"),
    (b'{"cmd": "status", "extra": 1}\n', "bad-request"),
])
def test_malformed_requests_get_error_replies(daemon, raw, code):
    s = socket.socket(socket.AF_UNIX)
    s.connect(socket_path(daemon))
    s.sendall(raw)
    reply = json.loads(s.makefile().readline())
    s.close()
    assert reply["ok"] is False and reply["error"]["code"] == code


def test_oversized_request_is_refused(daemon):
    s = socket.socket(socket.AF_UNIX)
    s.connect(socket_path(daemon))
    try:
        s.sendall(b"x" * (33 << 20))
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = s.makefile().readline()
    s.close()
    assert json.loads(reply)["error"]["code"] == "too-large"


def test_python_client(daemon):
    c = Client(mount=daemon)
    assert c.call("ping") == {"pong": True}
    with pytest.raises(ControlError) as e:
        c.stage("nope", version="1.0")
    assert e.value.code == "unknown-component"


def test_ctl_without_a_daemon(tmp_path):
    r = subprocess.run([*LFAFS, "ctl", "--mount", str(tmp_path), "status"], capture_output=True, text=True)
    assert r.returncode == 1 and "is not mounted" in r.stderr and "Traceback" not in r.stderr


def test_clear_faults_reset_and_component_remove(daemon):
    ctl(daemon, "fail", "sp2", "--at", "prime", "--status", "LFA_BUSY")
    assert "prime: LFA_BUSY" in ctl(daemon, "status").stdout
    assert ctl(daemon, "clear-faults", "sp2", "--at", "prime").returncode == 0
    assert "prime: LFA_BUSY" not in ctl(daemon, "status").stdout
    assert ctl(daemon, "reset").returncode == 0
    st = json.loads(ctl(daemon, "status", "--json").stdout)
    assert st["realm"]["enabled"] and st["agent"]["component"] is None
    assert ctl(daemon, "component", "remove", "sp2").returncode == 0
    assert all(c["name"] != "sp2" for c in json.loads(ctl(daemon, "status", "--json").stdout)["components"])


def test_trace_and_dmesg_follow(daemon):
    trace = subprocess.Popen([*LFAFS, "ctl", "--mount", daemon, "trace", "--follow"], stdout=subprocess.PIPE, text=True)
    dmesg = subprocess.Popen([*LFAFS, "ctl", "--mount", daemon, "dmesg", "--follow"], stdout=subprocess.PIPE, text=True)
    try:
        import time

        time.sleep(1.0)
        lfa(daemon, "activation_pending")  # one GET_INVENTORY
        r = subprocess.run(["bash", "-c", f"echo 1 > {daemon}/lfa/{RMM}/cancel"], capture_output=True)
        assert r.returncode == 1
        line = trace.stdout.readline()
        assert "LFA_GET_INVENTORY" in line and "cpu0" in line
        assert _line_within(dmesg, "Activation not cancelled for image TF-RMM", 10)
    finally:
        trace.terminate()
        dmesg.terminate()
        trace.wait(10)
        dmesg.wait(10)


def _line_within(proc, words: str, seconds: float) -> bool:
    """True when a line containing ``words`` arrives within ``seconds`` (read in a thread:
    select() cannot see lines already sitting in the pipe's Python buffer)."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if words in lines.get(timeout=max(0.01, end - time.monotonic())):
                return True
        except queue.Empty:
            return False
    return False


@pytest.mark.parametrize(("args", "field"), [
    (["Bad Name!", "--guid", "11111111-2222-3333-4444-555555555556"], "name"),
    (["okname", "--guid", "not-a-guid"], "guid"),
    (["okname", "--guid", "11111111-2222-3333-4444-555555555556", "--version", "1.x"], "version"),
])
def test_component_add_accepts_exactly_what_a_profile_accepts(daemon, args, field):
    # the same ComponentSpec rules as a profile's [[component]] (lfafs.platform.component_spec)
    from lfafs.platform import ProfileError, load_profile

    r = ctl(daemon, "component", "add", *args)
    assert r.returncode != 0 and f"component {field}:" in r.stderr
    listing = ctl(daemon, "status").stdout
    assert "okname" not in listing and "Bad Name" not in listing
    toml = daemon + ".toml"
    name, guid = args[0], args[2]
    version = args[4] if len(args) > 4 else "1.0"
    with open(toml, "w") as f:
        f.write(f'base = "fvp-den0147"\n[[component]]\nname = "{name}"\nguid = "{guid}"\nversion = "{version}"\n')
    with pytest.raises(ProfileError) as e:
        load_profile(toml)
    assert e.value.field == f"component[0].{field}"
