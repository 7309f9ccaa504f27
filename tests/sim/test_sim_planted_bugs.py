"""Every planted bug that can break safety is caught by the simulator, and its seed replays.

Each entry gives fixed, hand-tuned settings under which the bug shows within a modest number
of seeds; the fault each one needs is part of its settings (crashes for the crash-recovery
bugs, duplicates for the counting bugs, several proposers and reordering for the ballot bugs).
That the default command, swarm testing with no tuning, catches them too is in
test_sim_swarm.py.  A seed is caught when it breaks safety or one of the invariants safety
rests on (``invariant``: ballots and promises only grow, P2b, P2c).
"""

from __future__ import annotations

import pytest

from pypaxos.core.bugs import SynodBug
from pypaxos.sim.steps import Crash
from pypaxos.sim.synod import SynodSettings, first_violation, run_synod


def hunt(bug: SynodBug, **settings: object) -> SynodSettings:
    return SynodSettings(bugs=frozenset({bug}), **settings)  # type: ignore[arg-type]


# bug -> (settings that expose it, how many seeds to try)
HUNTS: dict[SynodBug, tuple[SynodSettings, int]] = {
    SynodBug.ACCEPT_BELOW_PROMISE: (
        hunt(SynodBug.ACCEPT_BELOW_PROMISE, proposers=3, drop=0.1, dup=0.1),
        100,
    ),
    SynodBug.PROMISE_ANY_BALLOT: (
        hunt(SynodBug.PROMISE_ANY_BALLOT, proposers=3, drop=0.1, dup=0.1, crash=0.2),
        200,
    ),
    SynodBug.IGNORE_PROMISED_VALUES: (hunt(SynodBug.IGNORE_PROMISED_VALUES, drop=0.1), 20),
    SynodBug.ADOPT_FIRST_PROMISE: (
        hunt(
            SynodBug.ADOPT_FIRST_PROMISE,
            proposers=5,
            acceptors=5,
            drop=0.1,
            dup=0.1,
            delay_max_ticks=19,
        ),
        600,
    ),
    SynodBug.LEARNER_MIXES_BALLOTS: (
        hunt(
            SynodBug.LEARNER_MIXES_BALLOTS,
            proposers=3,
            drop=0.1,
            dup=0.05,
            crash=0.05,
            partition="random",
        ),
        300,
    ),
    SynodBug.LEARNER_COUNTS_DUPLICATES: (
        hunt(SynodBug.LEARNER_COUNTS_DUPLICATES, proposers=3, drop=0.1, dup=0.1, crash=0.2),
        300,
    ),
    SynodBug.REPLY_BEFORE_PERSIST: (
        hunt(SynodBug.REPLY_BEFORE_PERSIST, drop=0.2, dup=0.3, crash=0.3),
        300,
    ),
    SynodBug.SMALL_QUORUM: (hunt(SynodBug.SMALL_QUORUM, proposers=3, drop=0.1, dup=0.05), 50),
    SynodBug.FORGET_PROMISE_ON_RESTART: (
        hunt(
            SynodBug.FORGET_PROMISE_ON_RESTART,
            proposers=3,
            dup=0.3,
            crash_after_handle=0.1,
            delay_max_ticks=19,
            downtime_min_ticks=2,
            downtime_max_ticks=15,
        ),
        400,
    ),
    SynodBug.PROPOSER_FORGETS_BALLOT: (
        hunt(
            SynodBug.PROPOSER_FORGETS_BALLOT,
            learners=1,
            drop=0.05,
            dup=0.6,
            crash_after_handle=0.1,
            delay_max_ticks=19,
            downtime_min_ticks=1,
            downtime_max_ticks=6,
        ),
        1000,
    ),
}


def test_every_planted_bug_is_hunted() -> None:
    assert set(HUNTS) == set(SynodBug)


@pytest.mark.parametrize("bug", sorted(HUNTS), ids=str)
def test_planted_bug_is_caught_and_its_seed_replays(bug: SynodBug) -> None:
    settings, seeds = HUNTS[bug]
    found = first_violation(settings, range(seeds))
    assert found is not None, f"{bug} not caught in {seeds} seeds"
    assert found.violation is not None
    assert found.violation.kind in ("safety", "invariant")
    replay = run_synod(settings, found.seed, trace=True)
    assert replay.violation == found.violation
    assert replay.report_lines()[-1] == f"VIOLATION: {found.violation}"


def test_reply_before_persist_is_caught_through_a_lost_unsynced_write() -> None:
    settings, seeds = HUNTS[SynodBug.REPLY_BEFORE_PERSIST]
    found = first_violation(settings, range(seeds))
    assert found is not None
    events = run_synod(settings, found.seed, trace=True).events
    assert any(isinstance(event.entry, Crash) and event.entry.lost_unsynced for event in events)


@pytest.mark.parametrize(
    "bug",
    [
        SynodBug.REPLY_BEFORE_PERSIST,
        SynodBug.FORGET_PROMISE_ON_RESTART,
        SynodBug.PROPOSER_FORGETS_BALLOT,
    ],
    ids=str,
)
def test_crash_recovery_bugs_are_harmless_without_crashes(bug: SynodBug) -> None:
    # The same settings minus every crash: these bugs only bite across a restart.
    settings, _ = HUNTS[bug]
    calm = SynodSettings(
        proposers=settings.proposers,
        acceptors=settings.acceptors,
        learners=settings.learners,
        bugs=settings.bugs,
        drop=settings.drop,
        dup=settings.dup,
        delay_max_ticks=settings.delay_max_ticks,
    )
    assert first_violation(calm, range(300)) is None
