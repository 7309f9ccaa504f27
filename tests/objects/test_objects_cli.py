"""``pypaxos check-machine``, and the object bugs' place in the planted-bug registry."""

from __future__ import annotations

import pytest

from pypaxos.cli.main import main
from pypaxos.core.bugs import SynodBug
from pypaxos.kv.bugs import KvBug
from pypaxos.multi.bugs import LogBug
from pypaxos.objects.bugs import ObjectBug

COUNTER = ["check-machine", "pypaxos.objects:Counter", "--workload", "objects_workloads:counter"]


def test_a_correct_class_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*COUNTER, "--seeds", "2", "--no-replay"]) == 0
    assert "2 seeds, 0 with a violation" in capsys.readouterr().err


def test_a_planted_bug_fails_with_the_command_that_replays_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*COUNTER, "--seeds", "3", "--no-replay", "--bug", "retry-runs-again"]) == 1
    out = capsys.readouterr().out
    replay = next(line for line in out.splitlines() if "replay: pypaxos check-machine" in line)
    seed = int(replay.split("--start ")[1].split()[0])
    argv = replay.split("replay: pypaxos ")[1].split()
    assert main(argv) == 1
    again = capsys.readouterr().out
    assert f"seed {seed}: VIOLATION" in again


@pytest.mark.parametrize(
    "argv",
    [
        [*COUNTER, "--bug", "small-quorum"],
        [*COUNTER, "--seeds", "0"],
        ["check-machine", "pypaxos.objects:Nothing", "--workload", "objects_workloads:counter"],
        ["check-machine", "pypaxos.objects:Counter", "--workload", "objects_workloads:KEYS"],
    ],
)
def test_bad_usage_is_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


def test_bug_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*COUNTER, "--bug", "list"]) == 0
    out = capsys.readouterr().out
    assert all(bug.value in out for bug in ObjectBug)


def test_object_bug_names_are_unique_across_every_family() -> None:
    names = [bug.value for family in (SynodBug, LogBug, KvBug, ObjectBug) for bug in family]
    assert len(names) == len(set(names))


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check-machine", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ["--workload", "--seeds", "--bug", "--no-replay", "--no-faults"]:
        assert option in out
