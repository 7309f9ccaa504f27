"""A thousand seeded KV runs with faults, 3 and 5 nodes, at least 200 client operations each:
every one linearizable, replicas in agreement, no acknowledged command lost, service back
within the liveness bound.

This is the project's bulk KV simulation (CI runs it).  Two worker processes share the seeds
(each run is self-contained and deterministic, so the verdicts do not depend on it).  Measured
on the 2-core build machine: about 0.15 s of CPU per 3-node seed and 0.24 s per 5-node seed,
so the thousand take about 100 s of wall time on an idle machine.
"""

from __future__ import annotations

import pytest

from pypaxos.sim.kv import KVResult, KVSettings, run_seeds

SEEDS_3_NODES = 600
SEEDS_5_NODES = 400
JOBS = 2


def problems(results: list[KVResult]) -> list[str]:
    found = []
    for r in results:
        if r.violations or r.undecided or r.invoked < 200:
            replay = r.settings.replay_command(r.seed)
            found.append(f"{replay}: {r.violations or r.lincheck}")
        elif r.served_after_ticks is None or r.served_after_ticks > r.bound_ticks:
            found.append(f"seed {r.seed}: served after {r.served_after_ticks} ticks")
    return found


@pytest.mark.timeout(1500)  # the budget is ~2 min idle; a machine shared with other jobs is slower
def test_a_thousand_seeds_of_three_and_five_node_clusters_are_clean() -> None:
    three = list(run_seeds(KVSettings(nodes=3, ops=200), range(SEEDS_3_NODES), jobs=JOBS))
    five = list(run_seeds(KVSettings(nodes=5, ops=200), range(SEEDS_5_NODES), jobs=JOBS))
    results = three + five
    assert len(results) == 1000
    assert problems(results) == []
    # The faults really happened: leaders crashed mid-batch, were cut off, and were replaced.
    assert sum(r.leader_crashes for r in results) > 1000
    assert sum(r.partitions for r in results) > 1000
    assert all(r.leader_changes >= 1 for r in results)
    assert sum(r.info for r in results) > 0 and sum(r.failed for r in results) > 0
