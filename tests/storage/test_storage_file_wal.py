"""The file log on real files: framing, group commit, rotation, limits, fsync modes, failures."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pypaxos.storage import (
    FileStorage,
    RecordTooLargeError,
    Snapshot,
    StorageFailedError,
    StorageLockedError,
)
from pypaxos.storage.file import remove_segments, segment_name

if TYPE_CHECKING:
    from conftest import FsyncLog


def segments(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob("wal-*.log"))


def test_round_trip_through_real_files_and_the_documented_frame(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.append(b"hello")
        s.append(b"paxos" * 100)
    assert segments(tmp_path) == ["wal-0000000000000001.log"]
    raw = (tmp_path / segment_name(1)).read_bytes()
    assert raw[:13] == struct.pack("<II", 5, zlib.crc32(b"hello")) + b"hello"
    assert len(raw) == 13 + 8 + 500
    with FileStorage(tmp_path) as s:
        assert [(r.index, r.data) for r in s.records()] == [(1, b"hello"), (2, b"paxos" * 100)]
        assert s.synced_index == 2
        assert s.append(b"more") == 3


def test_group_commit_is_one_fsync_per_sync_call(tmp_path: Path, fsyncs: FsyncLog) -> None:
    s = FileStorage(tmp_path / "d")
    assert fsyncs.calls == ["dir", "dir"]  # the new data directory and its first segment
    fsyncs.reset()
    for i in range(500):
        s.append(b"record %d" % i)
    assert fsyncs.calls == []  # appends alone never fsync
    s.sync()
    assert fsyncs.calls == ["file"]
    s.sync()  # nothing new: no fsync at all
    assert fsyncs.calls == ["file"]
    for i in range(3):
        s.append(b"again %d" % i)
    s.sync()
    assert fsyncs.calls == ["file", "file"]
    s.close()
    assert fsyncs.calls == ["file", "file"]  # close had nothing left to sync
    with FileStorage(tmp_path / "d") as reopened:
        assert reopened.last_index == 503


def test_segments_rotate_at_the_size_limit_and_are_named_by_first_index(
    tmp_path: Path, fsyncs: FsyncLog
) -> None:
    s = FileStorage(tmp_path, segment_bytes_max=100)
    fsyncs.reset()
    for i in range(1, 13):
        s.append(b"r%02d" % i + b"-" * 17)  # 28-byte frames: 3 per 100-byte segment
    # Each rotation made the finished segment durable, then the new segment's directory entry.
    assert fsyncs.calls == ["file", "dir"] * 3
    assert segments(tmp_path) == [segment_name(i) for i in (1, 4, 7, 10)]
    assert s.synced_index == 9  # rotations synced everything before the active segment
    s.close()
    for name in segments(tmp_path):
        assert (tmp_path / name).stat().st_size == 84
    with FileStorage(tmp_path, segment_bytes_max=100) as s:
        assert [r.index for r in s.records()] == list(range(1, 13))
        assert [r.data[:3] for r in s.records(after=10)] == [b"r11", b"r12"]


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    with FileStorage(tmp_path, segment_bytes_max=100) as s:
        s.append(b"small")
        s.append(b"B" * 300)
        s.append(b"small again")
    assert segments(tmp_path) == [segment_name(1), segment_name(2), segment_name(3)]
    with FileStorage(tmp_path, segment_bytes_max=100) as s:
        assert [len(r.data) for r in s.records()] == [5, 300, 11]


def test_compaction_deletes_only_whole_segments_below_the_snapshot(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, segment_bytes_max=100)
    for i in range(1, 13):
        s.append(b"r%02d" % i + b"-" * 17)  # segments start at 1, 4, 7, 10
    s.sync()
    s.write_snapshot(Snapshot(8, b"state through 8"))
    # 1..3 and 4..6 are wholly covered; 7..9 holds record 9, which the snapshot does not cover.
    assert segments(tmp_path) == [segment_name(7), segment_name(10)]
    assert s.first_index == 7
    assert [r.index for r in s.records(after=8)] == [9, 10, 11, 12]
    s.write_snapshot(Snapshot(12, b"state through 12"))
    assert segments(tmp_path) == [segment_name(10)]  # the active segment always stays
    s.close()
    with FileStorage(tmp_path, segment_bytes_max=100) as s:
        assert s.read_snapshot() == Snapshot(12, b"state through 12")
        assert list(s.records(after=12)) == []
        assert s.append(b"thirteen") == 13


def test_oversized_record_is_rejected_and_nothing_is_written(tmp_path: Path) -> None:
    with FileStorage(tmp_path, record_bytes_max=64) as s:
        s.append(b"fine")
        with pytest.raises(RecordTooLargeError, match="65 bytes exceeds record_bytes_max=64"):
            s.append(b"x" * 65)
        s.sync()
        assert s.last_index == 1
    assert (tmp_path / segment_name(1)).stat().st_size == 8 + 4


def test_fsync_never_calls_no_fsync_but_survives_a_process_crash(
    tmp_path: Path, fsyncs: FsyncLog
) -> None:
    s = FileStorage(tmp_path / "d", fsync="never", segment_bytes_max=100)
    for i in range(20):
        s.append(b"r%02d" % i + b"." * 20)  # rotates several times
    s.sync()
    s.write_snapshot(Snapshot(5, b"snap"))
    s.append(b"unsynced")
    s.abandon()  # like kill -9: what sync() handed to the kernel is still there
    with FileStorage(tmp_path / "d", fsync="never", segment_bytes_max=100) as s:
        assert s.last_index == 20
        assert s.read_snapshot() == Snapshot(5, b"snap")
    assert fsyncs.calls == []


def test_sync_hands_records_to_the_kernel_in_fsync_never_mode(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, fsync="never")
    s.append(b"abc")
    assert (tmp_path / segment_name(1)).stat().st_size == 0  # still in the user-space buffer
    s.sync()
    assert (tmp_path / segment_name(1)).stat().st_size == 11
    s.close()


def test_a_full_write_buffer_reaches_the_kernel_before_sync(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, write_buffer_bytes_max=64)
    for i in range(9):
        s.append(b"record-%d" % i + b"." * 20)  # 36-byte frames: a flush every second one
    assert (tmp_path / segment_name(1)).stat().st_size > 0
    assert s.synced_index == 0  # handed to the kernel is not durable
    s.abandon()
    with FileStorage(tmp_path) as s:
        # A crash may keep a prefix of the unsynced records, never one after a hole.
        assert [r.index for r in s.records()] == list(range(1, s.last_index + 1))
        assert s.last_index == 8  # the ninth was still in the user-space buffer


def test_a_failed_fsync_poisons_the_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = FileStorage(tmp_path)
    s.append(b"durable")
    s.sync()
    s.append(b"doomed")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageFailedError, match=r"sync failed .*Input/output error"):
        s.sync()
    monkeypatch.undo()
    # Retrying could "succeed" on pages the kernel dropped: every later call refuses.
    with pytest.raises(StorageFailedError, match="earlier write or fsync failed"):
        s.sync()
    with pytest.raises(StorageFailedError):
        s.append(b"more")
    s.close()  # releases the files without trying to sync again
    with FileStorage(tmp_path) as s:
        assert [r.data for r in s.records()][:1] == [b"durable"]


def test_one_directory_one_open_storage(tmp_path: Path) -> None:
    first = FileStorage(tmp_path)
    with pytest.raises(StorageLockedError, match="is in use"):
        FileStorage(tmp_path)
    first.close()
    FileStorage(tmp_path).close()


def test_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be"):
        FileStorage(tmp_path, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_bytes_max must be >= 1"):
        FileStorage(tmp_path, segment_bytes_max=0)


def test_detached_segments_are_forgotten_at_once_and_deleted_later_oldest_first(
    tmp_path: Path,
) -> None:
    s = FileStorage(tmp_path, segment_bytes_max=100)
    for i in range(1, 13):
        s.append(b"r%02d" % i + b"-" * 17)  # segments start at 1, 4, 7, 10
    s.sync()
    s.write_snapshot(Snapshot(8, b"state through 8"), compact=False)
    detached = s.detach_compacted(8)
    assert detached == [tmp_path / segment_name(1), tmp_path / segment_name(4)]
    assert s.first_index == 7  # the storage no longer counts them...
    assert [r.index for r in s.records(after=8)] == [9, 10, 11, 12]
    # ...but they are still on disk until someone deletes them
    assert segments(tmp_path) == [segment_name(i) for i in (1, 4, 7, 10)]
    with pytest.raises(ValueError, match="no snapshot covers"):
        s.detach_compacted(9)
    removed: list[str] = []
    unlink = Path.unlink

    def record(path: Path, missing_ok: bool = False) -> None:
        removed.append(path.name)
        unlink(path, missing_ok=missing_ok)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", record)
        remove_segments(detached)
    assert removed == [segment_name(1), segment_name(4)]
    assert segments(tmp_path) == [segment_name(7), segment_name(10)]
    remove_segments(detached)  # already gone: nothing to do
    s.close()


def test_a_crash_before_detached_segments_are_deleted_leaves_a_log_that_opens(
    tmp_path: Path,
) -> None:
    s = FileStorage(tmp_path, segment_bytes_max=100)
    for i in range(1, 13):
        s.append(b"r%02d" % i + b"-" * 17)
    s.sync()
    s.write_snapshot(Snapshot(8, b"state through 8"), compact=False)
    s.detach_compacted(8)
    s.abandon()  # the process dies before the file thread deleted anything
    with FileStorage(tmp_path, segment_bytes_max=100) as again:
        assert segments(tmp_path) == [segment_name(7), segment_name(10)]
        assert [r.index for r in again.records(after=8)] == [9, 10, 11, 12]
