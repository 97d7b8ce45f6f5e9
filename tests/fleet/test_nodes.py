"""What a fleet node is built from: the description's profile, without the UEFI stack."""

import trio

from lfafs.fleet.description import from_dict
from lfafs.fleet.roster import Roster
from lfafs.fleet.shard import Shard

FLEET = {"fleet": {"seed": 3}, "cohort": [{"name": "vera", "count": 3}]}


def boot(shard: Shard) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await shard.boot(nursery)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_fleet_nodes_are_built_without_uefi_and_serve_lfa_only():
    shard = Shard(Roster(from_dict(FLEET), 1), 0)
    boot(shard)
    assert len(shard.nodes) == 3
    for node in shard.nodes.values():
        assert node.platform.profile.uefi.configuration == "none" and node.platform.uefi is None
        assert node.ops.readdir("/", None) == [".", "..", "lfa"]


def test_the_description_keeps_its_profile_and_nodes_share_one_copy_without_uefi():
    roster = Roster(from_dict(FLEET), 1)
    shard = Shard(roster, 0)
    profiles = {id(shard.profile_for(spec)) for spec in shard.specs}
    assert len(profiles) == 1
    assert roster.description.profiles["fvp-den0147"].uefi.enabled  # what `lfafs mount` of it would boot
