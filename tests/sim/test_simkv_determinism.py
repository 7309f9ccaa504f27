"""One seed, one run: the KV simulation replays byte for byte (STYLE.md, habit 4)."""

from __future__ import annotations

import pytest

from pypaxos.sim.kv import KVSettings, run_kv, run_seeds


@pytest.mark.parametrize("nodes", [3, 5])
def test_the_same_seed_gives_the_same_trace_and_history(nodes: int) -> None:
    settings = KVSettings(nodes=nodes)
    first, second = run_kv(settings, 11, trace=True), run_kv(settings, 11, trace=True)
    assert first.trace == second.trace
    assert "\n".join(first.history).encode() == "\n".join(second.history).encode()
    assert len(first.trace) > 1000 and first.invoked >= 200
    assert (first.steps, first.end_time, first.leader_changes) == (
        second.steps,
        second.end_time,
        second.leader_changes,
    )


def test_tracing_does_not_change_the_run() -> None:
    settings = KVSettings()
    assert run_kv(settings, 5, trace=True).history == run_kv(settings, 5).history


def test_different_seeds_give_different_runs() -> None:
    settings = KVSettings()
    assert run_kv(settings, 1).history != run_kv(settings, 2).history


def test_worker_processes_give_the_same_results_in_seed_order() -> None:
    settings = KVSettings()
    serial = list(run_seeds(settings, range(4)))
    parallel = list(run_seeds(settings, range(4), jobs=2))
    assert [r.seed for r in parallel] == [0, 1, 2, 3]
    assert [r.history for r in serial] == [r.history for r in parallel]
