"""A thousand seeded KV runs with faults, 3 and 5 nodes, at least 200 client operations each:
every one linearizable, replicas in agreement, no acknowledged command lost, service back
within the liveness bound.

This is the project's bulk KV simulation (CI runs it).  The seeds are split into chunks of a
hundred, one test each, so that ``pytest -n`` (``make test``) spreads them over the cores; a
plain serial run gives each chunk two worker processes instead.  Each run is self-contained
and deterministic, so the verdicts depend on neither.  Measured on the 2-core build machine:
about 0.15 s of CPU per 3-node seed and 0.24 s per 5-node seed, so the thousand take about
100 s of wall time on an idle machine.
"""

from __future__ import annotations

import os

import pytest

from pypaxos.sim.kv import KVResult, KVSettings, run_seeds

SEEDS_3_NODES = 600
SEEDS_5_NODES = 400
CHUNK_SEEDS = 100
# Under pytest-xdist the chunks themselves run in parallel; serially, two processes per chunk.
JOBS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2

CHUNKS = [
    (nodes, range(start, min(start + CHUNK_SEEDS, seeds)))
    for nodes, seeds in ((3, SEEDS_3_NODES), (5, SEEDS_5_NODES))
    for start in range(0, seeds, CHUNK_SEEDS)
]


def problems(results: list[KVResult]) -> list[str]:
    found = []
    for r in results:
        if r.violations or r.undecided or r.invoked < 200:
            replay = r.settings.replay_command(r.seed)
            found.append(f"{replay}: {r.violations or r.lincheck}")
        elif r.served_after_ticks is None or r.served_after_ticks > r.bound_ticks:
            found.append(f"seed {r.seed}: served after {r.served_after_ticks} ticks")
    return found


def test_the_chunks_cover_a_thousand_seeds_each_once() -> None:
    for nodes, seeds in ((3, SEEDS_3_NODES), (5, SEEDS_5_NODES)):
        covered = [seed for chunk_nodes, chunk in CHUNKS if chunk_nodes == nodes for seed in chunk]
        assert covered == list(range(seeds))
    assert SEEDS_3_NODES + SEEDS_5_NODES == 1000


@pytest.mark.parametrize(
    ("nodes", "seeds"),
    CHUNKS,
    ids=[f"{nodes}-nodes-seeds-{seeds.start}-{seeds.stop - 1}" for nodes, seeds in CHUNKS],
)
def test_a_thousand_seeds_of_three_and_five_node_clusters_are_clean(
    nodes: int, seeds: range
) -> None:
    results = list(run_seeds(KVSettings(nodes=nodes, ops=200), seeds, jobs=JOBS))
    assert [r.seed for r in results] == list(seeds)
    assert problems(results) == []
    # The faults really happened in every chunk (so in the thousand too): leaders crashed
    # mid-batch, were cut off, and were replaced.
    assert sum(r.leader_crashes for r in results) > len(seeds)
    assert sum(r.partitions for r in results) > len(seeds)
    assert all(r.leader_changes >= 1 for r in results)
    assert sum(r.info for r in results) > 0 and sum(r.failed for r in results) > 0
