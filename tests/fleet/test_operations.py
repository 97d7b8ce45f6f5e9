"""The shard's FUSE operations route /nodes/<id>/... to that node's tree, unchanged below it."""

import errno

import mfusepy
import pytest

from lfafs.fleet.operations import ROUTED, FleetOps


class FakeNodeOps:
    def __init__(self, name):
        self.name = name
        self.calls = []

    def __getattr__(self, op):
        def call(*args):
            self.calls.append((op, *args))
            return (self.name, op, args)
        return call


def ops_for(**nodes):
    def node_ops(node_id):
        return nodes[node_id]  # KeyError: unknown; None: down
    return FleetOps(node_ops, lambda: list(nodes))


def fails(errnum, fn, *args):
    with pytest.raises(mfusepy.FuseOSError) as e:
        fn(*args)
    assert e.value.errno == errnum


def test_the_prefix_is_stripped_and_the_node_s_own_operation_answers():
    a, b = FakeNodeOps("a"), FakeNodeOps("b")
    ops = ops_for(a=a, b=b)
    assert ops.read("/nodes/b/lfa/g/name", 4096, 0, None) == ("b", "read", ("/lfa/g/name", 4096, 0, None))
    assert ops.getattr("/nodes/a") == ("a", "getattr", ("/", None))
    assert ops.readdir("/nodes", None) == [".", "..", "a", "b"]
    assert ops.readdir("/", None) == [".", "..", "nodes"]
    assert ops.getattr("/nodes")["st_mode"] & 0o040000
    assert ops.rename("/nodes/a/lfa/x", "/nodes/a/lfa/y") == ("a", "rename", ("/lfa/x", "/lfa/y"))
    assert {"getattr", "open", "read", "write", "readdir", "truncate", "chmod"} <= set(ROUTED)


def test_unknown_down_and_cross_node_paths_fail_as_a_kernel_would():
    ops = ops_for(a=FakeNodeOps("a"), d=None)
    fails(errno.ENOENT, ops.getattr, "/nodes/zz")
    fails(errno.ENOENT, ops.getattr, "/elsewhere")
    fails(errno.EHOSTDOWN, ops.getattr, "/nodes/d/lfa")
    fails(errno.EHOSTDOWN, ops.open, "/nodes/d/lfa/g/activate", None)
    ops = ops_for(a=FakeNodeOps("a"), b=FakeNodeOps("b"))
    fails(errno.EXDEV, ops.rename, "/nodes/a/lfa/x", "/nodes/b/lfa/x")
    fails(errno.EPERM, ops.chmod, "/nodes", 0o700)
    fails(errno.EISDIR, ops.open, "/", None)
    fails(errno.EACCES, ops.mkdir, "/new", 0o755)
    assert ops.listxattr("/") == []
