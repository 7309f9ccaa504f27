"""The collection workload of the KV simulator (``sim.kv_collections``): hashes, lists, sets and
sorted sets, checked against the Redis model (``lincheck.redis_model``).

Half the seeds of the default swarm draw it; here it is pinned on.  Without bugs the runs are
clean and really do meet the cases the workload is for (``WRONGTYPE`` replies, ``MULTI``,
``EXPIRE``); the planted ``list-restored-reversed`` (a snapshot restores every list back to
front) is caught, only with the collection workload, and at one seed by the model check alone,
the replicas agreeing at the end.  Measured with ``COLLECTIONS``: the first catching seed is 1
(2 before scripts and publications were drawn, 4 before pre-vote), the first caught by the
model alone 11 (15 before a configuration waited for a durable majority of its voters); 300
seeds without bugs clean (``pypaxos sim kv --collections --seeds 300``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pypaxos.cli.main import main
from pypaxos.kv import KvBug
from pypaxos.sim.kv import KVSettings, first_violation, run_kv, run_seeds

COLLECTIONS = KVSettings(swarm=True, collections=True, pinned=frozenset({"collections"}))
REVERSED = replace(COLLECTIONS, bugs=frozenset({KvBug.LIST_RESTORED_REVERSED}))
FIRST_CAUGHT = 5
FIRST_CAUGHT_BY_THE_MODEL_ALONE = 25
CLEAN_SEEDS = 32


def test_collection_runs_are_clean_and_meet_what_the_workload_is_for() -> None:
    seen: dict[str, int] = {}
    for result in run_seeds(COLLECTIONS, range(CLEAN_SEEDS)):
        assert result.violations == (), (result.seed, result.violations)
        assert "collections: linearizable (model)" in result.lincheck, result.lincheck
        for line in result.history:
            event = json.loads(line)
            if event["type"] != "ok" or not event["key"].startswith("c"):
                continue
            seen[event["f"]] = seen.get(event["f"], 0) + 1
            if '"WRONGTYPE"' in json.dumps(event["value"]):
                seen["WRONGTYPE"] = seen.get("WRONGTYPE", 0) + 1
    for wanted in ("hincrby", "lpop", "rpush", "sadd", "zincrby", "zadd", "multi", "expire"):
        assert seen.get(wanted, 0) > 20, (wanted, seen)
    assert seen["WRONGTYPE"] > 20


def test_the_swarm_draws_the_collection_workload_for_some_seeds() -> None:
    drawn = [KVSettings(swarm=True).for_seed(seed).collections for seed in range(40)]
    assert any(drawn) and not all(drawn)
    assert all(COLLECTIONS.for_seed(seed).collections for seed in range(10))
    assert "--collections" in COLLECTIONS.replay_command(3)
    off = replace(COLLECTIONS, collections=False)
    assert "--no-collections" in off.replay_command(3)


def test_a_collection_seed_replays_byte_for_byte() -> None:
    first, second = run_kv(COLLECTIONS, 5), run_kv(COLLECTIONS, 5)
    assert first.history == second.history and len(first.history) > 200


def test_lists_restored_back_to_front_are_caught_only_by_the_collection_workload() -> None:
    caught = first_violation(REVERSED, range(FIRST_CAUGHT + 1))
    assert caught is not None and caught.seed == FIRST_CAUGHT  # deterministic: update if moved
    replay = caught.settings.replay_command(caught.seed)
    assert "--bug list-restored-reversed" in replay and "--collections" in replay
    assert run_kv(REVERSED, caught.seed).violations == caught.violations  # replays
    assert run_kv(COLLECTIONS, caught.seed).violations == ()  # the bug's doing
    strings = replace(REVERSED, collections=False)
    assert run_kv(strings, caught.seed).violations == ()  # no list, nothing to reverse


def test_the_model_alone_catches_it_when_the_replicas_end_up_agreeing() -> None:
    result = run_kv(REVERSED, FIRST_CAUGHT_BY_THE_MODEL_ALONE)
    assert len(result.violations) == 1
    assert result.violations[0].startswith("not linearizable")
    assert "collection operations" in result.violations[0]


@pytest.mark.parametrize(("bug", "status"), [((), 0), (("--bug", "list-restored-reversed"), 1)])
def test_lincheck_checks_the_collection_keys_of_a_written_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bug: tuple[str, ...], status: int
) -> None:
    seed = str(FIRST_CAUGHT_BY_THE_MODEL_ALONE)
    argv = ["sim", "kv", "--collections", "--seeds", "1", "--start", seed, *bug]
    assert main([*argv, "--history", str(tmp_path)]) == status
    capsys.readouterr()
    assert main(["lincheck", str(tmp_path / f"seed-{seed}.jsonl")]) == status
    out = capsys.readouterr().out
    assert ("NOT linearizable (model)" in out) == bool(status), out
