"""The C core against the reference model, with random operation sequences.

After every step: the returned VA or error, every L3 descriptor of the
context, the TLBI count and the longest free run must agree, the C core's
own check() must pass, and TF-RMM's scan must pick the VA the bitmap picks.
Batches run against the model one element at a time, stopping at the first
error.  CI runs 150 sequences of up to 100 steps, at least 10,000 steps
(checked by the last test of this file)."""

from __future__ import annotations

import os
import struct

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lfafs.xlat import PAGE, Attr, Memory, Region, XlatBatchError, XlatError

from .conftest import Layout
from .model import Model, ModelError

PAGES = 1536  # three L3 tables
STEPS = [0]  # invariant checks run: one per step plus one per sequence
VA_SIZE = 1 << 30
STATIC_PA = 0x9000_0000
REGIONS = [
    Region.transient(0, 700 * PAGE),
    Region(va=700 * PAGE, pa=STATIC_PA, size=2 * PAGE, attr=Attr.RW_DATA, granularity=PAGE),
    Region.transient(702 * PAGE, 398 * PAGE),  # ends mid-table: pages 1100.. are invalid zeros
]
ATTRS = st.sampled_from([
    int(Attr.RW_DATA | Attr.REALM), int(Attr.RW_DEV | Attr.NS), int(Attr.RO_DATA | Attr.REALM),
    int(Attr.CODE), int(Attr.TRANSIENT), 1, 1 << 12,
])
SIZES = st.one_of(st.integers(1, 4), st.integers(5, 40), st.just(512), st.integers(0, 1200)).map(lambda n: n * PAGE)
ODD = st.sampled_from([0, 0, 0, 0, 0, 0, 1, 0x800])


def run_both(model_fn, c_fn, *args):
    try:
        expected = ("ok", model_fn(*args))
    except ModelError as e:
        expected = ("err", e.errno)
    try:
        got = ("ok", c_fn(*args))
    except XlatError as e:
        got = ("err", e.errno)
    assert got == expected, f"{c_fn.__name__}{tuple(hex(a) for a in args)}: C {got} model {expected}"
    return got


class Pool(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mem = Memory(4 << 20, base_pa=0x8000_0000)
        self.ctx = Layout(self.mem).context(REGIONS, va_size=VA_SIZE)
        self.mem.mmu_on = True
        self.model = Model(self.ctx.descriptors(0, PAGES), VA_SIZE)
        self.known: list[int] = []  # VAs handed out, to aim ranges at live entries

    def _va(self, data) -> int:
        if self.known and data.draw(st.booleans()):
            va = data.draw(st.sampled_from(self.known)) + data.draw(st.integers(0, 3)) * PAGE
        else:
            va = data.draw(st.integers(0, PAGES + 8)) * PAGE
        return va + data.draw(ODD)

    def _remember(self, result) -> None:
        if result[0] == "ok" and result[1] is not None:
            self.known.append(result[1])

    @rule(pa=st.integers(0, 1 << 20).map(lambda n: n * PAGE), size=SIZES, attr=ATTRS, odd=ODD)
    def map(self, pa, size, attr, odd):
        self._remember(run_both(self.model.map, self.ctx.map, pa + odd, size, attr))

    @rule(size=SIZES, odd=ODD)
    def reserve(self, size, odd):
        self._remember(run_both(self.model.reserve, self.ctx.reserve, size + odd))

    @rule(data=st.data(), size=SIZES)
    def unmap(self, data, size):
        run_both(self.model.unmap, self.ctx.unmap, self._va(data), size)

    @rule(data=st.data(), size=SIZES, attr=ATTRS, pa=st.integers(0, 1 << 20).map(lambda n: n * PAGE))
    def populate(self, data, size, attr, pa):
        run_both(self.model.populate, self.ctx.populate, self._va(data), pa, size, attr)

    @rule(data=st.data(), size=SIZES,
          op=st.sampled_from(["commit", "decommit", "depopulate", "unreserve"]))
    def range_op(self, data, size, op):
        run_both(getattr(self.model, op), getattr(self.ctx, op), self._va(data), size)

    @rule(data=st.data(), n=st.integers(1, 6), size=st.sampled_from([PAGE, PAGE, PAGE, 2 * PAGE, 600 * PAGE, 0]))
    def unmap_batch(self, data, n, size):
        vas = [self._va(data) for _ in range(n)]
        expected = (None, n)
        for i, va in enumerate(vas):
            try:
                self.model.unmap(va, size)
            except ModelError as e:
                expected = (e.errno, i)
                break
        try:
            self.ctx.unmap_batch(vas, size)
            got = (None, n)
        except XlatBatchError as e:
            got = (e.errno, len(e.done))
        assert got == expected, f"unmap_batch({[hex(v) for v in vas]}, {size:#x})"

    @rule(pas=st.lists(st.integers(0, 1 << 20).map(lambda n: n * PAGE), min_size=1, max_size=4),
          size=SIZES, attr=ATTRS, odd=ODD, policy=st.sampled_from(["bitmap", "scan"]))
    def map_batch(self, pas, size, attr, odd, policy):
        pas = [pas[0] + odd, *pas[1:]]
        expected: tuple = (None, [])
        for pa in pas:
            try:
                expected[1].append(self.model.map(pa, size, attr))
            except ModelError as e:
                expected = (e.errno, expected[1])
                break
        try:
            got: tuple = (None, list(self.ctx.map_batch(pas, size, attr, policy=policy)))
        except XlatBatchError as e:
            got = (e.errno, e.done)
        assert got == expected, f"map_batch({[hex(p) for p in pas]}, {size:#x}, policy={policy})"
        self.known.extend(got[1])

    @precondition(lambda self: self.known)
    @rule(data=st.data())
    def free_a_whole_allocation(self, data):
        va = data.draw(st.sampled_from(self.known))
        for op in ("decommit", "depopulate", "unreserve", "unmap"):
            run_both(getattr(self.model, op), getattr(self.ctx, op), va, PAGE)

    @invariant()
    def descriptors_agree(self):
        STEPS[0] += 1
        raw = self.ctx.descriptors_bytes(0, PAGES)
        assert raw == struct.pack(f"<{PAGES}Q", *self.model.entries)

    @invariant()
    def tfrmm_scan_agrees_with_the_bitmap(self):
        for pages in (1, 2, 3, 40):
            try:
                bitmap = self.ctx.find_va(pages * PAGE)
            except XlatError as e:
                bitmap = e.errno
            try:
                scan = self.ctx.find_va(pages * PAGE, policy="scan")
            except XlatError as e:
                scan = e.errno
            assert scan == bitmap, f"{pages} pages: scan {scan} bitmap {bitmap}"

    @invariant()
    def allocator_agrees(self):
        assert self.ctx.longest_free_run == self.model.longest_free_run()
        assert self.mem.tlbi.pages == self.model.tlbi_pages
        self.ctx.check()


Pool.TestCase.settings = settings(
    max_examples=int(os.environ.get("LFAFS_STATEFUL_EXAMPLES", "150")),
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPoolAgainstModel = Pool.TestCase


def test_stateful_run_was_long_enough():
    """Runs after TestPoolAgainstModel (file order): the CI budget is 10,000 steps.

    Hypothesis ends some sequences before stateful_step_count, hence 150
    sequences of up to 100 steps.  A reduced run (the sanitizer job sets
    LFAFS_STATEFUL_EXAMPLES) only has to have run at all.
    """
    examples = int(os.environ.get("LFAFS_STATEFUL_EXAMPLES", "150"))
    needed = 10_000 if examples >= 150 else examples
    assert STEPS[0] >= needed, f"only {STEPS[0]} steps were checked"
