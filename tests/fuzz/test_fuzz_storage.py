"""Fuzzing the write-ahead log and snapshot readers (``storage.file``) on damaged files.

A disk can tear a write, flip a bit or hand back garbage, and recovery must never turn that
into a forgotten promise or an invented vote.  Real records and snapshots are written with
``FileStorage`` into a temporary directory; then bytes are flipped, files truncated and bytes
inserted at places the fuzzer chooses, and the directory is opened again.  Either:

* it recovers: the snapshot exactly as written, and a prefix of the records written after it
  (a torn tail truncated), never a record that was not written; opening again recovers the
  same, and the log takes new records after it; or
* it raises ``CorruptStorageError``: ``CorruptLogError`` naming one of the segment files and a
  byte offset inside it, or ``CorruptSnapshotError`` naming the snapshot file.

Nothing else may escape.  The corpus (``corpus/storage/``) holds damaged files whose names
say what opening them must do: ``*.recovers-N.log`` (a lone first segment: N records),
``*.corrupt-at-N.log`` (``CorruptLogError`` at byte offset N), ``*.corrupt.bin`` (a snapshot:
``CorruptSnapshotError``).
"""

from __future__ import annotations

import re
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzz_helpers import corpus_files, fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

from pypaxos.storage import (
    CorruptLogError,
    CorruptSnapshotError,
    CorruptStorageError,
    FileStorage,
    Snapshot,
)
from pypaxos.storage.file import SNAPSHOT_NAME, segment_name


@dataclass(frozen=True)
class Written:
    records: list[bytes]  # record i + 1 is records[i]
    snapshot: Snapshot | None
    segment_bytes_max: int
    preallocate_bytes: int


@dataclass(frozen=True)
class Mutation:
    kind: str  # flip, truncate or insert
    file: int  # index into the sorted data files
    at: int  # a fraction of the file's size, in 1/1000
    data: bytes  # the byte to xor with (flip) or the bytes to insert

    def apply(self, blob: bytearray) -> None:
        at = len(blob) * self.at // 1000
        if self.kind == "flip" and blob:
            blob[min(at, len(blob) - 1)] ^= self.data[0]
        elif self.kind == "truncate":
            del blob[at:]
        elif self.kind == "insert":
            blob[at:at] = self.data


written = st.builds(
    Written,
    st.lists(st.binary(min_size=1, max_size=40), max_size=24),
    st.none() | st.builds(Snapshot, st.integers(0, 30), st.binary(max_size=40)),
    st.sampled_from([48, 160, 4096]),
    st.sampled_from([0, 128]),
)
mutations = st.lists(
    st.builds(
        Mutation,
        st.sampled_from(["flip", "truncate", "insert"]),
        st.integers(0, 7),
        st.integers(0, 1000),
        st.binary(min_size=1, max_size=12).filter(lambda b: b[0] != 0),
    ),
    max_size=3,
)


def open_storage(directory: Path, w: Written) -> FileStorage:
    return FileStorage(
        directory,
        fsync="never",
        segment_bytes_max=w.segment_bytes_max,
        preallocate_bytes=w.preallocate_bytes,
    )


def write(directory: Path, w: Written) -> Snapshot | None:
    """Write the records, the snapshot once its index is reached; the snapshot written."""
    snapshot = w.snapshot
    if snapshot is not None and snapshot.index > len(w.records):
        snapshot = Snapshot(len(w.records), snapshot.data)
    with open_storage(directory, w) as storage:
        for index, record in enumerate(w.records, start=1):
            storage.append(record)
            if snapshot is not None and snapshot.index == index:
                storage.sync()
                storage.write_snapshot(snapshot)
        if snapshot is not None and snapshot.index == 0:
            storage.write_snapshot(snapshot)
    return snapshot


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name != "LOCK")


Recovered = tuple[Snapshot | None, list[tuple[int, bytes]]]


def recover(directory: Path, w: Written) -> Recovered:
    with open_storage(directory, w) as storage:
        snapshot = storage.read_snapshot()
        after = snapshot.index if snapshot is not None else 0
        return snapshot, [(r.index, r.data) for r in storage.records(after)]


def check_error(error: CorruptStorageError, directory: Path) -> None:
    match error:
        case CorruptLogError():
            path = Path(error.path)
            assert path.parent == directory and re.fullmatch(r"wal-\d{16}\.log", path.name)
            assert 0 <= error.offset <= path.stat().st_size
        case CorruptSnapshotError():
            assert Path(error.path) == directory / SNAPSHOT_NAME
        case _:
            raise AssertionError(f"unexpected {type(error).__name__}: {error}")


@fuzz_settings(400)
@given(written, mutations)
def test_damaged_files_recover_a_written_prefix_or_raise_corrupt_storage(
    w: Written, damage: list[Mutation]
) -> None:
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp) / "data"
        snapshot = write(directory, w)
        files = data_files(directory)
        before = {p: p.read_bytes() for p in files}
        for mutation in damage:
            path = files[mutation.file % len(files)]
            blob = bytearray(path.read_bytes())
            mutation.apply(blob)
            path.write_bytes(blob)
        untouched = all(p.read_bytes() == blob for p, blob in before.items())
        try:
            got = recover(directory, w)
        except CorruptStorageError as error:
            assert not untouched, f"an undamaged directory refused: {error}"
            event(type(error).__name__)
            check_error(error, directory)
            return
        check_recovered(got, snapshot, w, complete=untouched)
        written_after = len(w.records) - after(got)
        event("recovered all" if len(got[1]) == written_after else "recovered a prefix")
        assert recover(directory, w) == got, "opening again recovers the same"
        with open_storage(directory, w) as storage:
            storage.append(b"after recovery")
        again_snapshot, again = recover(directory, w)
        assert again_snapshot == got[0]
        assert again == [
            *got[1],
            ((got[1][-1][0] if got[1] else after(got)) + 1, b"after recovery"),
        ]


def after(got: Recovered) -> int:
    return got[0].index if got[0] is not None else 0


def check_recovered(got: Recovered, snapshot: Snapshot | None, w: Written, complete: bool) -> None:
    recovered_snapshot, records = got
    assert recovered_snapshot == snapshot, "the snapshot is the one written, or none"
    start = after(got)
    expected = [(i, w.records[i - 1]) for i in range(start + 1, len(w.records) + 1)]
    assert records == expected[: len(records)], "only a prefix of what was written"
    if complete:
        assert records == expected


def frames(blob: bytes) -> list[tuple[int, bytes]]:
    """An independent reading of a segment: (offset, payload) of each valid leading frame."""
    out, offset = [], 0
    while offset + 8 <= len(blob):
        length, crc = struct.unpack_from("<II", blob, offset)
        payload = blob[offset + 8 : offset + 8 + length]
        if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
            break
        out.append((offset, payload))
        offset += 8 + length
    return out


CORPUS_NAME = re.compile(r"\.(recovers-(\d+)|corrupt-at-(\d+)|corrupt)\.(log|bin)$")


@pytest.mark.parametrize("path", corpus_files("storage"), ids=lambda p: p.name)
def test_corpus_files(path: Path, tmp_path: Path) -> None:
    match = CORPUS_NAME.search(path.name)
    assert match is not None, f"{path.name} does not say what it must do"
    blob = path.read_bytes()
    directory = tmp_path / "data"
    directory.mkdir()
    target = directory / (segment_name(1) if match.group(4) == "log" else SNAPSHOT_NAME)
    target.write_bytes(blob)
    w = Written([], None, 4096, 0)
    if match.group(2) is not None:
        snapshot, records = recover(directory, w)
        assert snapshot is None
        assert records == [(i, p) for i, (_, p) in enumerate(frames(blob), start=1)]
        assert len(records) == int(match.group(2))
    elif match.group(3) is not None:
        with pytest.raises(CorruptLogError) as caught:
            recover(directory, w)
        assert Path(caught.value.path) == target
        assert caught.value.offset == int(match.group(3))
    else:
        with pytest.raises(CorruptSnapshotError) as caught_snapshot:
            recover(directory, w)
        assert Path(caught_snapshot.value.path) == target
