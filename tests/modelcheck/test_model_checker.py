"""The exhaustive model checker: the correct code is safe in every reachable state, a decision
is reachable (the check is not vacuous), and planted bugs are caught with a shortest trace."""

from __future__ import annotations

import pytest

from pypaxos.cli.main import main
from pypaxos.core import SynodBug, SynodConfig
from pypaxos.modelcheck.search import ExploreOptions, explore, render_trace


def options(
    bug: SynodBug | None = None, max_crashes: int = 0, max_ballot: int = 0
) -> ExploreOptions:
    bugs = frozenset() if bug is None else frozenset({bug})
    config = SynodConfig(proposers=2, acceptors=3, learners=1, bugs=bugs)
    return ExploreOptions(config, max_ballot=max_ballot, max_crashes=max_crashes)


@pytest.mark.timeout(900)
def test_two_proposers_three_acceptors_with_a_crash_is_safe_and_decides() -> None:
    result = explore(options(max_crashes=1))
    assert result.violation is None
    assert result.decision_reached
    assert result.decision_trace is not None
    # The shortest decision: propose, 2 promises, 2 accepts and the learner's decision.
    assert len(result.decision_trace) <= 9
    assert result.states > 10_000  # the crash and both proposers were really explored


# Each bug with the smallest bounds that expose it: (bug, crashes allowed, shortest trace length)
CAUGHT = [
    (SynodBug.ACCEPT_BELOW_PROMISE, 0, 14),
    (SynodBug.IGNORE_PROMISED_VALUES, 0, 14),
    (SynodBug.LEARNER_COUNTS_DUPLICATES, 0, 8),
    (SynodBug.LEARNER_MIXES_BALLOTS, 0, 14),
    (SynodBug.PROMISE_ANY_BALLOT, 0, 14),
    (SynodBug.FORGET_PROMISE_ON_RESTART, 1, 15),
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("bug", "crashes", "shortest"), CAUGHT, ids=[c[0].value for c in CAUGHT])
def test_planted_bug_is_caught_with_a_shortest_trace(
    bug: SynodBug, crashes: int, shortest: int
) -> None:
    result = explore(options(bug, max_crashes=crashes))
    assert result.violation is not None, f"{bug} was not caught"
    # Breadth-first: no shorter execution reaches a violation, and the trace is that long.
    assert len(result.violation.trace) == shortest
    assert result.violation.problems
    lines = render_trace(result.violation.trace)
    assert lines[0].lstrip().startswith("1. P") and "proposes" in lines[0]


def test_cli_reports_states_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "synod", "--proposers", "1", "--max-ballot", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "states explored:" in out and "states/s" in out and "no violation" in out
    bug = ["check", "synod", "--max-ballot", "0", "--max-crashes", "0", "--quiet"]
    assert main([*bug, "--bug", "learner-counts-duplicates"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION" in out and "shortest trace (8 steps)" in out
    assert main(["check", "synod", "--bug", "no-such-bug"]) == 2
    assert "unknown bug" in capsys.readouterr().err
    assert main(["check", "synod", "--bug", "list"]) == 0
    assert "accept-below-promise" in capsys.readouterr().out
