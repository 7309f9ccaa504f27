"""Planted bugs in the key-value state machine (see ``core.bugs`` for the registry).

Caught by the KV simulator (tests/sim/test_simkv_bugs.py), which checks exactly-once answers,
and by comparing replicas' state digests (``kv.digest``; tests/kv/test_kv_digest.py).
"""

from __future__ import annotations

from pypaxos.core.bugs import PlantedBug
from pypaxos.kv.values import ListValue, Stored


class KvBug(PlantedBug):
    """Planted mistakes in the state machine (``kv``)."""

    SNAPSHOT_DROPS_SESSIONS = (
        "snapshot-drops-sessions",
        "the snapshot leaves out the exactly-once dedup table",
    )
    SNAPSHOT_DROPS_DEADLINES = (
        "snapshot-drops-deadlines",
        "the snapshot leaves out the keys' deadlines: a replica restored from it keeps keys",
    )
    WATCH_MISSES_WRITES = (
        "watch-misses-writes",
        "WATCH is not told of modifications, so EXEC runs after a watched key changed",
    )
    EXPIRED_SESSION_REOPENS = (
        "refused-client-reopens",
        "a client id refused as expired leaves no tombstone, so a late first request reopens it",
    )
    LIST_RESTORED_REVERSED = (
        "list-restored-reversed",
        "a snapshot restores every list back to front (its items pushed at the head one by one)",
    )


def plant_restore_bugs(bugs: frozenset[KvBug], data: dict[bytes, Stored]) -> None:
    """What the restore-side planted bugs do to values just read from a snapshot."""
    if KvBug.LIST_RESTORED_REVERSED in bugs:
        for value in data.values():
            if isinstance(value, ListValue):
                value.items.reverse()
