"""Thrifty read rounds (``MultiConfig.thrifty_reads``) in the KV simulator: every read path
linearizable with it on, and each planted read bug still caught.

A round that goes to fewer peers must still be answered by a majority before a read is served:
the same checks as ``test_simkv_reads`` and ``test_simkv_lease``, on a few seeds each (the flag
is not drawn by the swarm, so the other tests' seeds stay as they were).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.multi import LogBug
from pypaxos.sim.kv import KVSettings, first_violation, run_kv

SEEDS_MAX = 100


def _thrifty(
    reads: str, follower: bool = False, bugs: frozenset[LogBug] = frozenset()
) -> KVSettings:
    """The read path pinned, thrifty read rounds on; read-index alone also pins the string
    workload, as ``test_simkv_reads`` measures it."""
    pinned = {"reads", "follower_reads"} if follower else {"reads"}
    if reads == "read-index" and not follower:
        pinned.add("collections")
    return replace(
        KVSettings(bugs=bugs, swarm=True),
        reads=reads,
        follower_reads=follower,
        thrifty_reads=True,
        pinned=frozenset(pinned),
    )


PATHS = [("read-index", False), ("read-index", True), ("lease", False)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("reads", "follower"), PATHS, ids=["read-index", "follower", "lease"])
def test_thrifty_read_runs_are_clean_on_every_read_path(
    reads: str, follower: bool, seed: int
) -> None:
    result = run_kv(_thrifty(reads, follower), seed)
    assert result.violations == ()
    assert result.mix.config().thrifty_reads and result.mix.reads == reads
    assert result.read_index_reads > 0  # served by Node.read, not silently by the log
    if follower:
        assert result.follower_reads > 0


def test_thrifty_reads_change_the_run() -> None:
    """The flag reaches the nodes: the same seed sends other messages with it on."""
    on = run_kv(_thrifty("read-index"), 0)
    off = run_kv(replace(_thrifty("read-index"), thrifty_reads=False), 0)
    assert on.steps != off.steps
    assert "--thrifty-reads" in on.settings.replay_command(0)


@pytest.mark.parametrize(
    ("reads", "follower", "bug", "measured"),
    [
        ("read-index", False, LogBug.READ_INDEX_WITHOUT_CONFIRMATION, 7),
        ("read-index", False, LogBug.READ_BEFORE_APPLIED, 0),
        ("read-index", True, LogBug.READ_INDEX_WITHOUT_CONFIRMATION, 65),
        ("read-index", True, LogBug.READ_BEFORE_APPLIED, 0),
        ("lease", False, LogBug.LEASE_IGNORES_DRIFT, 39),
        ("lease", False, LogBug.NEW_LEADER_INSIDE_LEASE, 2),
    ],
    ids=lambda value: str(value) if isinstance(value, LogBug) else None,
)
def test_each_read_bug_is_caught_with_thrifty_reads(
    reads: str, follower: bool, bug: LogBug, measured: int
) -> None:
    """Caught in seeds 0..``SEEDS_MAX``: the seed measured as the first to catch it is tried
    first (one run), the walk from seed 0 only if it no longer does."""
    settings = _thrifty(reads, follower, frozenset({bug}))
    caught = first_violation(settings, [measured]) or first_violation(settings, range(SEEDS_MAX))
    assert caught is not None, f"{bug}: no violation in seeds 0..{SEEDS_MAX - 1}"
    assert any("not linearizable" in v for v in caught.violations), caught.violations
    assert run_kv(_thrifty(reads, follower), caught.seed).violations == ()  # the bug's doing
