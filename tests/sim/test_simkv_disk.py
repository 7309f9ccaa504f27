"""The KV simulation's write-ahead-log disk: only synced records survive, compaction is exact."""

from __future__ import annotations

import random

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import AcceptRecord, Entry, MultiConfig, Node, PromiseRecord, SnapshotRecord
from pypaxos.sim.kv_node import RecordLogDisk, compact_records


def test_a_crash_loses_unsynced_records_only_and_a_sync_persists_what_came_before() -> None:
    disk = RecordLogDisk()
    assert disk.read(1) is None
    disk.write(1, "a", sync=True)
    generation = disk.write(1, "b", sync=False)
    assert generation is not None and disk.unsynced(1)
    assert disk.crash(1)
    assert disk.read(1) == ("a",)
    disk.write(1, "c", sync=False)
    disk.write(1, "d", sync=True)  # an fsync flushes the whole file
    assert disk.read(1) == ("a", "c", "d") and not disk.unsynced(1)
    late = disk.write(1, "e", sync=False)
    assert late is not None and disk.flush(1, late) and not disk.flush(1, late)
    assert disk.read(1) == ("a", "c", "d", "e")


def test_compaction_keeps_exactly_what_recovery_uses() -> None:
    def value(tag: bytes) -> tuple[Entry, ...]:
        return (Entry(1, 7, tag),)

    machine = KVStateMachine()
    records: list[object] = [
        PromiseRecord(Ballot(1, 1)),
        AcceptRecord(0, Ballot(1, 1), value(b"a")),
        AcceptRecord(1, Ballot(1, 1), value(b"b")),
        SnapshotRecord(1, (machine.snapshot(),)),
        PromiseRecord(Ballot(3, 2)),
        AcceptRecord(1, Ballot(2, 2), value(b"c")),
        AcceptRecord(2, Ballot(2, 2), value(b"d")),
        PromiseRecord(Ballot(2, 1)),
        SnapshotRecord(2, tuple(machine.snapshot_chunks(64))),
        AcceptRecord(3, Ballot(3, 2), value(b"e")),
    ]
    compacted = compact_records(records, 2)  # what CompactLog says once slot 2 is durable
    assert len(compacted) < len(records)
    config = MultiConfig()
    full = Node.recover(1, config, random.Random(0), KVStateMachine(), records)  # type: ignore[arg-type]
    short = Node.recover(1, config, random.Random(0), KVStateMachine(), compacted)  # type: ignore[arg-type]
    assert full.acceptor.promised == short.acceptor.promised == Ballot(3, 2)
    assert full.acceptor.accepted == short.acceptor.accepted
    assert full.acceptor.log_start == short.acceptor.log_start == 2
    assert full.applied_index == short.applied_index == 2
