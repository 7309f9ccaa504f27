"""Every planted Multi-Paxos and KV bug is caught by the default ``pypaxos sim kv``, and replays.

The default is swarm testing (``KVSettings(swarm=True)``: each seed draws its own mix), with no
tuning for any bug.  For each bug the search walks seeds from 0 and stops at the first run with
a violation (it first tries the seed measured as that first one, ``CATCHING_SEED``, so a test
usually runs one seed instead of dozens; what it asserts is unchanged); the replay command
must name the bug and the seed and reproduce the violation, and the same seed without the bug
must be clean (so the violation is the bug's doing, not the simulation's).  The first catching
seeds (``CATCHING_SEED``) are small for most bugs, since seeds also draw their read path,
follower reads, the ``stall leader`` fault, membership changes, pre-vote and, half of them, the
collection workload (a third of the compare-and-sets are optimistic transactions, and snapshots
are written out of line).  list-restored-reversed shows only in seeds with the collection
workload; compact-before-snapshot-saved by the check at every restart (a node must come back
with every durable vote its durable snapshot does not cover).  The read-index bugs show only in
seeds that draw the read-index path; the one without confirmation needs a ``stall leader``
fault.  The lease bugs show only in the quarter of the seeds that draw leases, and need a
``cut leader`` fault (the drift one a long cut with the leader's clock slowed too).
``forget-promise-on-recover`` is also caught by the scripted scenario in
tests/multi/test_multi_recovery.py.  Of the membership bugs, which show only in the third of the
seeds that draw membership changes, removed-still-counted and config-before-chosen (a
liveness failure: the leader that used the change early disagrees with the others on the
membership) are caught here; two-changes-in-flight and leader-ignores-pending-change need more
seeds and are searched with changes pinned on (tests/sim/test_simkv_reconfig.py), and
promote-before-caught-up breaks no check of the simulator (tests/multi/test_multi_membership.py).
``refused-client-reopens`` is left out: it needs a client's first request given up, its second
decided (and refused) before any copy of the first, then a late copy of the first and a late
copy of the second decided in that order; no default seed in 0..399 draws it.  Clients that
give up at once on a network full of late copies do (tests/sim/test_simkv_refused.py); its unit
tests are in tests/kv/test_kv_exactly_once.py.  ``snapshot-drops-deadlines`` breaks no check of
the simulator (its keys' deadlines are not compared); replicas' state digests catch it
(tests/kv/test_kv_digest.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.kv import KvBug
from pypaxos.multi import LogBug
from pypaxos.sim.kv import KVResult, KVSettings, first_violation, run_kv

SEEDS_MAX = 200
SEEDS_MAX_OF = {LogBug.LEASE_IGNORES_DRIFT: 450, LogBug.FORGET_PROMISE_ON_RECOVER: 300}
CATCHING_SEED: dict[tuple[LogBug | KvBug, int | None], int] = {
    # (bug, nodes pinned or None) -> the first seed of the walk that catches it, as measured.
    (LogBug.ADOPT_LOWEST_BALLOT, None): 1,
    (LogBug.COMMIT_INDEX_ANY_BALLOT, None): 1,
    (LogBug.COMMIT_WITHOUT_QUORUM, None): 0,
    (LogBug.COMPACT_BEFORE_SNAPSHOT_SAVED, None): 5,
    (LogBug.CONFIG_BEFORE_CHOSEN, None): 2,
    (LogBug.COUNT_OWN_VOTE_BEFORE_SYNC, None): 36,
    (LogBug.FORGET_PROMISE_ON_RECOVER, None): 67,  # 281 before pre-vote was drawn
    (LogBug.LEASE_IGNORES_DRIFT, None): 76,
    (KvBug.LIST_RESTORED_REVERSED, None): 10,
    (LogBug.NEW_LEADER_INSIDE_LEASE, None): 30,
    (LogBug.NO_REPROPOSE, None): 0,
    (LogBug.NOOP_OVERWRITES_CHOSEN, None): 2,
    (LogBug.PROMISE_HIDES_COMPACTION, None): 59,
    (KvBug.PUBLISH_TWICE_ON_RETRY, None): 1,
    (LogBug.READ_BEFORE_APPLIED, None): 9,
    (LogBug.READ_INDEX_WITHOUT_CONFIRMATION, None): 60,
    (LogBug.REMOVED_STILL_COUNTED, None): 16,
    (LogBug.REPLY_BEFORE_CHOSEN, None): 0,
    (KvBug.SNAPSHOT_DROPS_SESSIONS, None): 0,
    (KvBug.WATCH_MISSES_WRITES, None): 0,
    (LogBug.NO_REPROPOSE, 5): 0,
    (LogBug.COMMIT_WITHOUT_QUORUM, 5): 0,
    (LogBug.REPLY_BEFORE_CHOSEN, 5): 0,
}
ELSEWHERE = {
    LogBug.TWO_CHANGES_IN_FLIGHT,
    LogBug.LEADER_IGNORES_PENDING_CHANGE,
    LogBug.PROMOTE_BEFORE_CAUGHT_UP,
    LogBug.LEARNED_NOT_PERSISTED,  # needs a full restart after removals: tests/multi
    # Needs a whole-cluster stop right after a change with the removed voters' disks gone and
    # the joiners restarted in the latest configuration; the simulator keeps every node's disk
    # and restarts a joiner from its own records: tests/multi/test_multi_removal_durability.py
    LogBug.REMOVAL_BEFORE_DURABLE,
    KvBug.SNAPSHOT_DROPS_DEADLINES,  # the simulator compares no deadlines: the state digest does
    # Lives only with the in-memory log bound on, which the default runs leave off:
    # tests/sim/test_simkv_loose_log.py (and the chaos runs of tests/multi).
    LogBug.FORGOTTEN_VOTES_UNREPORTED,
}


def first_caught(bug: LogBug | KvBug, nodes: int | None = None) -> KVResult | None:
    """The first default-command seed that catches ``bug`` (``nodes``, if given, is pinned):
    the measured one (``CATCHING_SEED``) if it still catches it, else the walk from seed 0 (a
    change to the simulation moves the seeds; then update the table from the walk's answer)."""
    settings = KVSettings(bugs=frozenset({bug}), swarm=True)
    if nodes is not None:
        settings = replace(settings, nodes=nodes, pinned=frozenset({"nodes"}))
    seeds = range(SEEDS_MAX_OF.get(bug, SEEDS_MAX))
    measured = CATCHING_SEED.get((bug, nodes))
    if measured is not None and measured in seeds:
        result = run_kv(settings, measured)
        if result.violations:
            return result
    return first_violation(settings, seeds)


NOT_REACHED = {KvBug.EXPIRED_SESSION_REOPENS}  # see the module docstring


@pytest.mark.parametrize("bug", sorted({*LogBug, *KvBug} - ELSEWHERE - NOT_REACHED), ids=str)
def test_each_planted_bug_is_caught(bug: LogBug | KvBug) -> None:
    caught = first_caught(bug)
    assert caught is not None, f"{bug}: no violation in seeds 0..{SEEDS_MAX_OF.get(bug, SEEDS_MAX)}"
    replay = caught.settings.replay_command(caught.seed)
    assert f"--bug {bug.value}" in replay and f"--start {caught.seed}" in replay
    assert run_kv(caught.settings, caught.seed).violations == caught.violations  # replays
    clean = run_kv(KVSettings(swarm=True), caught.seed)
    assert clean.violations == (), f"seed {caught.seed} fails without {bug} too"


@pytest.mark.parametrize(
    "bug", [LogBug.NO_REPROPOSE, LogBug.COMMIT_WITHOUT_QUORUM, LogBug.REPLY_BEFORE_CHOSEN], ids=str
)
def test_planted_bugs_are_caught_with_five_nodes_too(bug: LogBug) -> None:
    assert first_caught(bug, nodes=5) is not None
