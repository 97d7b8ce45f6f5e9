"""Label selectors read as Kubernetes reads them."""

import pytest

from lfafs.fleet.selector import SelectorError, parse

LABELS = {"model": "vera", "rack": "r2", "canary": "yes", "node": "vera-0001"}


@pytest.mark.parametrize("text, matches", [
    ("", True),
    ("model=vera", True),
    ("model==vera", True),
    ("model!=vera", False),
    ("model!=grace", True),
    ("rack in (r1, r2)", True),
    ("rack in (r1,r3)", False),
    ("rack notin (r3)", True),
    ("missing notin (x)", True),
    ("missing!=x", True),
    ("canary", True),
    ("!canary", False),
    ("!missing", True),
    ("model=vera,rack in (r1,r2)", True),
    ("model=vera, rack in (r3)", False),
    ("inventory", False),  # a key that starts like the operator 'in'
])
def test_a_selector_matches_as_kubernetes_does(text, matches):
    assert parse(text).matches(LABELS) is matches


@pytest.mark.parametrize("text, where", [
    ("model=vera,", "a label key"),
    ("rack in (r1", "',' or ')'"),
    ("rack in r1", "'('"),
    ("model=", None),
    ("=vera", "a label key"),
    ("model vera", "=, ==, !=, in, notin"),
    ("rack in ()", "at least one value"),
])
def test_a_bad_selector_says_where_and_what_was_expected(text, where):
    if where is None:  # an empty value is a value, as in Kubernetes
        assert parse(text).matches({"model": ""})
        return
    with pytest.raises(SelectorError) as e:
        parse(text)
    assert where in str(e.value) and repr(text) in str(e.value)
