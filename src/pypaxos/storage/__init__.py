"""Durable storage for pypaxos nodes: a write-ahead log of opaque records plus one snapshot.

``base`` holds the ``Storage`` protocol and the durability contract a driver relies on (append
every ``Persist``, one ``sync()`` per batch, then send).  ``memory`` is the in-memory version for
tests and simulations, with a ``crash()`` that loses what a real crash may lose; ``file`` is the
real one: CRC-framed segment files, group commit with one fsync, atomic chunked snapshots (that
a forked process can write, ``write_snapshot_file``) and a recovery that truncates a torn tail
but refuses to start on corruption.
"""

from typing import TYPE_CHECKING

from pypaxos.storage.base import (
    RECORD_BYTES_MAX_DEFAULT,
    CompactedError,
    CorruptLogError,
    CorruptSnapshotError,
    CorruptStorageError,
    LogRecord,
    RecordTooLargeError,
    Snapshot,
    SnapshotReader,
    Storage,
    StorageError,
    StorageFailedError,
    StorageLockedError,
    replay,
)
from pypaxos.storage.file import (
    FileStorage,
    FsyncMode,
    SnapshotFileReader,
    remove_segments,
    write_snapshot_file,
)
from pypaxos.storage.memory import MemoryStorage

if TYPE_CHECKING:

    def _both_are_storage(memory: MemoryStorage, file: FileStorage) -> tuple[Storage, Storage]:
        return memory, file  # mypy checks both against the protocol here


__all__ = [
    "RECORD_BYTES_MAX_DEFAULT",
    "CompactedError",
    "CorruptLogError",
    "CorruptSnapshotError",
    "CorruptStorageError",
    "FileStorage",
    "FsyncMode",
    "LogRecord",
    "MemoryStorage",
    "RecordTooLargeError",
    "Snapshot",
    "SnapshotFileReader",
    "SnapshotReader",
    "Storage",
    "StorageError",
    "StorageFailedError",
    "StorageLockedError",
    "remove_segments",
    "replay",
    "write_snapshot_file",
]
