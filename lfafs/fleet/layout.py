"""Where a fleet lives under its root directory, on one machine or in one pod.

::

    <root>/fleet.json            the description, the shard count, the endpoints, the supervisor's pid
    <root>/shards/<i>/           shard i's FUSE mount: nodes/<id>/ is that node's /sys/firmware
    <root>/nodes/<id>            a symbolic link to shards/<i>/nodes/<id>: every node, whoever serves it
    <root>/run/shard-<i>.sock    shard i's control socket (unix:...)
    <root>/run/shard-<i>.events.jsonl, shard-<i>.log, supervisor.log, shards.json
    <root>/holders/<id>.pid      the holder process of a node's namespace (for Ansible's nsenter)

Pure: paths only.
"""

from __future__ import annotations

import json
import os

import attrs

FLEET_FILE = "fleet.json"
FORMAT = 1
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class LayoutError(RuntimeError):
    """A root that cannot hold a fleet, or holds none: a sentence with what to do."""


@attrs.frozen
class Layout:
    root: str = attrs.field(converter=os.path.abspath)

    @property
    def fleet_file(self) -> str:
        return os.path.join(self.root, FLEET_FILE)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def nodes_dir(self) -> str:
        return os.path.join(self.root, "nodes")

    @property
    def holders_dir(self) -> str:
        return os.path.join(self.root, "holders")

    def shard_mount(self, i: int) -> str:
        return os.path.join(self.root, "shards", str(i))

    def shard_socket(self, i: int) -> str:
        return os.path.join(self.run_dir, f"shard-{i}.sock")

    def shard_endpoint(self, i: int) -> str:
        return "unix:" + self.shard_socket(i)

    def events_file(self, i: int) -> str:
        return os.path.join(self.run_dir, f"shard-{i}.events.jsonl")

    def log_file(self, i: int) -> str:
        return os.path.join(self.run_dir, f"shard-{i}.log")

    def node_link(self, node: str) -> str:
        return os.path.join(self.nodes_dir, node)

    def node_target(self, shard: int, node: str) -> str:
        """What nodes/<id> points at, relative to nodes/."""
        return os.path.join("..", "shards", str(shard), "nodes", node)

    def holder_file(self, node: str) -> str:
        return os.path.join(self.holders_dir, f"{node}.pid")

    def check_socket_paths(self, shards: int) -> None:
        longest = self.shard_socket(shards - 1)
        if len(longest.encode()) > UNIX_PATH_MAX:
            raise LayoutError(f"{longest} is too long for a Unix socket ({len(longest)} bytes, at most "
                              f"{UNIX_PATH_MAX}): choose a shorter --root")

    def read(self) -> dict:
        """fleet.json; LayoutError if no fleet was brought up here."""
        try:
            with open(self.fleet_file) as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise LayoutError(f"no fleet at {self.root} (no {FLEET_FILE}): bring one up with "
                              f"lfafs fleet up FLEET.toml --root {self.root}") from None
        except (OSError, ValueError) as e:
            raise LayoutError(f"{self.fleet_file} cannot be read: {e}") from None
        if doc.get("format") != FORMAT:
            raise LayoutError(f"{self.fleet_file}: unknown format {doc.get('format')!r}")
        return doc

    def write(self, doc: dict) -> None:
        tmp = f"{self.fleet_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"format": FORMAT, **doc}, f, indent=1)
        os.replace(tmp, self.fleet_file)
