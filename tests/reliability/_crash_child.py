"""A fork server for the crash-consistency trials (test_crash_consistency.py).

Started once (``python -m tests.reliability._crash_child``), it imports lfafs once and then, per line
``trial STATE_DIR SEED LOG`` on stdin, forks a child that changes the flash as fast as it can (stage,
unstage, component add and remove, activations through the driver) until it is killed, and prints the
child's pid; ``reap PID`` waits for it and prints its status. The child writes one line to LOG around
every save, with os.write so that a SIGKILL loses nothing written before it:

    saving <summary>     a save of this flash starts
    saved                it is on disk
    failed               it failed (the change was undone, or a firmware write waits for the disk)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys

import trio

from lfafs.driver import LfaDriver
from lfafs.driver.lfa import DriverError, platform_conduit
from lfafs.platform import ComponentSpec, Platform, PlatformError
from lfafs.service.state import FlashWriteError, StateDir


def summary(flash: dict, images: dict[str, bytes]) -> list:
    """What a flash means, independent of how it is written: components in order, with image digests,
    and a digest of anything else the platform keeps in it (the UEFI variable store)."""
    rest = {k: v for k, v in flash.items() if k not in ("profile", "components")}
    return [[c["name"], c["guid"], list(c["version"]), c["staged_version"] and list(c["staged_version"]),
             hashlib.sha256(images[c["guid"]]).hexdigest() if c["guid"] in images else None]
            for c in flash["components"]] + [hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()]


def _trial(state_dir: str, seed: int, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    rng = random.Random(seed)
    platform = Platform.from_profile()
    state = StateDir(state_dir)
    real_save = state.save

    def save(flash: dict, images: dict[str, bytes]) -> None:
        os.write(fd, f"saving {json.dumps(summary(flash, images))}\n".encode())
        try:
            real_save(flash, images)
        except FlashWriteError:
            os.write(fd, b"failed\n")
            raise
        os.write(fd, b"saved\n")

    state.save = save
    try:
        state.attach(platform, "crash-trial", log=lambda line: None)
    except FlashWriteError:
        os._exit(3)  # a full or read-only disk before the first save: nothing to check but the disk
    trio.run(_change_forever, platform, rng)


async def _change_forever(platform: Platform, rng: random.Random) -> None:
    conduit = platform_conduit(platform)
    async with trio.open_nursery() as nursery:
        driver = LfaDriver(conduit, abi="v3", notification=platform.profile.notification)
        await driver.probe(nursery)
        n = 0
        while True:
            n += 1
            try:
                await _one_change(platform, driver, rng, n)
            except (FlashWriteError, PlatformError, DriverError):
                pass
            await trio.sleep(0)


async def _one_change(platform: Platform, driver: LfaDriver, rng: random.Random, n: int) -> None:
    names = [c.name for c in platform.components]
    op = rng.random()
    if op < 0.35:
        name = rng.choice([x for x in names if x not in ("bl31",)])
        if rng.random() < 0.3:
            size = rng.choice([100, 5000, 60_000, 200_000])
            platform.stage(name, version=(rng.randrange(50), n % 1000), image=os.urandom(size))
        else:
            platform.stage(name, version=(rng.randrange(1, 50), n % 1000))
    elif op < 0.5:
        platform.unstage(rng.choice(names))
    elif op < 0.6:
        name = f"scp{rng.randrange(4)}"
        if name in names:
            platform.remove_component(name)
        else:
            platform.add_component(ComponentSpec(name=name, guid=f"11111111-2222-3333-4444-55555555555{name[-1]}",
                                                 activator="generic", version=(1, n % 1000),
                                                 may_reset_cpu=False, cpu_rendezvous_required=False))
    else:
        candidates = [c for c in platform.components if c.staged is not None and c.kind in ("rmm", "sp", "generic")
                      and not c.spec.may_reset_cpu]
        if not candidates:
            return
        c = rng.choice(candidates)
        await driver.update_fw_images_tree()
        guid = c.guid
        if guid in driver.images:
            await driver.read(guid, "activation_pending")
            try:
                await driver.write(guid, "activate", b"1")
            except DriverError:
                pass


def main() -> None:
    for line in sys.stdin:
        words = line.split()
        if words[0] == "trial":
            pid = os.fork()
            if pid == 0:
                try:
                    _trial(words[1], int(words[2]), words[3])
                finally:
                    os._exit(0)
            print(pid, flush=True)
        elif words[0] == "reap":
            _, status = os.waitpid(int(words[1]), 0)
            print(status, flush=True)


if __name__ == "__main__":
    main()
