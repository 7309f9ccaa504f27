"""In-memory storage for tests and simulations, with the crash semantics of the file log.

Records live in a list; ``sync()`` only moves the durable mark.  ``crash()`` is what a node
restart sees: every synced record survives and, when the caller says so, a prefix of the unsynced
ones (a real kernel may have written some of them before the crash); the rest are gone.  The
snapshot is durable as soon as ``write_snapshot`` returns, like the file implementation's.

Compaction here drops exactly the records ``<= upto``; the file log drops whole segments only, so
``first_index`` may differ between the two, never the records after the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pypaxos.storage.base import (
    RECORD_BYTES_MAX_DEFAULT,
    CompactedError,
    LogRecord,
    Snapshot,
    StorageError,
    check_record,
)


class MemoryStorage:
    """A ``Storage`` held in memory; ``crash()`` drops what a real crash could lose."""

    def __init__(self, *, record_bytes_max: int = RECORD_BYTES_MAX_DEFAULT) -> None:
        if record_bytes_max < 1:
            raise ValueError(f"record_bytes_max must be >= 1, got {record_bytes_max}")
        self.record_bytes_max = record_bytes_max
        self.sync_count = 0
        """Number of ``sync()`` calls that made something durable (a simulated fsync each)."""
        self._records: list[LogRecord] = []  # contiguous indexes, oldest first
        self._next_index = 1
        self._synced_index = 0
        self._snapshot: MemorySnapshotReader | None = None
        self._closed = False

    @property
    def first_index(self) -> int:
        return self._records[0].index if self._records else self._next_index

    @property
    def last_index(self) -> int:
        return self._next_index - 1

    @property
    def synced_index(self) -> int:
        return self._synced_index

    def append(self, record: bytes) -> int:
        self._check_open()
        check_record(record, self.record_bytes_max)
        index = self._next_index
        self._records.append(LogRecord(index, bytes(record)))
        self._next_index += 1
        return index

    def sync(self) -> None:
        self._check_open()
        if self._synced_index < self.last_index:
            self._synced_index = self.last_index
            self.sync_count += 1

    def records(self, after: int = 0) -> Iterator[LogRecord]:
        self._check_open()
        if after < self.first_index - 1:
            raise CompactedError(
                f"records {after + 1}..{self.first_index - 1} were compacted; read the snapshot"
            )
        start = max(0, after + 1 - self.first_index)
        return iter(self._records[start:])

    def read_snapshot(self) -> Snapshot | None:
        self._check_open()
        if self._snapshot is None:
            return None
        return Snapshot(self._snapshot.index, b"".join(self._snapshot.chunks()))

    def open_snapshot(self) -> MemorySnapshotReader | None:
        self._check_open()
        return self._snapshot

    def write_snapshot(self, snapshot: Snapshot, *, compact: bool = True) -> None:
        chunks = [snapshot.data] if snapshot.data else []
        self.write_snapshot_chunks(snapshot.index, chunks, compact=compact)

    def write_snapshot_chunks(
        self, index: int, chunks: Iterable[bytes], *, compact: bool = True
    ) -> None:
        self._check_open()
        if index < 0:
            raise ValueError(f"snapshot index must be >= 0, got {index}")
        if self._snapshot is not None and index < self._snapshot.index:
            raise ValueError(f"snapshot index {index} is below the current {self._snapshot.index}")
        stored = tuple(bytes(chunk) for chunk in chunks)
        if any(not chunk for chunk in stored):
            raise ValueError("a snapshot chunk must not be empty")
        self._snapshot = MemorySnapshotReader(index, stored)
        if index > self.last_index:
            # Installed from a peer: the whole log is older than the snapshot.
            self._records.clear()
            self._next_index = index + 1
            self._synced_index = index
        elif compact:
            self.compact(index)

    def compact(self, upto: int) -> None:
        self._check_open()
        covered = self._snapshot.index if self._snapshot is not None else 0
        if upto > covered:
            raise ValueError(f"compact({upto}) would drop records no snapshot covers ({covered})")
        drop = max(0, min(len(self._records), upto + 1 - self.first_index))
        del self._records[:drop]

    def close(self) -> None:
        if not self._closed:
            self.sync()
            self._closed = True

    def crash(self, unsynced_kept: int = 0) -> None:
        """Lose what a crash may lose, then reopen: a node restarting on this storage.

        The first ``unsynced_kept`` unsynced records survive (a crash may keep a prefix of them,
        never a record after a hole); all later ones are dropped.  Works on a closed storage too.
        """
        if unsynced_kept < 0:
            raise ValueError(f"unsynced_kept must be >= 0, got {unsynced_kept}")
        keep_upto = min(self.last_index, self._synced_index + unsynced_kept)
        self._records = [r for r in self._records if r.index <= keep_upto]
        newest = self._records[-1].index if self._records else 0
        covered = self._snapshot.index if self._snapshot is not None else 0
        if newest < covered:
            # The snapshot was newer than the log that survived: like a reopened file log, keep
            # the indexes contiguous by starting again right after the snapshot.
            self._records.clear()
        self._next_index = max(newest, covered) + 1
        self._synced_index = self._next_index - 1
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")


class MemorySnapshotReader:
    """A snapshot held in memory, read like a file's (``storage.base.SnapshotReader``)."""

    format_version = 2

    def __init__(self, index: int, stored: tuple[bytes, ...]) -> None:
        self.index = index
        self._chunks = stored

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def chunks(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def read_chunk(self, seq: int) -> bytes:
        return self._chunks[seq]

    def close(self) -> None:
        pass
