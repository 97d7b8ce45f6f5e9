"""The fleet description: checked with errors naming file and field; nodes follow from file and seed."""

import pytest

from lfafs.fleet.description import DescriptionError, from_dict, load
from lfafs.fleet.roster import Roster

BASE = {"fleet": {"seed": 7, "shards": 3},
        "cohort": [{"name": "vera", "count": 10, "kernel_abi": {"nvidia-v3": 1, "nvidia-v1": 1},
                    "labels": {"model": "vera", "rack": ["r1", "r2"]},
                    "versions": {"rmm": {"0.9": 1, "0.8": 1}},
                    "update": [{"component": "rmm", "version": "1.0", "ratio": 0.5}]},
                   {"name": "grace", "count": 5, "id": "g{index}"}]}


def test_nodes_ids_labels_and_shards_follow_from_the_description():
    r = Roster(from_dict(BASE), None)
    assert [n.id for n in r.nodes] == [f"vera-{i:04d}" for i in range(10)] + [f"g{i}" for i in range(5)]
    assert r.nodes[1].labels["rack"] == "r2" and r.nodes[2].labels["rack"] == "r1"
    assert r.nodes[0].labels["cohort"] == "vera" and r.nodes[0].labels["node"] == "vera-0000"
    assert [len(r.slice(i)) for i in range(3)] == [5, 5, 5]
    assert r.shard_of("g0") == 2 and r.nodes[-1].labels["shard"] == "2"
    assert sum(bool(n.updates) for n in r.nodes) == 5


def test_every_random_choice_is_the_same_for_the_same_seed_and_changes_with_it():
    def choices(seed):
        r = Roster(from_dict({**BASE, "fleet": {"seed": seed}}))
        return [(n.abi, n.versions, bool(n.updates)) for n in r.nodes]

    assert choices(7) == choices(7)
    assert choices(7) != choices(8)
    assert {abi for abi, _, _ in choices(7)[:10]} == {"nvidia-v3", "nvidia-v1"}


def test_a_shard_owns_a_fixed_slice_whatever_the_count():
    r = Roster(from_dict({"cohort": [{"name": "n", "count": 10}]}), 4)
    slices = [[n.index for n in r.slice(i)] for i in range(4)]
    assert slices == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert all(r.shard_of_index(i) == s for s, sl in enumerate(slices) for i in sl)


@pytest.mark.parametrize("change, field, words", [
    ({"cohort": []}, "cohort", "at least one"),
    ({"cohort": [{"name": "x"}]}, "cohort[0].count", "missing"),
    ({"cohort": [{"name": "x", "count": 0}]}, "cohort[0].count", "1.."),
    ({"cohort": [{"name": "X", "count": 1}]}, "cohort[0].name", "lower-case"),
    ({"cohort": [{"name": "x", "count": 1, "kernel_abi": "v9"}]}, "cohort[0].kernel_abi", "unknown kernel ABI"),
    ({"cohort": [{"name": "x", "count": 1, "kernel_abi": {"v1": 0}}]}, "cohort[0].kernel_abi.v1", "weight"),
    ({"cohort": [{"name": "x", "count": 1, "profile": "nope.toml"}]}, "cohort[0].profile", "bad profile"),
    ({"cohort": [{"name": "x", "count": 1, "versions": {"rmx": "1.0"}}]}, "cohort[0].versions.rmx", "no component"),
    ({"cohort": [{"name": "x", "count": 1, "versions": {"rmm": "one"}}]}, "cohort[0].versions.rmm", ""),
    ({"cohort": [{"name": "x", "count": 2, "id": "same"}]}, "cohort[0].id", "same id"),
    ({"cohort": [{"name": "x", "count": 1, "labels": {"node": "a"}}]}, "cohort[0].labels.node", "set by lfafs"),
    ({"cohort": [{"name": "x", "count": 1, "update": [{"component": "bl31", "version": "3.0",
                                                         "image": "incompatible"}]}]},
     "cohort[0].update[0].image", "RMM image"),
    ({"cohort": [{"name": "x", "count": 1}], "fault": [{"component": "rmm", "at": "prime"}]},
     "fault[0]", "needs a status"),
    ({"cohort": [{"name": "x", "count": 1}], "fault": [{"component": "rmm", "at": "later", "status": "LFA_BUSY"}]},
     "fault[0].at", "unknown stage"),
    ({"cohort": [{"name": "x", "count": 1}], "fault": [{"select": "a in", "component": "rmm", "at": "prime",
                                                        "status": "LFA_BUSY"}]}, "fault[0].select", "expected"),
    ({"cohort": [{"name": "x", "count": 1}], "fault": [{"component": "rmm", "at": "prime", "status": "LFA_BUSY",
                                                        "ratio": 2}]}, "fault[0].ratio", "0..1"),
    ({"cohort": [{"name": "x", "count": 1}], "fault": [{"component": "rmm", "at": "prime",
                                                        "latency": {"fixed": -1}}]}, "fault[0].latency", "seconds"),
    ({"cohort": [{"name": "x", "count": 1}], "extra": 1}, "extra", "unknown field"),
])
def test_an_error_names_the_file_and_the_field(change, field, words):
    with pytest.raises(DescriptionError) as e:
        from_dict(change, "lab.toml")
    assert e.value.source == "lab.toml" and e.value.field == field and words in e.value.problem


def test_a_fault_tf_a_cannot_produce_is_refused_with_its_rule(tmp_path):
    from lfafs.fleet.faults import check_description

    d = from_dict({"cohort": [{"name": "x", "count": 2}],
                   "fault": [{"component": "rmm", "at": "activate", "status": "LFA_BUSY"}]}, "lab.toml")
    with pytest.raises(DescriptionError) as e:
        check_description(Roster(d))
    assert e.value.field == "fault[0]" and "TF-A cannot return LFA_BUSY" in e.value.problem


def test_a_file_with_bad_syntax_names_the_file(tmp_path):
    p = tmp_path / "fleet.toml"
    p.write_text("[fleet\n")
    with pytest.raises(DescriptionError) as e:
        load(p)
    assert e.value.source == str(p) and e.value.field == "(syntax)"
    with pytest.raises(DescriptionError) as e:
        load(tmp_path / "missing.toml")
    assert "cannot read it" in str(e.value)


def test_a_profile_file_is_found_next_to_the_description(tmp_path):
    (tmp_path / "small.toml").write_text('base = "fvp-den0147"\nname = "small"\ncpus = 2\n')
    (tmp_path / "fleet.toml").write_text('[[cohort]]\nname = "s"\ncount = 1\nprofile = "small.toml"\n')
    r = Roster(load(tmp_path / "fleet.toml"))
    assert r.nodes[0].labels["profile"] == "small"
