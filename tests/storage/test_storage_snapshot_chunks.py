"""Chunked snapshot files: framing, damage refused where it is, a forked writer, old files."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pypaxos.storage import (
    CorruptSnapshotError,
    FileStorage,
    MemoryStorage,
    Snapshot,
    SnapshotFileReader,
    write_snapshot_file,
)
from pypaxos.storage.file import (
    CHUNKED_HEADER,
    FRAME_HEADER,
    SNAPSHOT_NAME,
    SNAPSHOT_TEMP_NAME,
    encode_snapshot_v1,
)

if TYPE_CHECKING:
    from conftest import FsyncLog

CHUNKS = [b"head", b"a" * 300, b"b" * 5, b"c" * 70_000]


def test_chunks_round_trip_one_at_a_time_and_by_number(tmp_path: Path, fsyncs: FsyncLog) -> None:
    with FileStorage(tmp_path) as s:
        s.append(b"r1")
        s.sync()
        fsyncs.reset()
        s.write_snapshot_chunks(1, iter(CHUNKS))
        assert fsyncs.calls == ["file", "dir"]  # the temp file's data, then the rename
    with FileStorage(tmp_path) as s:
        reader = s.open_snapshot()
        assert reader is not None
        assert (reader.index, reader.format_version, reader.chunk_count) == (1, 2, 4)
        assert list(reader.chunks()) == CHUNKS
        assert [reader.read_chunk(i) for i in (3, 0, 2)] == [CHUNKS[3], CHUNKS[0], CHUNKS[2]]
        with pytest.raises(IndexError):
            reader.read_chunk(4)
        reader.close()
        assert s.read_snapshot() == Snapshot(1, b"".join(CHUNKS))


def test_a_reader_keeps_reading_the_snapshot_it_opened_after_a_newer_replaces_it(
    tmp_path: Path,
) -> None:
    with FileStorage(tmp_path) as s:
        s.write_snapshot_chunks(0, CHUNKS)
        old = s.open_snapshot()
        assert old is not None
        s.write_snapshot_chunks(5, [b"newer"])
        assert list(old.chunks()) == CHUNKS and old.index == 0
        old.close()
        assert s.read_snapshot() == Snapshot(5, b"newer")


def _offset_of_chunk(path: Path, seq: int) -> int:
    raw = path.read_bytes()
    offset = CHUNKED_HEADER.size
    for _ in range(seq):
        offset += FRAME_HEADER.size + FRAME_HEADER.unpack_from(raw, offset)[0]
    return offset


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("payload", "chunk 2 at byte {offset}: CRC mismatch"),
        ("length", "chunk 2 at byte {offset}: impossible length"),
    ],
)
def test_a_damaged_chunk_is_refused_when_read_and_named(
    tmp_path: Path, damage: str, reason: str
) -> None:
    with FileStorage(tmp_path) as s:
        s.write_snapshot_chunks(0, CHUNKS)
    path = tmp_path / SNAPSHOT_NAME
    offset = _offset_of_chunk(path, 2)
    raw = bytearray(path.read_bytes())
    if damage == "payload":
        raw[offset + FRAME_HEADER.size + 1] ^= 0x40
    else:
        raw[offset : offset + 4] = struct.pack("<I", 10**9)
    path.write_bytes(bytes(raw))
    reader = SnapshotFileReader(path)  # header and end frame are fine
    chunks = reader.chunks()
    assert next(chunks) == CHUNKS[0] and next(chunks) == CHUNKS[1]
    with pytest.raises(CorruptSnapshotError, match=reason.format(offset=offset)) as caught:
        next(chunks)
    assert caught.value.path == str(path)
    reader.close()


def test_cut_spliced_and_foreign_files_are_refused_at_open(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.write_snapshot_chunks(7, CHUNKS)
    path = tmp_path / SNAPSHOT_NAME
    raw = path.read_bytes()
    cases = {
        "cut": (raw[:-30], "no valid end frame"),
        "header": (raw[:6] + bytes([raw[6] ^ 1]) + raw[7:], "header CRC mismatch"),
        "foreign": (b"GIF89a" + raw[6:], "bad magic"),
    }
    with FileStorage(tmp_path / "other") as other:
        other.write_snapshot_chunks(8, CHUNKS)
    other_raw = (tmp_path / "other" / SNAPSHOT_NAME).read_bytes()
    cases["spliced"] = (raw[:-24] + other_raw[-24:], "end frame says index 8, header 7")
    for name, (blob, reason) in cases.items():
        path.write_bytes(blob)
        with pytest.raises(CorruptSnapshotError, match=reason):
            FileStorage(tmp_path)
        assert name


def test_a_child_process_writes_it_and_the_storage_adopts_it(tmp_path: Path) -> None:
    s = FileStorage(tmp_path)
    for i in range(5):
        s.append(b"r%d" % i)
    s.sync()
    pid = os.fork()
    if pid == 0:  # the child: write the file, nothing else
        code = 1
        try:
            write_snapshot_file(tmp_path, 5, iter(CHUNKS), fsync=True)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not (tmp_path / SNAPSHOT_TEMP_NAME).exists()
    s.adopt_snapshot(5)
    assert s.read_snapshot() == Snapshot(5, b"".join(CHUNKS))
    with pytest.raises(CorruptSnapshotError, match="holds index 5, not 6"):
        s.adopt_snapshot(6)
    s.close()


def test_a_crash_mid_write_leaves_the_old_snapshot(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.write_snapshot_chunks(0, [b"old"])

    def broken() -> object:
        yield b"new chunk"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_snapshot_file(tmp_path, 3, broken(), fsync=True)  # type: ignore[arg-type]
    assert (tmp_path / SNAPSHOT_TEMP_NAME).exists()  # a crash leaves this behind
    with FileStorage(tmp_path) as s:
        assert s.read_snapshot() == Snapshot(0, b"old")
    assert not (tmp_path / SNAPSHOT_TEMP_NAME).exists()


def test_a_format_1_file_from_an_older_version_is_still_read(tmp_path: Path) -> None:
    with FileStorage(tmp_path):
        pass
    (tmp_path / SNAPSHOT_NAME).write_bytes(encode_snapshot_v1(Snapshot(4, b"old state")))
    with FileStorage(tmp_path) as s:
        reader = s.open_snapshot()
        assert reader is not None
        assert (reader.format_version, reader.index, list(reader.chunks())) == (
            1,
            4,
            [b"old state"],
        )
        reader.close()
        assert s.last_index == 4


def test_memory_storage_keeps_chunks_too() -> None:
    s = MemoryStorage()
    s.write_snapshot_chunks(0, CHUNKS)
    reader = s.open_snapshot()
    assert (
        reader is not None and list(reader.chunks()) == CHUNKS and reader.read_chunk(1) == CHUNKS[1]
    )
    with pytest.raises(ValueError, match="must not be empty"):
        s.write_snapshot_chunks(1, [b""])
