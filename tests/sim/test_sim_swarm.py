"""Swarm testing in ``pypaxos sim synod``: each seed draws its own deployment and fault mix.

The draw depends on the seed alone and pins what the command line gives; with no tuning at
all the default command catches every planted bug within a few hundred seeds, and its printed
replay command reproduces the violation; correct code stays clean on the same seeds.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest

from pypaxos.cli.main import main
from pypaxos.core.bugs import SynodBug
from pypaxos.sim.synod import MESSAGE_KINDS, SynodSettings, SynodWorld, run_synod, swarm_settings

SEEDS_MAX = 500  # "within a few hundred seeds"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(argv)
    return status, capsys.readouterr().out.splitlines()


def test_the_mix_depends_on_the_seed_alone() -> None:
    base = SynodSettings()
    assert swarm_settings(base, 7) == swarm_settings(base, 7)
    assert len({swarm_settings(base, seed) for seed in range(20)}) == 20
    with_bug = swarm_settings(replace(base, bugs=frozenset({SynodBug.SMALL_QUORUM})), 7)
    assert replace(with_bug, bugs=frozenset()) == swarm_settings(base, 7)


def test_the_same_seed_gives_the_same_report_byte_for_byte() -> None:
    first = run_synod(swarm_settings(SynodSettings(), 11), 11, trace=True)
    second = run_synod(swarm_settings(SynodSettings(), 11), 11, trace=True)
    assert "\n".join(first.report_lines()).encode() == "\n".join(second.report_lines()).encode()
    assert len(first.trace) > 20


def test_each_fault_kind_is_off_in_some_seeds_and_on_in_others() -> None:
    mixes = [swarm_settings(SynodSettings(), seed) for seed in range(200)]
    for name in ("drop", "dup", "crash", "crash_after_handle"):
        values = [getattr(mix, name) for mix in mixes]
        assert 0.0 in values and any(value > 0.0 for value in values), name
    assert {mix.partition for mix in mixes} == {"", "random"}
    assert {mix.proposers for mix in mixes} == set(range(1, 8))
    assert {mix.acceptors for mix in mixes} == {3, 5}
    assert {mix.crash_roles for mix in mixes} == {"PAL", "PA", "P", "A"}
    assert {mix.crash_points for mix in mixes} == {"", *MESSAGE_KINDS}
    assert len({mix.delay_max_ticks for mix in mixes}) > 10
    assert len({mix.fault_ticks for mix in mixes}) > 100


def test_a_pinned_dimension_holds_for_every_seed_and_the_rest_is_drawn_as_before() -> None:
    pinned = replace(SynodSettings(), drop=0.2)
    for seed in range(50):
        free = swarm_settings(SynodSettings(), seed)
        fixed = swarm_settings(pinned, seed, frozenset({"drop"}))
        assert fixed.drop == 0.2
        assert replace(fixed, drop=free.drop) == free


def test_a_fixed_partition_pins_the_deployment_its_groups_name() -> None:
    base = replace(SynodSettings(), partition="A1,P1/A2,A3,P2")
    for seed in range(30):
        mix = swarm_settings(base, seed, frozenset({"partition"}))
        assert (mix.proposers, mix.acceptors, mix.learners) == (2, 3, 2)
        assert mix.partition == "A1,P1/A2,A3,P2"


def test_a_pinned_option_on_the_command_line_pins_every_seed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines = run_cli(
        [
            "sim",
            "synod",
            "--seeds",
            "40",
            "--keep-going",
            "--bug",
            "ignore-promised-values",
            "--dup",
            "0.25",
        ],
        capsys,
    )
    assert status == 1
    replays = [line for line in lines if line.startswith("  replay: ")]
    assert len(replays) > 5
    for line in replays:
        words = shlex.split(line.removeprefix("  replay: "))
        assert words[words.index("--dup") + 1] == "0.25"
    assert len({shlex.split(line)[4] for line in replays}) > 1  # --proposers N still drawn


def test_correct_code_is_clean_on_the_default_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli(["sim", "synod", "--seeds", "300"], capsys)
    assert status == 0
    assert lines[-1].startswith("300 seed(s) run, 0 violation(s), ")


@pytest.mark.parametrize("bug", [b.value for b in sorted(SynodBug)])
def test_the_default_command_catches_each_planted_bug_and_its_replay_reproduces_it(
    bug: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = run_cli(["sim", "synod", "--seeds", str(SEEDS_MAX), "--bug", bug], capsys)
    assert status == 1, f"{bug} not caught in {SEEDS_MAX} default seeds"
    report = next(line for line in lines if line.startswith("seed "))
    seed = int(report.split()[1].rstrip(":"))
    violation = report.split(": ", 1)[1]
    replay = next(line for line in lines if line.startswith("  replay: "))
    argv = shlex.split(replay.removeprefix("  replay: "))
    assert argv[:2] == ["pypaxos", "synod"] and argv[-2:] == ["--seed", str(seed)]
    replay_status, replay_lines = run_cli(argv[1:], capsys)
    assert replay_status == 1
    assert replay_lines[-1] == f"VIOLATION: {violation}"
    # The seed's own draw, asked for by seed alone, is the same run.
    again_status, again_lines = run_cli(
        ["synod", "--swarm", "--seed", str(seed), "--bug", bug], capsys
    )
    assert again_status == 1
    assert again_lines == replay_lines
    clean = run_synod(swarm_settings(SynodSettings(), seed), seed)
    assert clean.violation is None, f"seed {seed} fails without {bug} too"


@pytest.mark.parametrize(
    ("bug", "seed", "words"),
    [
        ("proposer-forgets-ballot", 0, "a proposer's ballots must only grow"),
        ("forget-promise-on-restart", 13, "an acceptor's promise must only grow"),
        ("ignore-promised-values", 0, "(P2c)"),
    ],
)
def test_an_invariant_break_names_the_invariant(bug: str, seed: int, words: str) -> None:
    settings = swarm_settings(SynodSettings(bugs=frozenset({SynodBug(bug)})), seed)
    violation = run_synod(settings, seed).violation
    assert violation is not None
    assert violation.kind == "invariant"
    assert words in violation.message


def test_a_broken_invariant_lets_the_run_go_on_to_the_safety_violation() -> None:
    # Seed 2 of this bug breaks P2c first and agreement later: the run reports agreement.
    settings = swarm_settings(SynodSettings(bugs=frozenset({SynodBug.IGNORE_PROMISED_VALUES})), 2)
    world = SynodWorld(settings, 2)
    result = world.run()
    assert world.invariant is not None and result.violation is not None
    assert result.violation.kind == "safety"
    assert world.invariant.step < result.violation.step
