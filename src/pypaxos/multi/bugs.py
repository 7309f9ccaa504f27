"""Planted Multi-Paxos bugs, switched on by name in the real code (see ``core.bugs``).

Each must make a test-visible safety property fail under some seed (tests/multi prove it):
two nodes applying different values in one slot, or a client told "done" for a command that
is never applied.  A stale snapshot without the dedup table needs the KV machine and lives
with it; there is no lease read path yet, hence no "read while deposed" bug.
"""

from __future__ import annotations

MULTI_BUGS: dict[str, str] = {
    "no-repropose": "a new leader ignores values reported in promises and reuses those slots",
    "adopt-lowest-ballot": "a new leader re-proposes the lowest-ballot value reported per slot",
    "noop-overwrites-chosen": "a new leader fills holes with no-ops consulting only its own log",
    "commit-without-quorum": "the leader counts a slot as chosen on its own acceptance alone",
    "reply-before-chosen": "the leader answers a client when it proposes, before the choice",
    "commit-index-any-ballot": "a follower applies any accepted value below the leader's commit",
    "forget-promise-on-recover": "a recovered node keeps its accepted values but not its promise",
    "count-own-vote-before-sync": "the leader counts its own vote before its record is durable",
    "promise-hides-compaction": "a promise does not report compacted slots; they become no-ops",
}
