"""Property: under random appends, syncs, snapshots and crashes, file and memory agree.

Both run the same operations.  At a crash the file storage is abandoned (its user-space buffer
is lost, as in ``kill -9``), sometimes with a torn write glued to its last segment, and
reopened.  The contract allows a crash to keep any prefix of the unsynced records, and the file
log does keep some (rotation and a full write buffer hand them to the kernel early), so the
check is: the file kept every synced record and at most every appended one, and the memory
storage told to keep that many unsynced records then holds exactly the same snapshot and the same
records after it.  Both then carry on from there.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.storage import FileStorage, MemoryStorage, Snapshot
from pypaxos.storage.file import SEGMENT_NAME, encode_frame

TORN_TAILS = [
    b"",
    bytes(64),
    encode_frame(b"a record that never finished")[:13],
    random.Random(3).randbytes(40),
]

OPERATIONS = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 60)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("snapshot"), st.integers(-3, 8), st.booleans()),
    st.tuples(st.just("compact")),
    st.tuples(st.just("crash"), st.sampled_from(TORN_TAILS)),
    st.tuples(st.just("restart")),
)


def contents(
    storage: MemoryStorage | FileStorage,
) -> tuple[Snapshot | None, list[tuple[int, bytes]]]:
    snapshot = storage.read_snapshot()
    after = snapshot.index if snapshot is not None else 0
    return snapshot, [(r.index, r.data) for r in storage.records(after)]


def last_segment(data_dir: Path) -> Path:
    found = [p for p in data_dir.iterdir() if SEGMENT_NAME.match(p.name)]
    return max(found, key=lambda p: int(SEGMENT_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(
    operations=st.lists(OPERATIONS, max_size=40),
    segment_bytes_max=st.sampled_from([60, 200, 1 << 20]),
    write_buffer_bytes_max=st.sampled_from([1, 50, 1 << 20]),
)
def test_file_and_memory_agree_on_what_survives(
    operations: list[tuple[object, ...]], segment_bytes_max: int, write_buffer_bytes_max: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)

        def open_file() -> FileStorage:
            return FileStorage(
                data_dir,
                segment_bytes_max=segment_bytes_max,
                write_buffer_bytes_max=write_buffer_bytes_max,
                record_bytes_max=100,
            )

        file, memory = open_file(), MemoryStorage(record_bytes_max=100)
        appended = 0
        try:
            for operation in operations:
                match operation:
                    case ("append", int(size)):
                        appended += 1
                        record = b"%d:" % appended + b"x" * size
                        assert file.append(record) == memory.append(record)
                    case ("sync",):
                        file.sync()
                        memory.sync()
                    case ("snapshot", int(back), bool(compact)):
                        current = memory.read_snapshot()
                        floor = current.index if current is not None else 0
                        index = max(floor, memory.last_index - back)
                        snapshot = Snapshot(index, b"state@%d" % index)
                        file.write_snapshot(snapshot, compact=compact)
                        memory.write_snapshot(snapshot, compact=compact)
                    case ("compact",):
                        current = memory.read_snapshot()
                        if current is not None:
                            file.compact(current.index)
                            memory.compact(current.index)
                    case ("crash", bytes(torn)):
                        file.abandon()
                        with last_segment(data_dir).open("ab") as f:
                            f.write(torn)
                        file = open_file()
                        assert memory.synced_index <= file.last_index <= memory.last_index
                        memory.crash(unsynced_kept=file.last_index - memory.synced_index)
                        assert contents(file) == contents(memory)
                    case ("restart",):
                        file.close()
                        memory.close()
                        file = open_file()
                        memory.crash()  # after a clean close nothing is unsynced
                        assert contents(file) == contents(memory)
                    case _:
                        raise AssertionError(operation)
                assert file.last_index == memory.last_index
            assert contents(file) == contents(memory)
        finally:
            file.abandon()
