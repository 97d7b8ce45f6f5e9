"""Bad input of every kind: one line on stderr naming the command, a non-zero status, no traceback."""

import pytest

from .conftest import fleet_cli

GOOD = '[[cohort]]\nname = "n"\ncount = 2\n'


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text('[[cohort]]\nname = "n"\ncount = "two"\n')
    (tmp_path / "broken.toml").write_text("[[cohort]\n")
    (tmp_path / "events.jsonl").write_text('{"kind": "x", "t": 1}\nnot json\n')
    return tmp_path


CASES = [
    (["plan", "{d}/missing.toml"], "cannot read it"),
    (["plan", "{d}/bad.toml"], "cohort[0].count: expected int"),
    (["plan", "{d}/broken.toml"], "(syntax)"),
    (["plan", "{d}/good.toml", "--shards", "9"], "9 shards for 2 nodes"),
    (["plan", "{d}/good.toml", "--rule", "fault[3]"], "no rule 'fault[3]'"),
    (["status", "--root", "{d}/nowhere"], "no fleet at"),
    (["status", "--endpoint", "udp:1"], "give unix:PATH or tcp:HOST:PORT"),
    (["status", "--endpoint", "tcp:127.0.0.1:9"], "no shard answers at tcp:127.0.0.1:9"),
    (["status", "--service", "nohost"], "give HOST:PORT"),
    (["status", "--root", "{d}", "--select", "a in ("], "expected"),
    (["check", "--events", "{d}/events.jsonl"], "give at least one invariant"),
    (["check", "--events", "{d}/events.jsonl", "--max-in-flight", "2"], "line 2: not JSON"),
    (["check", "--events", "{d}/none.jsonl", "--max-in-flight", "2"], "none.jsonl"),
    (["check", "--events", "{d}/events.jsonl", "--max-in-flight", "0"], "max_in_flight must be a count >= 1"),
    (["run", "--root", "{d}", "--node", "n-0000"], "give a command after --"),
    (["run", "--root", "{d}", "--", "true"], "give --node ID or --each SELECTOR"),
    (["run", "--root", "{d}/nowhere", "--node", "x", "--", "true"], "no fleet at"),
    (["down", "--root", "{d}/nowhere"], "no fleet at"),
    (["shard", "{d}/good.toml", "--index", "5"], "no shard 5"),
    (["ctl", "--root", "{d}/nowhere", "--select", "x", "shutdown"], "takes no selector"),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_and_status_1(files, argv, words):
    r = fleet_cli(*[a.format(d=files) for a in argv])
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lfafs fleet {argv[0]}: ") and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_a_usage_error_is_argparse_s_status_2(files):
    r = fleet_cli("ctl", "--root", str(files), "fail", "rmm")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--at" in r.stderr
