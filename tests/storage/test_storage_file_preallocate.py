"""Preallocated segments (what nodes use): zeros ahead of the records, ``fdatasync``, and the
same recovery rules as without (a torn record is truncated, damage before a good one stops)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pypaxos.storage import CorruptLogError, FileStorage
from pypaxos.storage.file import encode_frame

STEP = 4096


def open_storage(path: Path, **kwargs: int) -> FileStorage:
    return FileStorage(path, preallocate_bytes=STEP, **kwargs)


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("wal-*.log"))


def test_the_segment_grows_ahead_of_the_records_and_sync_is_fdatasync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "fdatasync", lambda fd: (calls.append("fdatasync"), real_fdatasync(fd))[1]
    )
    records = [f"record {i}".encode() for i in range(10)]
    with open_storage(tmp_path) as storage:
        calls.clear()
        for record in records:
            storage.append(record)
            storage.sync()
        assert calls == ["fdatasync"] * 10
    (segment,) = segments(tmp_path)
    used = sum(len(encode_frame(r)) for r in records)
    assert segment.stat().st_size == STEP  # zeros after the records
    assert segment.read_bytes()[used:] == bytes(STEP - used)
    with open_storage(tmp_path) as storage:
        assert [r.data for r in storage.records()] == records


def test_a_crash_loses_only_unsynced_records_and_the_zeros_stay_a_clean_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_storage(tmp_path)
    storage.append(b"synced")
    storage.sync()
    storage.append(b"not synced")
    storage.abandon()  # kill -9: the buffer never reached the kernel
    with caplog.at_level(logging.WARNING, logger="pypaxos.storage.file"):
        storage = open_storage(tmp_path)
    assert "truncating" not in caplog.text
    assert [r.data for r in storage.records()] == [b"synced"]
    assert storage.append(b"next") == 2
    storage.close()
    with open_storage(tmp_path) as storage:
        assert [r.data for r in storage.records()] == [b"synced", b"next"]


def test_a_torn_record_inside_the_zeros_is_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_storage(tmp_path) as storage:
        storage.append(b"first")
        storage.append(b"second")
    (segment,) = segments(tmp_path)
    end = len(encode_frame(b"first")) + len(encode_frame(b"second"))
    with open(segment, "r+b") as f:  # half a frame where the next record would go
        f.seek(end)
        f.write(encode_frame(b"third record")[:10])
    with caplog.at_level(logging.WARNING, logger="pypaxos.storage.file"):
        storage = open_storage(tmp_path)
    assert f"truncating torn tail of {segment} at byte offset {end}" in caplog.text
    assert segment.stat().st_size == end
    assert [r.data for r in storage.records()] == [b"first", b"second"]
    storage.close()


def test_damage_before_a_good_record_stops_the_node_even_with_zeros_after(
    tmp_path: Path,
) -> None:
    with open_storage(tmp_path) as storage:
        for i in range(3):
            storage.append(f"record {i}".encode())
    (segment,) = segments(tmp_path)
    raw = bytearray(segment.read_bytes())
    raw[len(encode_frame(b"record 0")) - 1] ^= 0xFF  # inside record 0's payload
    segment.write_bytes(bytes(raw))
    with pytest.raises(CorruptLogError) as caught:
        open_storage(tmp_path)
    assert caught.value.offset == 0


def test_a_finished_segment_is_cut_back_to_its_records(tmp_path: Path) -> None:
    records = [bytes([i]) * 50 for i in range(1, 9)]
    with open_storage(tmp_path, segment_bytes_max=200) as storage:
        for record in records:
            storage.append(record)
            storage.sync()
    *finished, active = segments(tmp_path)
    assert finished
    for segment in finished:
        data = segment.read_bytes()
        assert data and data[-1] != 0  # ends with a record's last byte, no zeros
        assert len(data) % len(encode_frame(records[0])) == 0
    assert active.stat().st_size == 200  # grown to the segment limit, not past it
    with open_storage(tmp_path, segment_bytes_max=200) as storage:
        assert [r.data for r in storage.records()] == records
