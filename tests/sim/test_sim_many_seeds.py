"""Correct code survives 10,000 random seeds with faults, and every run converges after the heal.

Four deployments share the seeds (a seed picks one), so the sweep covers competing proposers,
five acceptors, lossy and duplicating networks, fixed and random partitions, timed crashes,
crashes right after handling a message, and short and long downtimes.
"""

from __future__ import annotations

from pypaxos.sim.checkers import chosen_values
from pypaxos.sim.synod import SynodSettings, SynodWorld, liveness_bound_ticks, run_synod

SEEDS = 10_000

PROFILES = (
    SynodSettings(proposers=2, drop=0.1, dup=0.05, crash=0.05, partition="random"),
    SynodSettings(
        proposers=3,
        acceptors=5,
        drop=0.2,
        dup=0.2,
        crash=0.1,
        crash_after_handle=0.02,
        delay_max_ticks=19,
    ),
    SynodSettings(
        proposers=3,
        learners=3,
        drop=0.05,
        dup=0.3,
        crash_after_handle=0.05,
        fault_ticks=200,
        downtime_min_ticks=1,
        downtime_max_ticks=6,
        delay_max_ticks=19,
    ),
    SynodSettings(
        proposers=5, learners=1, drop=0.3, dup=0.1, crash=0.1, partition="A1,P1/A2,P2,L1"
    ),
)


def test_ten_thousand_seeds_with_faults_break_no_invariant() -> None:
    failures = []
    crashes = 0
    for seed in range(SEEDS):
        settings = PROFILES[seed % len(PROFILES)]
        result = run_synod(settings, seed)
        crashes += result.crashes
        if result.violation is not None:
            failures.append(f"{result.violation}\n  replay: {settings.replay_command(seed)}")
        elif result.chosen is None or len(result.learned) != settings.learners:
            failures.append(f"seed {seed} ended without a full decision")
        elif result.end_time > result.deadline:
            failures.append(f"seed {seed} ended after its deadline")
    assert failures == []
    assert crashes > SEEDS  # the faults really happened


def test_every_learner_learns_the_one_chosen_value_within_the_bound() -> None:
    for seed in range(200):
        settings = PROFILES[seed % len(PROFILES)]
        world = SynodWorld(settings, seed)
        result = world.run()
        assert result.violation is None
        # The incremental "chosen" agrees with the shared checker's full recomputation.
        assert chosen_values(world.acceptances, world.quorum) == {result.chosen}
        assert {value for _, value, _ in result.learned} == {result.chosen}
        assert all(time <= result.deadline for _, _, time in result.learned)
        assert result.deadline == settings.fault_ticks + liveness_bound_ticks(settings)
