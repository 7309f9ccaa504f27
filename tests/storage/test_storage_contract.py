"""The ``Storage`` contract, run against both the in-memory and the file implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pypaxos.storage import (
    CompactedError,
    LogRecord,
    RecordTooLargeError,
    Snapshot,
    Storage,
    StorageError,
    replay,
)

if TYPE_CHECKING:
    from conftest import Harness


def contents(storage: Storage, after: int = 0) -> list[tuple[int, bytes]]:
    return [(r.index, r.data) for r in storage.records(after)]


def test_append_returns_consecutive_indexes_and_records_replays_them(harness: Harness) -> None:
    s = harness.storage
    assert (s.first_index, s.last_index) == (1, 0)
    assert [s.append(b"a"), s.append(b"bb"), s.append(bytearray(b"ccc"))] == [1, 2, 3]
    assert contents(s) == [(1, b"a"), (2, b"bb"), (3, b"ccc")]
    assert contents(s, after=2) == [(3, b"ccc")]
    assert list(s.records(after=3)) == []
    assert all(isinstance(r, LogRecord) for r in s.records())


def test_synced_records_survive_a_crash_and_unsynced_ones_do_not(harness: Harness) -> None:
    harness.storage.append(b"one")
    harness.storage.append(b"two")
    harness.storage.sync()
    assert harness.storage.synced_index == 2
    harness.storage.append(b"lost")
    harness.crash()
    s = harness.storage
    assert contents(s) == [(1, b"one"), (2, b"two")]
    assert s.append(b"three") == 3  # the lost record's index is given out again


def test_clean_restart_keeps_everything(harness: Harness) -> None:
    for i in range(10):
        harness.storage.append(b"r%d" % i)
    harness.restart()
    assert contents(harness.storage) == [(i + 1, b"r%d" % i) for i in range(10)]
    assert harness.storage.synced_index == 10


def test_sync_with_nothing_new_is_a_no_op(harness: Harness) -> None:
    harness.storage.sync()
    assert harness.storage.synced_index == 0


def test_empty_and_oversized_records_are_rejected(harness: Harness) -> None:
    s = harness.storage
    with pytest.raises(ValueError, match="must not be empty"):
        s.append(b"")
    with pytest.raises(RecordTooLargeError, match="1001 bytes exceeds record_bytes_max=1000"):
        s.append(b"x" * 1001)
    with pytest.raises(TypeError):
        s.append("text")  # type: ignore[arg-type]
    assert s.append(b"x" * 1000) == 1  # nothing was consumed by the rejected ones


def test_replay_returns_the_snapshot_and_the_records_after_it(harness: Harness) -> None:
    s = harness.storage
    for i in range(1, 8):
        s.append(b"r%d" % i)
    s.write_snapshot(Snapshot(5, b"state@5"))
    harness.restart()
    snapshot, records = replay(harness.storage)
    assert snapshot == Snapshot(5, b"state@5")
    assert [(r.index, r.data) for r in records] == [(6, b"r6"), (7, b"r7")]


def test_replay_without_snapshot_returns_the_whole_log(harness: Harness) -> None:
    harness.storage.append(b"a")
    snapshot, records = replay(harness.storage)
    assert snapshot is None
    assert [r.data for r in records] == [b"a"]


def test_compaction_drops_a_prefix_and_reading_it_is_an_error(harness: Harness) -> None:
    s = harness.storage
    for i in range(1, 21):
        s.append(b"record-%02d" % i)  # 17-byte frames: a few per 100-byte file segment
    s.write_snapshot(Snapshot(20, b"all"))
    assert s.first_index > 1
    with pytest.raises(CompactedError, match="read the snapshot"):
        list(s.records(after=0))
    assert list(s.records(after=20)) == []
    assert s.append(b"next") == 21


def test_compaction_never_goes_beyond_the_snapshot(harness: Harness) -> None:
    s = harness.storage
    for _ in range(5):
        s.append(b"r")
    with pytest.raises(ValueError, match="no snapshot covers"):
        s.compact(1)
    s.write_snapshot(Snapshot(2, b"s"), compact=False)
    with pytest.raises(ValueError, match="no snapshot covers"):
        s.compact(3)
    s.compact(2)
    assert contents(s, after=2) == [(3, b"r"), (4, b"r"), (5, b"r")]


def test_snapshot_indexes_only_grow(harness: Harness) -> None:
    s = harness.storage
    s.append(b"r")
    s.append(b"r")
    s.write_snapshot(Snapshot(2, b"two"))
    with pytest.raises(ValueError, match="below the current 2"):
        s.write_snapshot(Snapshot(1, b"one"))
    s.write_snapshot(Snapshot(2, b"two again"))
    assert s.read_snapshot() == Snapshot(2, b"two again")


def test_a_snapshot_beyond_the_log_restarts_the_log_after_it(harness: Harness) -> None:
    s = harness.storage
    s.append(b"old")
    s.sync()
    s.write_snapshot(Snapshot(100, b"installed from a peer"))
    assert (s.first_index, s.last_index) == (101, 100)
    assert s.append(b"new") == 101
    harness.restart()
    snapshot, records = replay(harness.storage)
    assert snapshot == Snapshot(100, b"installed from a peer")
    assert [(r.index, r.data) for r in records] == [(101, b"new")]
    assert harness.storage.append(b"newer") == 102


def test_unsynced_records_covered_by_the_snapshot_are_not_needed_after_a_crash(
    harness: Harness,
) -> None:
    s = harness.storage
    s.append(b"a")
    s.sync()
    s.append(b"b")  # never synced, but the durable snapshot covers it
    s.write_snapshot(Snapshot(2, b"a+b"))
    harness.crash()
    assert harness.storage.last_index == 2
    assert list(harness.storage.records(after=2)) == []
    assert harness.storage.append(b"c") == 3


def test_a_closed_storage_refuses_work(harness: Harness) -> None:
    harness.storage.append(b"a")
    harness.storage.close()
    harness.storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        harness.storage.append(b"b")
    with pytest.raises(StorageError, match="closed"):
        harness.storage.sync()
    harness.crash()  # reopening works, and close() had synced
    assert contents(harness.storage) == [(1, b"a")]
