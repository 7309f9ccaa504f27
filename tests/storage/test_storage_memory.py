"""The in-memory storage's own knobs: how much a crash keeps, and how many syncs did work."""

from __future__ import annotations

import pytest

from pypaxos.storage import MemoryStorage, Snapshot


def test_a_crash_can_keep_a_prefix_of_the_unsynced_records() -> None:
    s = MemoryStorage()
    for data in (b"a", b"b", b"c", b"d", b"e"):
        s.append(data)
        if data == b"b":
            s.sync()
    s.crash(unsynced_kept=2)
    assert [(r.index, r.data) for r in s.records()] == [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")]
    assert s.synced_index == 4  # what survived a crash is on disk
    s.crash(unsynced_kept=100)  # more than there are: keeps them all
    assert s.last_index == 4
    with pytest.raises(ValueError, match="unsynced_kept"):
        s.crash(unsynced_kept=-1)


def test_sync_count_counts_only_syncs_that_made_something_durable() -> None:
    s = MemoryStorage()
    s.sync()
    for _ in range(100):
        s.append(b"x")
    s.sync()
    s.sync()
    assert s.sync_count == 1


def test_a_crash_keeps_the_indexes_contiguous_when_the_snapshot_is_ahead() -> None:
    s = MemoryStorage()
    for _ in range(5):
        s.append(b"x")
    s.sync()
    s.append(b"y")
    s.write_snapshot(Snapshot(6, b"six"), compact=False)
    s.crash()
    # What survived (1..5) ends before the snapshot (6): like the file log, start again after it.
    assert (s.first_index, s.last_index) == (7, 6)
    assert s.append(b"z") == 7
    s.write_snapshot(Snapshot(7, b"seven"))
    s.append(b"w")
    s.crash()
    assert [r.index for r in s.records(after=7)] == []
    assert s.last_index == 7
    s.write_snapshot(Snapshot(9, b"nine"), compact=False)
    s.append(b"ten")
    s.crash()  # the only record (10) was unsynced and the snapshot is newer than what is left
    assert (s.first_index, s.last_index) == (10, 9)
