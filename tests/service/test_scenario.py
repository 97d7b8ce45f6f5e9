"""Scenario files: every error names file, line and field; a scenario applies through the
Platform's public API; PRIME-counted and timed events run when they say."""

from __future__ import annotations

import textwrap

import pytest
import trio
import trio.testing

from lfafs.platform import Platform
from lfafs.service import scenario as sc
from lfafs.smccc import Fid


def write(tmp_path, text: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(tmp_path, text: str, **flags) -> str:
    path = write(tmp_path, text)
    why = sc.check(sc.Sources(path, **flags))
    assert why is not None
    return why.replace(path, "FILE")


@pytest.mark.parametrize("text, expected", [
    ('profile = "fvp"\nwhatever = 1\n', "FILE:2: whatever: unknown field (known: description, profile, cpus_off"),
    ('[[stage]]\ncomponent = "rmm"\nverison = "1.2"\n',
     "FILE:3: stage[0].verison: unknown field for stage (known: component, version, image)"),
    ('[[stage]]\ncomponent = "rmm"\nversion = 12\n', "FILE:3: stage[0].version: expected str, got 12"),
    ('[[stage]]\ncomponent = "rmm"\nversion = "1.x"\n',
     "FILE:3: stage[0].version: expected a version MAJOR.MINOR, got '1.x'"),
    ('[[stage]]\ncomponent = "nope"\nversion = "1.0"\n', "FILE:2: stage[0].component: unknown component 'nope'"),
    ('[[stage]]\ncomponent = "rmm"\nimage = "missing.img"\n', "FILE:3: stage[0].image: cannot read"),
    ('[[fault]]\ncomponent = "rmm"\nat = "activate"\nstatus = "LFA_BUSY"\n',
     "FILE:4: fault[0].status: TF-A cannot return LFA_BUSY from the activate stage of a rmm component"),
    ('[[fault]]\ncomponent = "rmm"\nat = "later"\n', "FILE:3: fault[0].at: 'later' is not one of load, prime"),
    ('[[fault]]\nat = "load"\nstatus = "LFA_AUTH_ERROR"\n', "FILE:1: fault[0]: component is required for fail"),
    ('cpus_off = [0, 1, 2, 3]\n', "FILE: cpus_off: CPU 3 is the last one running"),
    ('cpus_off = "3"\n', "FILE:1: cpus_off: expected a list of CPU numbers"),
    ('[[event]]\naction = "notify"\n', "FILE:1: event[0]: give exactly one of after = SECONDS or before_prime = N"),
    ('[[event]]\nafter = -1\naction = "notify"\n', "FILE:2: event[0].after: expected seconds in [0, 86400]"),
    ('[[event]]\nafter = 1\naction = "explode"\n', "FILE:3: event[0].action: 'explode' is not one of stage"),
    ('[[event]]\nbefore_prime = 2\naction = "notify"\n', "FILE:3: event[0].action: before a PRIME only stage"),
    ('[[event]]\nafter = 1\naction = "cpu"\ncpu = 9\non = false\n',
     "FILE:4: event[0].cpu: no CPU 9: this platform has CPUs 0..3"),
    ('profile = "nope"\n', "FILE:1: profile: nope: profile: no such file, and not an embedded profile"),
    ('[profile]\nbase = "fvp"\ncpus = "x"\n', "FILE:3: profile.cpus: expected int, got 'x'"),
    ('[[stage]\n', "FILE: not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 8)"),
])
def test_every_error_names_file_line_and_field(tmp_path, text, expected):
    assert error_of(tmp_path, text).startswith(expected)


def test_flags_get_the_same_checks_named_by_the_flag(tmp_path):
    assert sc.check(sc.Sources(stage=("rmm=1.x",))).startswith("--stage rmm=1.x: version: expected a version")
    assert sc.check(sc.Sources(fail=("rmm:load:nonsense",))).startswith(
        "--fail rmm:load:nonsense: status: unknown LFA status 'nonsense'")
    assert sc.check(sc.Sources(fail=("rmm:load:call-again=x",))).startswith(
        "--fail rmm:load:call-again=x: 'call-again=x' is not a status")


def test_the_command_lines_profile_wins_over_the_scenarios(tmp_path):
    path = write(tmp_path, 'profile = "fvp"\n')
    assert sc.load(path).profile.name == "fvp"
    assert sc.load(path, profile="fvp-den0147").profile.name == "fvp-den0147"
    assert sc.Sources().load().profile.name == "fvp-den0147"  # the default


def test_an_inline_profile_and_a_profile_file_beside_the_scenario(tmp_path):
    inline = write(tmp_path, '[profile]\nbase = "fvp"\nname = "mine"\ncpus = 2\n')
    assert (sc.load(inline).profile.name, sc.load(inline).profile.cpus) == ("mine", 2)
    write(tmp_path, 'base = "fvp"\nname = "beside"\n', name="p.toml")
    assert sc.load(write(tmp_path, 'profile = "p.toml"\n', name="t.toml")).profile.name == "beside"


def test_a_scenario_applies_its_state_through_the_platform(tmp_path):
    image_dir = tmp_path / "imgs"
    image_dir.mkdir()
    p0 = Platform.from_profile()
    (image_dir / "sp1.img").write_bytes(p0.port.image_for(p0.component("sp1"), (2, 1)))
    path = write(tmp_path, """\
        cpus_off = [3]
        [[stage]]
        component = "rmm"
        version = "1.2"
        [[stage]]
        component = "sp1"
        image = "imgs/sp1.img"
        [[fault]]
        component = "rmm"
        at = "load"
        status = "LFA_AUTH_ERROR"
        once = true
        """)
    scenario = sc.Sources(path, stage=("bl31=2.16",), fail=("sp2:prime:LFA_BUSY",)).load()
    p = scenario.new_platform()
    scenario.apply(p)
    assert tuple(p.component("rmm").staged_version) == (1, 2)
    assert tuple(p.component("sp1").staged_version) == (2, 1)
    assert tuple(p.component("bl31").staged_version) == (2, 16)
    assert [f.describe() for f in p.faults.listing(p.component("rmm").index)] == ["load: LFA_AUTH_ERROR (once)"]
    assert [f.describe() for f in p.faults.listing(p.component("sp2").index)] == ["prime: LFA_BUSY"]
    assert p.cpu_on == [True, True, True, False]


class _Conduit:
    def __init__(self, seen):
        self.seen = seen

    async def smc(self, cpu, fid, x1=0, x2=0, x3=0, x4=0):
        self.seen.append((fid, x1))
        return (0, 0, 0, 0, 0, 0)

    def online_cpus(self):
        return [0]


async def test_a_before_prime_event_runs_just_before_the_nth_prime_of_its_component(tmp_path):
    path = write(tmp_path, """\
        [[event]]
        before_prime = 3
        action = "fail"
        component = "rmm"
        at = "prime"
        status = "LFA_BUSY"
        """)
    scenario = sc.load(path)
    p = scenario.new_platform()
    log: list[str] = []
    conduit = scenario.start(p, log.append).watch(_Conduit([]))
    rmm, sp1 = p.component("rmm").index, p.component("sp1").index
    await conduit.smc(0, Fid.LFA_PRIME, sp1)  # another component's PRIME does not count
    for n in (1, 2):
        await conduit.smc(0, Fid.LFA_PRIME, rmm)
        assert p.faults.listing(rmm) == [], n
    await conduit.smc(0, Fid.LFA_GET_INVENTORY, rmm)
    assert p.faults.listing(rmm) == []
    await conduit.smc(0, Fid.LFA_PRIME, rmm)
    assert [f.describe() for f in p.faults.listing(rmm)] == ["prime: LFA_BUSY"]
    assert "before PRIME #3: fail component=rmm at=prime status=LFA_BUSY" in log[-1]


class _Driver:
    def __init__(self):
        self.notified: list[float] = []

    async def notify(self):
        self.notified.append(trio.current_time())

    async def update_fw_images_tree(self):
        return 0


def test_timed_events_run_on_the_daemons_clock(tmp_path):
    path = write(tmp_path, """\
        [[event]]
        after = 2.5
        action = "notify"
        [[event]]
        after = 1
        action = "cpu"
        cpu = 2
        on = false
        """)
    scenario = sc.load(path)
    p = scenario.new_platform()
    driver = _Driver()
    seen = {}

    async def main():
        run = scenario.start(p, lambda line: None)
        async with trio.open_nursery() as n:
            n.start_soon(run.timed, driver)
            await trio.sleep(0.9)
            seen["before"] = list(p.cpu_on)
            await trio.sleep(0.2)
            seen["after"] = list(p.cpu_on)

    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(main, clock=clock)
    assert seen == {"before": [True] * 4, "after": [True, True, False, True]}
    assert driver.notified == [pytest.approx(2.5)]  # the mock clock starts at 0 with the events
