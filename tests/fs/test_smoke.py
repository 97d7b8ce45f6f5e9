import os

RMM = "6c0762a6-12f2-4b56-92cb-ba8f633606d9"


def test_mount_lists_lfa(mount):
    assert os.listdir(mount.mnt) == ["lfa"]
    assert RMM in os.listdir(mount.lfa)
    assert mount.read(RMM, "name") == "TF-RMM\n"
