"""Every planted Multi-Paxos bug is caught by the KV simulation, with a seed that replays it.

For each bug the search walks seeds from 0 and stops at the first run with a violation; the
replay seed is in the failure message, and the same seed without the bug must be clean (so the
violation is the bug's doing, not the simulation's).  Measured first catching seeds (3 nodes,
defaults): adopt-lowest-ballot 0, commit-index-any-ballot 4, commit-without-quorum 0,
forget-promise-on-recover 10, no-repropose 0, noop-overwrites-chosen 0,
promise-hides-compaction 1, reply-before-chosen 0 (measured before the leader's own vote got
its own fsync delay, which draws from the seed's Random and so shifts these); and
count-own-vote-before-sync 26 (the leader crashes after a follower's vote came back and before
its own record is synced: a vote that was never durable made the slot "chosen").
``forget-promise-on-recover`` is also caught by the scripted scenario in
tests/multi/test_multi_recovery.py.
"""

from __future__ import annotations

import pytest

from pypaxos.kv import KvBug
from pypaxos.multi import LogBug
from pypaxos.sim.kv import KVResult, KVSettings, first_violation, run_kv

SEEDS_MAX = 60


def first_caught(bug: LogBug | KvBug, nodes: int = 3) -> KVResult | None:
    return first_violation(KVSettings(nodes=nodes, bugs=frozenset({bug})), range(SEEDS_MAX))


@pytest.mark.parametrize("bug", sorted([*LogBug, *KvBug]), ids=str)
def test_each_planted_bug_is_caught(bug: LogBug | KvBug) -> None:
    caught = first_caught(bug)
    assert caught is not None, f"{bug}: no violation in seeds 0..{SEEDS_MAX - 1}"
    replay = caught.settings.replay_command(caught.seed)
    assert f"--bug {bug.value}" in replay and f"--start {caught.seed}" in replay
    assert run_kv(caught.settings, caught.seed).violations == caught.violations  # replays
    clean = run_kv(KVSettings(), caught.seed)
    assert clean.violations == (), f"seed {caught.seed} fails without {bug} too"


@pytest.mark.parametrize(
    "bug", [LogBug.NO_REPROPOSE, LogBug.COMMIT_WITHOUT_QUORUM, LogBug.REPLY_BEFORE_CHOSEN], ids=str
)
def test_planted_bugs_are_caught_with_five_nodes_too(bug: LogBug) -> None:
    assert first_caught(bug, nodes=5) is not None
