"""The environment ``lfafs run`` gives its command, read back by ``lfafs ctl`` and the fixtures."""

LFAFS_SOCKET = "LFAFS_SOCKET"  # the control socket of the daemon behind /sys/firmware: lfafs ctl needs no --mount
LFAFS_MOUNT = "LFAFS_MOUNT"  # where that daemon's tree is mounted outside the command's namespace
