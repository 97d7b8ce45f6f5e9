"""An unmodified agent on one node: a private mount namespace whose /sys/firmware is the node's tree.

As ``lfafs run`` does for one mount, util-linux's ``unshare`` creates a
mount namespace with private propagation, bind-mounts ROOT/nodes/<id>
(resolved to the shard's mount) over /sys/firmware inside it only, and
runs the command there: it sees one node at /sys/firmware/lfa. The
namespace dies with the command.

Ansible's ``community.docker.nsenter`` connection enters the namespaces of
a *process* (``ansible_nsenter_pid``), so for a playbook each node needs a
process living in its namespace: a holder, ``sleep infinity`` started the
same way, its pid kept in ROOT/holders/<id>.pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from lfafs.fleet.layout import Layout, LayoutError

_INNER = 'mount --bind "$0" /sys/firmware && exec "$@"'


def node_tree(layout: Layout, node: str) -> str:
    """The real path of a node's tree on this machine; LayoutError if this machine serves no such node."""
    link = layout.node_link(node)
    if not os.path.islink(link):
        raise LayoutError(f"no node {node!r} is served at {layout.root} (see lfafs fleet status --root {layout.root})")
    return os.path.realpath(link)


def command_line(tree: str, command: list[str]) -> list[str]:
    """unshare + bind mount + exec: the command runs with ``tree`` as its /sys/firmware."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _INNER, tree, *command]


def node_env(node: str, labels: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["LFAFS_NODE"] = node
    env["LFAFS_COHORT"] = labels.get("cohort", "")
    return env


# -- holders ---------------------------------------------------------------------------------------------


def _holder_pid(layout: Layout, node: str) -> int | None:
    """The pid of a node's live holder, checked to be one (not a recycled pid)."""
    try:
        with open(layout.holder_file(node)) as f:
            pid = f.read().split("\n", 1)[0]
        pid = int(pid)
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    return pid if argv[:2] == [b"sleep", b"infinity"] and _binds_sys_firmware(pid) else None


def _binds_sys_firmware(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return any(" /sys/firmware " in line for line in f)
    except OSError:
        return False


def start_holders(layout: Layout, nodes: list[str]) -> dict[str, int]:
    """A holder per node (reusing live ones); node -> pid."""
    os.makedirs(layout.holders_dir, exist_ok=True)
    out: dict[str, int] = {}
    for node in nodes:
        pid = _holder_pid(layout, node)
        if pid is None:
            tree = node_tree(layout, node)
            proc = subprocess.Popen(command_line(tree, ["sleep", "infinity"]), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            pid = proc.pid
            with open(layout.holder_file(node), "w") as f:
                f.write(f"{pid}\n{tree}\n")
        out[node] = pid
    # unshare execs sh, which execs sleep: the pid is the holder once the bind mount is made
    for node, pid in out.items():
        for _ in range(500):
            if _holder_pid(layout, node) == pid:
                break
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not os.path.exists(f"/proc/{pid}"):
                raise LayoutError(f"the holder of {node} exited: is the node down? (lfafs fleet status)")
            time.sleep(0.01)
        else:
            raise LayoutError(f"the holder of {node} (pid {pid}) did not start")
    return out


def stop_holders(layout: Layout, nodes: list[str] | None = None) -> int:
    """Kill the holders of ``nodes`` (all by default); how many were running."""
    if not os.path.isdir(layout.holders_dir):
        return 0
    names = nodes if nodes is not None else [n[:-4] for n in os.listdir(layout.holders_dir) if n.endswith(".pid")]
    stopped = 0
    for node in names:
        pid = _holder_pid(layout, node)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                stopped += 1
            except ProcessLookupError:
                pass
        try:
            os.unlink(layout.holder_file(node))
        except FileNotFoundError:
            pass
    return stopped


