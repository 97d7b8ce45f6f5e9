"""Fleets (layer 5): many emulated LFA nodes, a shard of them per Trio process, each shard behind one FUSE mount.

Nothing below layer 5 knows there is more than one node: a node is a
Platform, the LfaDriver on it (through SMCs only) and lfafs.fs.SysfsOps
serving its tree under the shard's mount at ``nodes/<id>/`` (docs/fleet.md).

Pure logic, no I/O:
    description.py  the fleet description (TOML): cohorts, labels, versions, updates, fault rules; checked
    selector.py     Kubernetes label selectors
    latency.py      fixed, jittered and long-tailed modelled time, drawn per node from the seed
    roster.py       every node the description makes, and the fixed slice each shard owns
    faults.py       fault rules -> the faults each node gets (drawn with the seed, checked against TF-A)
    checks.py       invariants over a run's events (in flight, stop after N failures, failed RMMs)
    inventory.py    an Ansible inventory for the nsenter connection
    layout.py       where a fleet lives under its root directory
Running nodes:
    node.py         one node: platform + driver + sysfs tree; power, resets, activations as events
    events.py       a shard's event log (JSON lines)
    shard.py        the nodes of one slice in one Trio run
    operations.py   the shard's FUSE operations: nodes/<id>/... -> that node's SysfsOps
    commands.py     the fleet control commands (lfafs.service.registry declarations)
    wire.py         the control protocol's framing over Unix sockets and TCP
    serve.py        one shard process: nodes, mount, endpoints, signals, mock clock
Around them:
    supervisor.py   a fleet on one machine: shard processes, restarts, up and down
    client.py       every shard asked at once (a root, endpoints, or a headless Service)
    namespaces.py   an agent on one node: a private mount namespace; holders for Ansible
    cli.py, cli_support.py, cli_nodes.py   ``lfafs fleet`` (``python -m lfafs.fleet``)
    testing.py      the ``lfafs_fleet`` pytest fixture (in-process, mock clock available)
"""
