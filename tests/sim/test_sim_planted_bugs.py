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

from pypaxos.core.bugs import SYNOD_BUGS
from pypaxos.sim.synod import SynodSettings, first_violation, run_synod


def hunt(bug: str, **settings: object) -> SynodSettings:
    return SynodSettings(bugs=frozenset({bug}), **settings)  # type: ignore[arg-type]


# bug -> (settings that expose it, how many seeds to try)
HUNTS: dict[str, tuple[SynodSettings, int]] = {
    "accept-below-promise": (hunt("accept-below-promise", proposers=3, drop=0.1, dup=0.1), 100),
    "promise-any-ballot": (
        hunt("promise-any-ballot", proposers=3, drop=0.1, dup=0.1, crash=0.2),
        200,
    ),
    "ignore-promised-values": (hunt("ignore-promised-values", drop=0.1), 20),
    "adopt-first-promise": (
        hunt(
            "adopt-first-promise", proposers=5, acceptors=5, drop=0.1, dup=0.1, delay_max_ticks=19
        ),
        600,
    ),
    "learner-mixes-ballots": (
        hunt(
            "learner-mixes-ballots", proposers=3, drop=0.1, dup=0.05, crash=0.05, partition="random"
        ),
        300,
    ),
    "learner-counts-duplicates": (
        hunt("learner-counts-duplicates", proposers=3, drop=0.1, dup=0.1, crash=0.2),
        300,
    ),
    "reply-before-persist": (hunt("reply-before-persist", drop=0.2, dup=0.3, crash=0.3), 300),
    "small-quorum": (hunt("small-quorum", proposers=3, drop=0.1, dup=0.05), 50),
    "forget-promise-on-restart": (
        hunt(
            "forget-promise-on-restart",
            proposers=3,
            dup=0.3,
            crash_after_handle=0.1,
            delay_max_ticks=19,
            downtime_min_ticks=2,
            downtime_max_ticks=15,
        ),
        400,
    ),
    "proposer-forgets-ballot": (
        hunt(
            "proposer-forgets-ballot",
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
    assert set(HUNTS) == set(SYNOD_BUGS)


@pytest.mark.parametrize("bug", sorted(HUNTS))
def test_planted_bug_is_caught_and_its_seed_replays(bug: str) -> None:
    settings, seeds = HUNTS[bug]
    found = first_violation(settings, range(seeds))
    assert found is not None, f"{bug} not caught in {seeds} seeds"
    assert found.violation is not None
    assert found.violation.kind in ("safety", "invariant")
    replay = run_synod(settings, found.seed, trace=True)
    assert replay.violation == found.violation
    assert replay.report_lines()[-1] == f"VIOLATION: {found.violation}"


def test_reply_before_persist_is_caught_through_a_lost_unsynced_write() -> None:
    settings, seeds = HUNTS["reply-before-persist"]
    found = first_violation(settings, range(seeds))
    assert found is not None
    trace = run_synod(settings, found.seed, trace=True).trace
    assert any("CRASH (unsynced write lost)" in line for line in trace)


@pytest.mark.parametrize(
    "bug", ["reply-before-persist", "forget-promise-on-restart", "proposer-forgets-ballot"]
)
def test_crash_recovery_bugs_are_harmless_without_crashes(bug: str) -> None:
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
