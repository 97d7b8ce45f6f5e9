"""--state-dir as a specification: a save commits with its change or the change does not happen,
one daemon per directory, no temporary file left, every corruption refused in one line.

The disk-full and read-only cases use a real tmpfs (``size=``), mounted for the test.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess

import pytest
import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import platform_conduit
from lfafs.platform import ComponentSpec, Platform
from lfafs.service import state as state_mod
from lfafs.service.state import FlashWriteError, StateBusy, StateDir, StateError

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"
SP1 = "f07b2a96-1d47-4d17-9ec8-86a64e253e5c"
NEW_GUID = "11111111-2222-3333-4444-555555555555"


class SmallDisk:
    """A tmpfs of a few hundred KB: full or read-only at will."""

    def __init__(self, path: str, size: str = "512k") -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        self.filler = os.path.join(path, "filler")

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.filler)

    def read_only(self, on: bool = True) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", self.path], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = SmallDisk(str(tmp_path / "disk"))
    yield d
    d.close()


def files(path: str) -> dict[str, bytes]:
    out = {}
    for root, _dirs, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = f.read()
    return out


def temporaries(path: str) -> list[str]:
    return [n for _r, _d, names in os.walk(path) for n in names if ".tmp." in n]


# -- a failed save changes nothing ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["full", "read-only"])
@pytest.mark.parametrize("change", ["stage", "unstage", "component-add", "component-remove"])
def test_an_out_of_band_change_whose_save_fails_is_undone(disk, failure, change):
    sd = StateDir(os.path.join(disk.path, "state"))
    p = Platform.from_profile()
    sd.attach(p)
    p.stage("sp1", version="3.0")  # something to unstage
    before_flash, before_images, before_files = p.flash_state(), p.staged_images(), files(sd.path)
    disk.fill() if failure == "full" else disk.read_only()
    spec = ComponentSpec(name="scp", guid=NEW_GUID, activator="generic", version="1.0", may_reset_cpu=False,
                         cpu_rendezvous_required=True)
    act = {"stage": lambda: p.stage("rmm", version="1.0"), "unstage": lambda: p.unstage("sp1"),
           "component-add": lambda: p.add_component(spec), "component-remove": lambda: p.remove_component("sp2")}
    with pytest.raises(FlashWriteError, match="the change was not made"):
        act[change]()
    assert p.flash_state() == before_flash and p.staged_images() == before_images
    assert [c.index for c in p.components] == list(range(len(p.components)))
    assert p.agent.n == len(p.components)
    disk.read_only(False)
    disk.free()
    assert files(sd.path) == before_files and temporaries(sd.path) == []
    act[change]()  # the disk takes it again: the same change now happens and is saved
    assert StateDir(sd.path).load(p)[0] == p.flash_state()


@pytest.mark.parametrize("failure", ["full", "read-only"])
async def test_a_uefi_variable_whose_save_fails_is_refused_with_device_error_and_unchanged(disk, failure):
    # A variable is written to flash or not at all: Trusted Services' store answers
    # EFI_DEVICE_ERROR for PSA_ERROR_STORAGE_FAILURE (uefi_variable_store.c,
    # psa_to_efi_storage_status()), and a crash afterwards finds the variable as it was.

    from lfafs.uefi import EFI_GLOBAL_VARIABLE, NV_BS_RT, EfiStatus

    sd = StateDir(os.path.join(disk.path, "state"))
    p = Platform.from_profile()
    sd.attach(p, log=lambda line: None)
    rt = p.uefi.runtime
    vendor = EFI_GLOBAL_VARIABLE
    assert await rt.set_variable("LfafsTest", vendor, int(NV_BS_RT), b"old") == EfiStatus.SUCCESS
    saved = StateDir(sd.path).load(Platform.from_profile())[0]
    disk.fill() if failure == "full" else disk.read_only()
    assert await rt.set_variable("LfafsTest", vendor, int(NV_BS_RT), b"new!") == EfiStatus.DEVICE_ERROR
    status, _, _, data = await rt.get_variable("LfafsTest", vendor, attributes=True, data_size=64)
    assert status == EfiStatus.SUCCESS and data == b"old"
    assert p.flash_state() == saved and temporaries(sd.path) == []
    disk.read_only(False)
    disk.free()
    assert await rt.set_variable("LfafsTest", vendor, int(NV_BS_RT), b"new!") == EfiStatus.SUCCESS
    assert StateDir(sd.path).load(Platform.from_profile())[0] == p.flash_state()


async def _activate(p: Platform, driver: LfaDriver, guid: str) -> None:
    await driver.read(guid, "activation_pending")  # the agent learns of the image (sysfs-abi.md, "Traps")
    assert await driver.write(guid, "activate", b"1") == 1


async def test_an_activation_whose_save_fails_stands_and_is_saved_once_the_disk_allows(disk):
    sd = StateDir(os.path.join(disk.path, "state"))
    p = Platform.from_profile()
    writer = sd.attach(p, log=lambda line: None)
    p.stage("rmm", version="1.0")
    p.stage("sp1", version="2.0")
    saved_before = files(sd.path)
    conduit = platform_conduit(p)
    async with trio.open_nursery() as nursery:
        driver = LfaDriver(conduit, abi="v3", notification=p.profile.notification)
        await driver.probe(nursery)
        disk.fill()
        await _activate(p, driver, RMM)  # the commit's save fails inside the firmware
        assert str(p.component("rmm").version) == "1.0" and writer.unsaved
        assert not p.agent.in_progress and p.agent.current.component_id == 0xFFFF_FFFF  # never left mid-round
        await _activate(p, driver, SP1)  # the next activation works
        assert str(p.component("sp1").version) == "2.0"
        nursery.cancel_scope.cancel()
    assert files(sd.path) == saved_before and temporaries(sd.path) == []
    # a restart now boots the flash as last saved: the old version, the update still staged
    again = Platform.from_profile()
    flash, _images = StateDir(sd.path).load(again)
    rmm = next(c for c in flash["components"] if c["name"] == "rmm")
    assert (rmm["version"], rmm["staged_version"]) == ([0, 9], [1, 0])
    disk.free()
    assert writer.retry() and writer.unsaved is None
    flash, images = StateDir(sd.path).load(again)
    rmm = next(c for c in flash["components"] if c["name"] == "rmm")
    assert (rmm["version"], rmm["staged_version"], images) == ([1, 0], None, {})


def test_a_save_leaves_no_temporary_file_when_it_fails(disk):
    sd = StateDir(os.path.join(disk.path, "state"))
    p = Platform.from_profile()
    sd.attach(p)
    disk.fill()
    for _ in range(5):
        with pytest.raises(FlashWriteError):
            p.stage("rmm", image=os.urandom(200_000), version="1.0")
    assert temporaries(sd.path) == []
    assert os.listdir(os.path.join(sd.path, "images")) == []


def test_descriptors_exhausted_is_a_failed_save_too(tmp_path, monkeypatch):
    sd = StateDir(tmp_path / "state")
    p = Platform.from_profile()
    sd.attach(p)

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(state_mod.os, "open", no_descriptors)
    with pytest.raises(FlashWriteError, match="Too many open files"):
        p.stage("rmm", version="1.0")
    monkeypatch.undo()
    assert p.component("rmm").staged is None


# -- one daemon per state directory --------------------------------------------------------------------------


def test_a_second_owner_of_a_state_directory_is_refused_naming_the_first(tmp_path):
    first = StateDir(tmp_path / "state")
    first.attach(Platform.from_profile(), "/run/lfafs/one")
    before = files(first.path)
    with pytest.raises(StateBusy, match=rf"pid {os.getpid()} serving /run/lfafs/one") as e:
        StateDir(tmp_path / "state").attach(Platform.from_profile(), "/run/lfafs/two")
    assert "\n" not in str(e.value) and files(first.path) == before
    with pytest.raises(StateBusy):
        StateDir(tmp_path / "state").check_free()
    first.release()
    StateDir(tmp_path / "state").check_free()


def test_temporary_files_of_a_killed_daemon_are_removed_at_start(tmp_path):
    sd = StateDir(tmp_path / "state")
    p = Platform.from_profile()
    sd.attach(p)
    p.stage("rmm", version="1.0")
    sd.release()
    left = [os.path.join(sd.path, "flash.json.tmp.4242"), os.path.join(sd.path, "images", "ab.img.tmp.77")]
    orphan = os.path.join(sd.path, "images", "0" * 64 + ".img")
    for f in (*left, orphan):
        with open(f, "wb") as fh:
            fh.write(b"half")
    StateDir(sd.path).attach(Platform.from_profile())
    assert not any(os.path.exists(f) for f in (*left, orphan))
    assert len(os.listdir(os.path.join(sd.path, "images"))) == 1  # the staged image stays


# -- corrupt flash.json: one line naming file and field, nothing touched ------------------------------------------


def _saved(tmp_path) -> tuple[str, dict]:
    sd = StateDir(tmp_path / "state")
    p = Platform.from_profile()
    sd.attach(p)
    p.stage("rmm", version="1.0")
    p.add_component(ComponentSpec(name="scp", guid=NEW_GUID, activator="generic", version="1.0",
                                  may_reset_cpu=False, cpu_rendezvous_required=True))
    sd.release()
    with open(sd.flash_file) as f:
        return sd.path, json.load(f)


def _comp(doc, name):
    return next(c for c in doc["flash"]["components"] if c["name"] == name)


CORRUPTIONS = {
    "top level not an object": (lambda d: ("replace", [d]), "top level"),
    "format missing": (lambda d: d.pop("format"), "format"),
    "format a string": (lambda d: d.update(format="1"), "format"),
    "format true": (lambda d: d.update(format=True), "format"),
    "flash missing": (lambda d: d.pop("flash"), "flash"),
    "images missing": (lambda d: d.pop("images"), "images"),
    "unknown top field": (lambda d: d.update(extra=1), "top level"),
    "profile missing": (lambda d: d["flash"].pop("profile"), "flash.profile"),
    "profile a number": (lambda d: d["flash"].update(profile=3), "flash.profile"),
    "components missing": (lambda d: d["flash"].pop("components"), "flash.components"),
    "components empty": (lambda d: d["flash"].update(components=[]), "flash.components"),
    "components an object": (lambda d: d["flash"].update(components={}), "flash.components"),
    "a component not an object": (lambda d: d["flash"]["components"].append(3), "flash.components[7]"),
    "deeply nested": (lambda d: _comp(d, "rmm").update(version=[[[[[[1]]]]], 0]), "flash.components[3].version"),
    "name missing": (lambda d: _comp(d, "bl31").pop("name"), "flash.components[0].name"),
    "name a number": (lambda d: _comp(d, "bl31").update(name=1), "flash.components[0].name"),
    "guid missing": (lambda d: _comp(d, "bl31").pop("guid"), "flash.components[0].guid"),
    "guid not a guid": (lambda d: _comp(d, "bl31").update(guid="xyz"), "flash.components[0].guid"),
    "guid uppercase": (lambda d: _comp(d, "sp1").update(guid=SP1.upper()), "flash.components[4].guid"),
    "guid duplicated": (lambda d: _comp(d, "sp1").update(guid=RMM), "flash.components[4].guid"),
    "name duplicated": (lambda d: _comp(d, "sp2").update(name="sp1"), "flash.components[5].name"),
    "activator missing": (lambda d: _comp(d, "bl31").pop("activator"), "flash.components[0].activator"),
    "activator of the profile changed": (lambda d: _comp(d, "bl31").update(activator="sp"),
                                         "flash.components[0].activator"),
    "added component gets the rmm activator": (lambda d: _comp(d, "scp").update(activator="rmm"),
                                               "flash.components[6].activator"),
    "added component with a bad name": (lambda d: _comp(d, "scp").update(name="Bad Name"),
                                        "flash.components[6].name"),
    "version missing": (lambda d: _comp(d, "rmm").pop("version"), "flash.components[3].version"),
    "version a string": (lambda d: _comp(d, "rmm").update(version="0.9"), "flash.components[3].version"),
    "version of three parts": (lambda d: _comp(d, "rmm").update(version=[0, 9, 1]), "flash.components[3].version"),
    "version negative": (lambda d: _comp(d, "rmm").update(version=[-1, 0]), "flash.components[3].version"),
    "version too large": (lambda d: _comp(d, "rmm").update(version=[1 << 40, 0]), "flash.components[3].version"),
    "version of floats": (lambda d: _comp(d, "rmm").update(version=[0.5, 1]), "flash.components[3].version"),
    "version of booleans": (lambda d: _comp(d, "rmm").update(version=[True, False]), "flash.components[3].version"),
    "may_reset_cpu missing": (lambda d: _comp(d, "bl31").pop("may_reset_cpu"), "flash.components[0].may_reset_cpu"),
    "may_reset_cpu an int": (lambda d: _comp(d, "bl31").update(may_reset_cpu=1), "flash.components[0].may_reset_cpu"),
    "may_reset_cpu of the profile changed": (lambda d: _comp(d, "rmm").update(may_reset_cpu=True),
                                             "flash.components[3].may_reset_cpu"),
    "cpu_rendezvous_required a string": (lambda d: _comp(d, "bl31").update(cpu_rendezvous_required="yes"),
                                         "flash.components[0].cpu_rendezvous_required"),
    "staged_version missing": (lambda d: _comp(d, "rmm").pop("staged_version"), "flash.components[3].staged_version"),
    "staged_version a string": (lambda d: _comp(d, "rmm").update(staged_version="1.0"),
                                "flash.components[3].staged_version"),
    "staged_version without an image": (lambda d: d.update(images={}), "flash.components[3].staged_version"),
    "staged_version not the image's": (lambda d: _comp(d, "rmm").update(staged_version=[4, 4]),
                                       "flash.components[3].staged_version"),
    "an image without staged_version": (lambda d: _comp(d, "rmm").update(staged_version=None), f"images.{RMM}"),
    "image name not a checksum": (lambda d: d["images"].update({RMM: "../../etc/passwd"}), f"images.{RMM}"),
    "image of no component": (lambda d: d["images"].update({NEW_GUID[:-1] + "6": "0" * 64 + ".img"}),
                              "images.11111111-2222-3333-4444-555555555556"),
    "image file missing": (lambda d: d["images"].update({RMM: "0" * 64 + ".img"}), f"images.{RMM}"),
    "images a list": (lambda d: d.update(images=[]), "images"),
    "unknown component field": (lambda d: _comp(d, "rmm").update(colour="red"), "flash.components[3]"),
    "unknown flash field": (lambda d: d["flash"].update(secure_flsh={}), "flash"),
    "rmm missing": (lambda d: (d["flash"].update(components=[c for c in d["flash"]["components"]
                                                             if c["name"] != "rmm"]), d.update(images={}))[0],
                    "flash.components"),
    "another profile": (lambda d: d["flash"].update(profile="fvp"), "flash.profile"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_flash_is_refused_in_one_line_naming_file_and_field(tmp_path, case):
    path, doc = _saved(tmp_path)
    corrupt, field = CORRUPTIONS[case]
    out = corrupt(doc)
    if isinstance(out, tuple) and out[:1] == ("replace",):
        doc = out[1]
    with open(os.path.join(path, "flash.json"), "w") as f:
        json.dump(doc, f)
    if case.startswith("a"):  # these cases without a lock file: a refused start must not make one
        os.unlink(os.path.join(path, "lock"))
    before = files(path)
    with pytest.raises(StateError) as e:
        StateDir(path).attach(Platform.from_profile(), "/mnt")
    message = str(e.value)
    assert "\n" not in message and message.startswith(os.path.join(path, "flash.json")), message
    assert f": {field}: " in message or f": {field}" in message, message
    assert files(path) == before  # nothing rewritten, nothing removed
    with pytest.raises(StateError):  # the caller's check says the same, without the lock
        StateDir(path).load(Platform.from_profile())


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe\x00garbage", b"[" * 100_000, b"1" * 5000,
                                     b'{"format": NaN}', b"\0" * 64])
def test_truncated_or_garbage_flash_is_refused_in_one_line(tmp_path, content):
    path, _doc = _saved(tmp_path)
    with open(os.path.join(path, "flash.json"), "wb") as f:
        f.write(content)
    before = files(path)
    with pytest.raises(StateError) as e:
        StateDir(path).attach(Platform.from_profile())
    assert "\n" not in str(e.value) and "flash.json" in str(e.value)
    assert files(path) == before
