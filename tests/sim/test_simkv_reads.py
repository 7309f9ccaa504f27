"""Read-index reads in the KV simulator: used when drawn, linearizable, and their bugs caught.

The big run behind these small ones (``pypaxos sim kv --reads read-index --seeds 1000``) is
in docs/design.md ("Reads").
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.multi import LogBug
from pypaxos.sim.kv import KV_SWARM, KVSettings, first_violation, run_kv

SEEDS_MAX = 100  # measured first catching seeds with read-index pinned: 7 and 3 (below)


def _read_index(bugs: frozenset[LogBug] = frozenset()) -> KVSettings:
    """Read-index pinned on; the string workload pinned too (the seeds were measured on it)."""
    return replace(
        KVSettings(bugs=bugs, swarm=True),
        reads="read-index",
        pinned=frozenset({"reads", "collections"}),
    )


@pytest.mark.parametrize("seed", range(8))
def test_read_index_runs_are_clean_and_use_the_read_path(seed: int) -> None:
    result = run_kv(_read_index(), seed)
    assert result.violations == ()
    assert result.mix.reads == "read-index"
    assert result.read_index_reads > 0  # answered by Node.read, not silently by the log


@pytest.mark.parametrize("seed", range(4))
def test_follower_reads_are_clean_and_followers_answer(seed: int) -> None:
    settings = replace(
        KVSettings(swarm=True),
        reads="read-index",
        follower_reads=True,
        pinned=frozenset({"reads", "follower_reads"}),
    )
    result = run_kv(settings, seed)
    assert result.violations == ()
    assert result.follower_reads > 0  # a follower answered, after asking for a read index


@pytest.mark.parametrize(
    ("bug", "measured"),
    [(LogBug.READ_INDEX_WITHOUT_CONFIRMATION, 60), (LogBug.READ_BEFORE_APPLIED, 0)],
    ids=str,
)
def test_each_read_bug_is_caught_on_the_follower_path_too(bug: LogBug, measured: int) -> None:
    """Caught in seeds 0..``SEEDS_MAX``: the seed measured as the first to catch it is tried
    first (one run instead of sixty), the walk from seed 0 only if it no longer does."""
    settings = replace(
        KVSettings(bugs=frozenset({bug}), swarm=True),
        reads="read-index",
        follower_reads=True,
        pinned=frozenset({"reads", "follower_reads"}),
    )
    caught = first_violation(settings, [measured]) or first_violation(settings, range(SEEDS_MAX))
    assert caught is not None and any("not linearizable" in v for v in caught.violations)


def test_log_reads_never_take_the_read_index_path() -> None:
    settings = replace(KVSettings(swarm=True), reads="log", pinned=frozenset({"reads"}))
    result = run_kv(settings, 0)
    assert result.violations == () and result.read_index_reads == 0


def test_the_swarm_draws_every_read_path() -> None:
    drawn = {KVSettings(swarm=True).for_seed(seed).reads for seed in range(20)}
    assert drawn == {"log", "read-index", "lease"}
    assert 0 < KV_SWARM.read_index_prob < 1 and 0 < KV_SWARM.lease_prob < 1


@pytest.mark.parametrize(
    ("bug", "measured"),
    # read-before-applied: 1 since a configuration waits for a durable majority (3 before)
    [(LogBug.READ_INDEX_WITHOUT_CONFIRMATION, 7), (LogBug.READ_BEFORE_APPLIED, 1)],
    ids=str,
)
def test_each_read_bug_is_caught_as_a_linearizability_violation(bug: LogBug, measured: int) -> None:
    caught = first_violation(_read_index(frozenset({bug})), range(SEEDS_MAX))
    assert caught is not None, f"{bug}: no violation in seeds 0..{SEEDS_MAX - 1}"
    assert caught.seed == measured  # deterministic; update both numbers if the world changes
    assert any("not linearizable" in v for v in caught.violations), caught.violations
    assert run_kv(_read_index(), caught.seed).violations == ()  # the bug's doing


def test_settings_refuse_an_unknown_read_path() -> None:
    with pytest.raises(ValueError, match="reads must be one of"):
        KVSettings(reads="bogus")
