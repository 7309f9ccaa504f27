"""Leader leases in the KV simulator: drifting clocks, pauses, linearizable, their bugs caught.

Lease runs (``reads = "lease"``, a quarter of the swarm's seeds) give each node its own tick
rate within the drift bound, turn ``stall leader`` into a pause the node notices, and draw the
``cut leader`` fault (the leader cut off from the other nodes while every client reaches every
node, sometimes with its clock slowed to the bound).  The big run behind these small ones
(``pypaxos sim kv --reads lease --seeds 400``) is in docs/design.md ("Reads").
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.multi import LogBug
from pypaxos.sim.kv import DRIFT_PPM, KVSettings, KVWorld, first_violation, run_kv

# Measured first catching seeds with leases pinned: 39 and 2 (below; 6 before a configuration
# waited for a durable majority of its voters, 13 and 1 before nodes wrote the values they
# learn, 7 before publications were drawn).
SEEDS_MAX = 100


def _lease(bugs: frozenset[LogBug] = frozenset()) -> KVSettings:
    return replace(KVSettings(bugs=bugs, swarm=True), reads="lease", pinned=frozenset({"reads"}))


@pytest.mark.parametrize("seed", range(8))
def test_lease_runs_are_clean_and_answer_under_the_lease(seed: int) -> None:
    result = run_kv(_lease(), seed)
    assert result.violations == ()
    assert result.mix.reads == "lease" and result.mix.config().leases
    assert result.lease_reads > 0  # answered at once, not silently by rounds or the log


def test_lease_runs_draw_tick_rates_within_the_drift_bound() -> None:
    for seed in range(20):
        rates = KVWorld(_lease(), seed).tick_rates
        assert max(rates.values()) <= 1.0
        assert max(rates.values()) / min(rates.values()) <= 1 + DRIFT_PPM / 1e6 + 1e-9
    assert any(len(set(KVWorld(_lease(), s).tick_rates.values())) > 1 for s in range(5))


def test_other_read_paths_keep_one_clock_rate_and_draw_no_cut() -> None:
    world = KVWorld(replace(_lease(), reads="read-index"), 0)
    assert world.tick_rates == {} and world.settings.nemesis.cut_leader_prob == 0.0
    assert not world.config.leases


def test_the_swarm_draws_the_cut_leader_fault_in_lease_runs() -> None:
    cuts = [_lease().for_seed(seed).nemesis.cut_leader_prob for seed in range(20)]
    assert any(cuts) and not all(cuts)


@pytest.mark.parametrize(
    ("bug", "measured"),
    [(LogBug.LEASE_IGNORES_DRIFT, 39), (LogBug.NEW_LEADER_INSIDE_LEASE, 2)],
    ids=str,
)
def test_each_lease_bug_is_caught_as_a_linearizability_violation(
    bug: LogBug, measured: int
) -> None:
    caught = first_violation(_lease(frozenset({bug})), range(SEEDS_MAX))
    assert caught is not None, f"{bug}: no violation in seeds 0..{SEEDS_MAX - 1}"
    assert caught.seed == measured  # deterministic; update both numbers if the world changes
    assert any("not linearizable" in v for v in caught.violations), caught.violations
    assert run_kv(_lease(), caught.seed).violations == ()  # the bug's doing


def test_a_lease_run_replays_byte_for_byte_pauses_and_drift_included() -> None:
    seed = next(s for s in range(50) if _lease().for_seed(s).nemesis.stall_leader_prob)
    first, second = run_kv(_lease(), seed, trace=True), run_kv(_lease(), seed, trace=True)
    assert first.trace == second.trace and first.history == second.history
    assert run_kv(_lease(), seed).history == first.history  # tracing changes nothing


def test_a_paused_leader_resumes_by_counting_the_ticks_it_missed() -> None:
    for seed in range(60):
        result = run_kv(_lease(), seed, trace=True)
        resumes = [line for line in result.trace if "resumes:" in line]
        if resumes:
            assert result.violations == ()
            assert any(not line.endswith(" 0 ticks missed") for line in resumes)
            return
    pytest.fail("no seed in 0..59 paused a leader")
