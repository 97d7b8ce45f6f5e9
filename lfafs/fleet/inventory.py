"""An Ansible inventory of emulated nodes, reached with the ``community.docker.nsenter`` connection.

Each host is a node id; ``ansible_nsenter_pid`` is the pid of the node's
holder (namespaces.py), so a task runs with the node's tree as
/sys/firmware, and no SSH or container per node is needed. Groups: one per
cohort and one per label value (``model_vera``, ``rack_r1``), so a play can
target ``hosts: model_vera:&rack_r1``; every label is also a host
variable, under ``lfafs_labels``.

The connection plugin needs the controller on the host as root (or in a
privileged container with ``--pid host``). Pure: nodes in, text out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

CONNECTION = "community.docker.nsenter"
_GROUP = re.compile(r"[^A-Za-z0-9_]")


def group_name(key: str, value: str | None = None) -> str:
    """An Ansible group name (letters, digits, underscores; not starting with a digit)."""
    name = _GROUP.sub("_", key if value is None else f"{key}_{value}")
    return name if not name[0].isdigit() else f"g_{name}"


def _groups(labels: Mapping[str, str]) -> list[str]:
    skip = ("node", "shard")
    return [group_name(labels["cohort"])] + [group_name(k, v) for k, v in sorted(labels.items())
                                              if k not in skip and k != "cohort"]


def as_dict(nodes: list[tuple[str, Mapping[str, str], int]], *, python: str = "/usr/bin/python3") -> dict:
    """The YAML inventory structure (Ansible's yaml plugin reads it as JSON too)."""
    children: dict[str, dict] = {}
    hosts: dict[str, dict] = {}
    for node, labels, pid in nodes:
        hosts[node] = {"ansible_nsenter_pid": pid, "lfafs_labels": dict(labels)}
        for g in _groups(labels):
            children.setdefault(g, {"hosts": {}})["hosts"][node] = None
    return {"all": {"vars": {"ansible_connection": CONNECTION, "ansible_python_interpreter": python},
                    "hosts": hosts, "children": dict(sorted(children.items()))}}


def as_json(nodes: list[tuple[str, Mapping[str, str], int]], **kw) -> str:
    return json.dumps(as_dict(nodes, **kw), indent=1)


def as_ini(nodes: list[tuple[str, Mapping[str, str], int]], *, python: str = "/usr/bin/python3") -> str:
    lines = ["# lfafs fleet inventory: one host per emulated node, entered with nsenter",
             "[all:vars]", f"ansible_connection={CONNECTION}", f"ansible_python_interpreter={python}", ""]
    groups: dict[str, list[str]] = {}
    for node, labels, pid in nodes:
        for g in _groups(labels):
            groups.setdefault(g, []).append(f"{node} ansible_nsenter_pid={pid}")
    for g, members in sorted(groups.items()):
        lines.append(f"[{g}]")
        lines.extend(members)
        lines.append("")
    return "\n".join(lines)
