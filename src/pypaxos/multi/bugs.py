"""Planted Multi-Paxos bugs, switched on in the real code (see ``core.bugs`` for the registry).

Each must make a test-visible safety property fail under some seed (tests/multi prove it):
two nodes applying different values in one slot, or a client told "done" for a command that
is never applied.  A stale snapshot without the dedup table needs the KV machine and lives
with it (``kv.bugs``).  The read-index bugs make a read return a value older than a write that
completed before the read began (the linearizability check of the KV simulator sees it); so do
the lease bugs (``multi.lease``).  The reconfiguration bugs (``multi.membership``) let two
quorums that decide the same slot miss each other, so two nodes apply different values there.
"""

from __future__ import annotations

from pypaxos.core.bugs import PlantedBug


class LogBug(PlantedBug):
    """Planted mistakes in the replicated log (``multi``)."""

    NO_REPROPOSE = (
        "no-repropose",
        "a new leader ignores values reported in promises and reuses those slots",
    )
    ADOPT_LOWEST_BALLOT = (
        "adopt-lowest-ballot",
        "a new leader re-proposes the lowest-ballot value reported per slot",
    )
    NOOP_OVERWRITES_CHOSEN = (
        "noop-overwrites-chosen",
        "a new leader fills holes with no-ops consulting only its own log",
    )
    COMMIT_WITHOUT_QUORUM = (
        "commit-without-quorum",
        "the leader counts a slot as chosen on its own acceptance alone",
    )
    REPLY_BEFORE_CHOSEN = (
        "reply-before-chosen",
        "the leader answers a client when it proposes, before the choice",
    )
    COMMIT_INDEX_ANY_BALLOT = (
        "commit-index-any-ballot",
        "a follower applies any accepted value below the leader's commit",
    )
    FORGET_PROMISE_ON_RECOVER = (
        "forget-promise-on-recover",
        "a recovered node keeps its accepted values but not its promise",
    )
    COUNT_OWN_VOTE_BEFORE_SYNC = (
        "count-own-vote-before-sync",
        "the leader counts its own vote before its record is durable",
    )
    PROMISE_HIDES_COMPACTION = (
        "promise-hides-compaction",
        "a promise does not report compacted slots; they become no-ops",
    )
    READ_INDEX_WITHOUT_CONFIRMATION = (
        "read-index-without-confirmation",
        "a read-index read is answered without the heartbeat round",
    )
    READ_BEFORE_APPLIED = (
        "read-before-applied",
        "a read-index read is answered before its read index is applied",
    )
    LEASE_IGNORES_DRIFT = (
        "lease-ignores-drift",
        "the leader's lease is not shortened for the clock drift bound",
    )
    NEW_LEADER_INSIDE_LEASE = (
        "new-leader-inside-lease",
        "a node votes for a new leader inside a lease it acknowledged",
    )
    CONFIG_BEFORE_CHOSEN = (
        "config-before-chosen",
        "the leader uses a new configuration as soon as it proposes the change",
    )
    TWO_CHANGES_IN_FLIGHT = (
        "two-changes-in-flight",
        "a second membership change is proposed and applied while one is pending",
    )
    REMOVED_STILL_COUNTED = (
        "removed-still-counted",
        "a removed voter's votes still count towards the new configuration's majority",
    )
    LEADER_IGNORES_PENDING_CHANGE = (
        "leader-ignores-pending-change",
        "a new leader's phase 1 ignores a decided but not yet active configuration",
    )
    PROMOTE_BEFORE_CAUGHT_UP = (
        "promote-before-caught-up",
        "a learner is promoted to voter however far behind the leader it is",
    )
    COMPACT_BEFORE_SNAPSHOT_SAVED = (
        "compact-before-snapshot-saved",
        "a node lets its log be compacted when it asks for a snapshot, not once it is durable",
    )
    FORGOTTEN_VOTES_UNREPORTED = (
        "forgotten-votes-unreported",
        "a promise does not report the votes an acceptor let go from memory; they become no-ops",
    )
    LEARNED_NOT_PERSISTED = (
        "learned-not-persisted",
        "a node applies values it learned without a vote of its own but never writes them",
    )
    REMOVAL_BEFORE_DURABLE = (
        "removal-before-durable",
        "a new configuration governs slots before a majority of its voters hold the earlier ones",
    )
