"""Snapshots on real files: atomic replacement, checksums, and crashes around them."""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pypaxos.storage import (
    CorruptSnapshotError,
    FileStorage,
    Snapshot,
    replay,
    write_snapshot_file,
)
from pypaxos.storage import file as file_module
from pypaxos.storage.file import SNAPSHOT_NAME, SNAPSHOT_TEMP_NAME, segment_name

if TYPE_CHECKING:
    from conftest import FsyncLog


def fill(s: FileStorage, n: int) -> None:
    for i in range(n):
        s.append(b"r%03d" % i + b"." * 24)  # 36-byte frames


def test_snapshot_round_trip_and_its_fsyncs(tmp_path: Path, fsyncs: FsyncLog) -> None:
    s = FileStorage(tmp_path)
    fill(s, 3)
    s.sync()
    fsyncs.reset()
    s.write_snapshot(Snapshot(3, b"state" * 1000))
    # The temp file's contents, then the directory that now names it snapshot.bin.
    assert fsyncs.calls == ["file", "dir"]
    assert not (tmp_path / SNAPSHOT_TEMP_NAME).exists()
    s.close()
    with FileStorage(tmp_path) as s:
        assert s.read_snapshot() == Snapshot(3, b"state" * 1000)


def test_a_leftover_temp_file_from_a_crash_is_ignored_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FileStorage(tmp_path) as s:
        fill(s, 4)
        s.write_snapshot(Snapshot(2, b"the good one"))
    # A crash in the middle of writing the next snapshot, before its rename.
    (tmp_path / SNAPSHOT_TEMP_NAME).write_bytes(b"PXS1 half of a newer snap")
    with caplog.at_level(logging.WARNING), FileStorage(tmp_path) as s:
        snapshot, records = replay(s)
        assert snapshot == Snapshot(2, b"the good one")
        assert [r.index for r in records] == [3, 4]
    assert not (tmp_path / SNAPSHOT_TEMP_NAME).exists()
    assert f"removing {tmp_path / SNAPSHOT_TEMP_NAME}" in caplog.text


def test_a_corrupt_snapshot_refuses_to_start_and_names_the_file(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        fill(s, 2)
        s.write_snapshot(Snapshot(2, b"some state worth keeping"))
    path = tmp_path / SNAPSHOT_NAME
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptSnapshotError, match=f"corrupt snapshot {path}: no valid end frame"):
        FileStorage(tmp_path)
    path.write_bytes(bytes(raw[:10]))
    with pytest.raises(CorruptSnapshotError, match="shorter than a header and an end frame"):
        FileStorage(tmp_path)


def test_a_crash_between_snapshot_and_compaction_is_finished_on_open(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, segment_bytes_max=80)
    fill(s, 10)  # two frames per segment: segments 1, 3, 5, 7, 9
    s.sync()
    s.write_snapshot(Snapshot(6, b"through 6"), compact=False)
    s.abandon()  # died before deleting the covered segments
    assert len(list(tmp_path.glob("wal-*.log"))) == 5
    with FileStorage(tmp_path, segment_bytes_max=80) as s:
        assert sorted(p.name for p in tmp_path.glob("wal-*.log")) == [
            segment_name(7),
            segment_name(9),
        ]
        _, records = replay(s)
        assert [r.index for r in records] == [7, 8, 9, 10]


def test_a_crash_right_after_installing_a_newer_snapshot(tmp_path: Path) -> None:
    # Make the snapshot file elsewhere and drop it in, as if the node died after the rename.
    with FileStorage(tmp_path / "peer") as peer:
        peer.write_snapshot(Snapshot(50, b"state through 50"))
    with FileStorage(tmp_path / "node") as s:
        fill(s, 3)
    shutil.copy(tmp_path / "peer" / SNAPSHOT_NAME, tmp_path / "node" / SNAPSHOT_NAME)
    with FileStorage(tmp_path / "node") as s:
        assert (s.first_index, s.last_index) == (51, 50)
        assert s.append(b"fifty-one") == 51
    assert [p.name for p in (tmp_path / "node").glob("wal-*.log")] == [segment_name(51)]


def test_the_snapshot_survives_an_abandon_right_after_writing_it(tmp_path: Path) -> None:
    s = FileStorage(tmp_path)
    fill(s, 5)
    s.write_snapshot(Snapshot(5, b"five"))
    s.abandon()
    with FileStorage(tmp_path) as s:
        assert s.read_snapshot() == Snapshot(5, b"five")
        assert s.last_index == 5


def test_a_durable_snapshot_is_handed_to_the_disk_in_steps_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []

    def sync_file_range(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append((offset, length, flags))
        return 0

    monkeypatch.setattr(file_module, "_sync_file_range", lambda: sync_file_range)
    chunks = [bytes([n]) * (1024 * 1024) for n in range(20)]
    write_snapshot_file(tmp_path, 5, chunks, fsync=True)
    started = [(offset, length) for offset, length, flags in calls if flags == 2]
    waited = [(offset, length) for offset, length, flags in calls if flags == 7]
    # every byte started once, in order, a step at a time
    assert started[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(started))
    assert all(n >= file_module.SNAPSHOT_WRITE_BEHIND_BYTES for _, n in started)
    assert all(n <= 2 * file_module.SNAPSHOT_WRITE_BEHIND_BYTES for _, n in started)
    # each step is waited for once the next one is started: no more than two in flight
    assert waited == started[: len(waited)] and len(waited) == len(started) - 1
    with FileStorage(tmp_path) as storage:
        reader = storage.open_snapshot()
        assert reader is not None
        assert list(reader.chunks()) == chunks
        reader.close()


def test_a_snapshot_without_fsync_is_not_handed_to_the_disk_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(file_module, "_sync_file_range", lambda: lambda *args: calls.append(1))
    write_snapshot_file(tmp_path, 5, [b"x" * (1024 * 1024)] * 10, fsync=False)
    assert calls == []
