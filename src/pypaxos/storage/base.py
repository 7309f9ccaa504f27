"""The storage contract: an ordered write-ahead log of opaque records plus one snapshot.

A shell ``append`` s one record per ``Persist`` effect and calls ``sync()`` once per batch
(group commit); only after it returns may the batch's ``Send`` effects leave (the durability
contract of ``pypaxos.core.effects``).  At start ``replay`` yields the snapshot and every
record after it; a snapshot lets the prefix it covers be compacted.  Records are opaque,
non-empty ``bytes`` of at most ``record_bytes_max``: storage must not depend on message types.
What survives a crash: every record appended before a ``sync()`` that returned, plus possibly a
prefix of those after it; ``MemoryStorage.crash`` models exactly this.  Not thread-safe: one
driver owns one storage.

More: docs/design.md, 'The storage'.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

RECORD_BYTES_MAX_DEFAULT = 4 * 1024 * 1024
"""Default limit on one log record; Paxos persist records are tiny, so this only stops mistakes."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log record and its position: ``index`` counts appends from 1 and is never reused."""

    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Opaque state that covers every log record with an index ``<= index``."""

    index: int
    data: bytes

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"snapshot index must be >= 0, got {self.index}")


class SnapshotReader(Protocol):
    """A durable snapshot read chunk by chunk, from an open file (or memory): it stays readable
    after a newer snapshot replaces it, until ``close``.  Damage raises ``CorruptSnapshotError``
    when the damaged chunk is read (its framing is checked when it is opened)."""

    @property
    def index(self) -> int:
        """The snapshot covers every log record with an index ``<= index``."""
        ...

    @property
    def format_version(self) -> int:
        """1: one opaque blob (read as one chunk); 2: chunks."""
        ...

    @property
    def chunk_count(self) -> int: ...

    def chunks(self) -> Iterator[bytes]:
        """Every chunk in order, each checked, one read at a time."""
        ...

    def read_chunk(self, seq: int) -> bytes:
        """Chunk ``seq`` alone (for sending it to a peer)."""
        ...

    def close(self) -> None: ...


class StorageError(Exception):
    """Base class of every error this package raises on purpose."""


class RecordTooLargeError(StorageError, ValueError):
    """A caller tried to append a record larger than ``record_bytes_max`` (local misuse)."""


class CompactedError(StorageError, LookupError):
    """A caller asked for log records that compaction already removed; read the snapshot."""


class CorruptStorageError(StorageError):
    """Stored data fails its checks: the node must not start on it (no silent skipping)."""


class CorruptLogError(CorruptStorageError):
    """A log segment is damaged before its tail, or segments are missing.

    ``path`` and ``offset`` locate the damage; the message says the node will not start.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"corrupt write-ahead log {path} at byte offset {offset}: {reason}; "
            "the node will not start on a damaged log (records acknowledged to peers may be "
            "lost); restore the data directory or repair the file by hand"
        )


class CorruptSnapshotError(CorruptStorageError):
    """The snapshot file fails its checksum or framing; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"corrupt snapshot {path}: {reason}; the node will not start")


class StorageLockedError(StorageError):
    """Another open storage (in this or another process) holds the data directory's lock."""


class StorageFailedError(StorageError):
    """An earlier write or fsync failed; the storage refuses all further work.

    After a failed fsync the kernel may have dropped the dirty pages, so a retried fsync can
    report success for data that never reached the disk (the "fsyncgate" lesson).  The only
    safe recovery is to crash and reopen from what is really on disk.
    """


class Storage(Protocol):
    """A write-ahead log of opaque records plus the latest snapshot."""

    @property
    def first_index(self) -> int:
        """Index of the oldest record still stored (``last_index + 1`` if none are)."""
        ...

    @property
    def last_index(self) -> int:
        """Index of the newest record appended, or of the snapshot if it is newer; 0 if empty."""
        ...

    @property
    def synced_index(self) -> int:
        """Every record with an index ``<= synced_index`` was covered by a completed ``sync``."""
        ...

    def append(self, record: bytes) -> int:
        """Add ``record`` at the end of the log and return its index; not yet durable."""
        ...

    def sync(self) -> None:
        """Make every record appended so far durable; one flush for all of them (group commit).

        Returns only once they are durable; a no-op when nothing was appended since the last.
        """
        ...

    def records(self, after: int = 0) -> Iterator[LogRecord]:
        """Yield every stored record with an index ``> after``, in order.

        Raises ``CompactedError`` if records in ``(after, first_index)`` were compacted away.
        Do not append while iterating.
        """
        ...

    def read_snapshot(self) -> Snapshot | None:
        """The latest snapshot, or ``None`` if none was ever written."""
        ...

    def write_snapshot(self, snapshot: Snapshot, *, compact: bool = True) -> None:
        """Replace the snapshot atomically and durably; then, if asked, ``compact`` below it.

        Snapshot indexes only grow.  A snapshot beyond ``last_index`` (installed from a peer)
        drops the whole log and the next append gets index ``snapshot.index + 1``.
        """
        ...

    def write_snapshot_chunks(
        self, index: int, chunks: Iterable[bytes], *, compact: bool = True
    ) -> None:
        """``write_snapshot`` of a state given as non-empty chunks, written one at a time."""
        ...

    def open_snapshot(self) -> SnapshotReader | None:
        """The latest snapshot, to read chunk by chunk (``None`` if none was written); the
        caller closes it."""
        ...

    def compact(self, upto: int) -> None:
        """Drop log records with index ``<= upto``, which must be covered by the snapshot.

        Implementations may keep some of them (a file log deletes whole segments only); callers
        read with ``records(after=snapshot.index)``.
        """
        ...

    def close(self) -> None:
        """Sync and release the storage; further calls raise."""
        ...


def replay(storage: Storage) -> tuple[Snapshot | None, Iterator[LogRecord]]:
    """What a node recovers at start: the latest snapshot and every record after it, in order."""
    snapshot = storage.read_snapshot()
    after = snapshot.index if snapshot is not None else 0
    return snapshot, storage.records(after)


def check_record(record: bytes, record_bytes_max: int) -> None:
    """Reject records a log cannot store: empty ones and ones over the size limit."""
    if not isinstance(record, bytes | bytearray):
        raise TypeError(f"a log record is bytes, got {type(record).__name__}")
    size = len(record)
    if size == 0:
        raise ValueError("a log record must not be empty")
    if size > record_bytes_max:
        raise RecordTooLargeError(
            f"log record of {size} bytes exceeds record_bytes_max={record_bytes_max}"
        )
