"""Durable storage in a data directory: CRC-framed append-only log segments and one snapshot.

Files: ``LOCK`` (flock(2)-ed: one storage per directory), ``wal-<first index>.log`` segments
(the last is active) and ``snapshot.bin``.  A record is framed
``[u32 length][u32 CRC32 of payload][payload]``, little-endian (``zlib.crc32``); records are
never empty, so zeros never parse as one.  ``append`` buffers, ``sync`` writes and fsyncs once
(group commit); with ``preallocate_bytes`` the active segment is grown ahead with zeros and
synced with ``fdatasync``.  ``fsync="never"`` never fsyncs (a process crash loses nothing
acknowledged, a power loss may).  Recovery truncates a torn tail of the last segment and raises
``CorruptLogError`` for anything else; snapshots are replaced atomically before the log below
them is deleted; after any ``OSError`` every call raises ``StorageFailedError``.  Calls block;
the driver chooses the thread.  Unix only.

A snapshot file (format 2, magic ``PXS2``) is a 16-byte header
``[magic][u64 index][u32 CRC32 of magic and index]``, then chunks framed like records (each at
most ``SNAPSHOT_CHUNK_BYTES_MAX``), then a 24-byte end frame
``[u32 0][u32 CRC32 of the rest][u64 chunk count][u64 index]``: it is written, read and sent
one chunk at a time, a cut or a splice fails the end frame (checked at open), and a damaged
chunk fails its CRC when it is read.  ``write_snapshot_file`` writes one from any process (a
forked child).  Format 1 (magic ``PXS1``: one CRC over one blob), written by older versions,
is still read, as one chunk.  The reasons for each rule: docs/design.md, "The storage".
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast, get_args

from pypaxos.storage.base import (
    RECORD_BYTES_MAX_DEFAULT,
    CompactedError,
    CorruptLogError,
    CorruptSnapshotError,
    LogRecord,
    Snapshot,
    StorageError,
    StorageFailedError,
    StorageLockedError,
    check_record,
)

log = logging.getLogger(__name__)

FsyncMode = Literal["always", "never"]
FSYNC_MODES: tuple[FsyncMode, ...] = get_args(FsyncMode)

SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
WRITE_BUFFER_BYTES_MAX_DEFAULT = 1024 * 1024

FRAME_HEADER = struct.Struct("<II")  # payload length, CRC32 of the payload
SEGMENT_NAME = re.compile(r"^wal-(\d+)\.log$")
SNAPSHOT_NAME = "snapshot.bin"
SNAPSHOT_TEMP_NAME = "snapshot.bin.tmp"
SNAPSHOT_MAGIC = b"PXS1"  # format 1, still read
SNAPSHOT_HEADER = struct.Struct("<4sIQQ")  # magic, CRC32 of (index, length, data), index, length
SNAPSHOT_COVERED = struct.Struct("<QQ")  # the header fields the CRC covers
CHUNKED_MAGIC = b"PXS2"  # format 2: chunks
CHUNKED_HEADER = struct.Struct("<4sQI")  # magic, index, CRC32 of (magic, index)
CHUNKED_END = struct.Struct("<IIQQ")  # 0, CRC32 of (count, index), chunk count, index
CHUNKED_END_COVERED = struct.Struct("<QQ")
SNAPSHOT_CHUNK_BYTES_MAX = 256 * 1024 * 1024
"""The largest chunk a snapshot file may hold: a longer frame is damage, not data."""
SNAPSHOT_WRITE_BUFFER_BYTES = 1024 * 1024
SNAPSHOT_WRITE_BEHIND_BYTES = 4 * 1024 * 1024
"""A durable snapshot's writer hands its pages to the disk every this many bytes
(``_WriteBehind``), so its final fsync has little left to do and the disk never receives a
whole snapshot at once, in front of the log's own fsyncs."""
LOCK_NAME = "LOCK"

_NONZERO = re.compile(rb"[^\x00]")


def segment_name(first_index: int) -> str:
    """File name of the segment whose first record has index ``first_index``."""
    return f"wal-{first_index:016d}.log"


def encode_frame(record: bytes) -> bytes:
    """One record as stored in a segment: length, CRC32 of the payload, payload."""
    return FRAME_HEADER.pack(len(record), zlib.crc32(record)) + record


@dataclass(frozen=True, slots=True)
class _Segment:
    first: int  # index of the segment's first record
    path: Path


@dataclass(frozen=True, slots=True)
class _Scan:
    count: int  # valid records from the start of the segment
    good_bytes: int  # byte offset just past the last valid record
    problem: str | None  # why the frame at ``good_bytes`` is bad; None if valid to the end


def _check_frame(data: bytes, offset: int, record_bytes_max: int) -> tuple[int, str | None]:
    """Check the frame at ``offset``: ``(end offset, None)`` if valid, else ``(0, reason)``."""
    size = len(data)
    if size - offset < FRAME_HEADER.size:
        return 0, f"frame header cut short ({size - offset} of {FRAME_HEADER.size} bytes)"
    length, crc = FRAME_HEADER.unpack_from(data, offset)
    if length == 0 or length > record_bytes_max:
        return 0, f"impossible record length {length} (limit {record_bytes_max})"
    start = offset + FRAME_HEADER.size
    end = start + length
    if end > size:
        return 0, f"payload cut short ({size - start} of {length} bytes)"
    if zlib.crc32(memoryview(data)[start:end]) != crc:
        return 0, "CRC mismatch"
    return end, None


def _scan(data: bytes, record_bytes_max: int) -> _Scan:
    offset = count = 0
    while offset < len(data):
        end, problem = _check_frame(data, offset, record_bytes_max)
        if problem is not None:
            return _Scan(count, offset, problem)
        offset = end
        count += 1
    return _Scan(count, offset, None)


def _valid_frame_after(data: bytes, bad_offset: int, record_bytes_max: int) -> int | None:
    """Offset of the first valid frame starting after ``bad_offset``, if there is one.

    Tries every byte offset (a corrupt length field hides where the next frame starts), but
    skips zero runs: a frame's length is non-zero, so one of its first four bytes is too.
    """
    offset = bad_offset + 1
    while offset + FRAME_HEADER.size < len(data):
        nonzero = _NONZERO.search(data, offset)
        if nonzero is None:
            return None
        offset = max(offset, nonzero.start() - 3)
        if _check_frame(data, offset, record_bytes_max)[1] is None:
            return offset
        offset += 1
    return None


def encode_snapshot_v1(snapshot: Snapshot) -> bytes:
    """A format-1 snapshot file, as versions before chunks wrote it (tests of old data dirs)."""
    covered = SNAPSHOT_COVERED.pack(snapshot.index, len(snapshot.data))
    crc = zlib.crc32(snapshot.data, zlib.crc32(covered))
    header = SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, crc, snapshot.index, len(snapshot.data))
    return header + snapshot.data


def _decode_snapshot(path: Path, blob: bytes) -> Snapshot:
    if len(blob) < SNAPSHOT_HEADER.size:
        raise CorruptSnapshotError(
            str(path), f"{len(blob)} bytes, shorter than the {SNAPSHOT_HEADER.size}-byte header"
        )
    magic, crc, index, length = SNAPSHOT_HEADER.unpack_from(blob)
    if magic != SNAPSHOT_MAGIC:
        raise CorruptSnapshotError(str(path), f"bad magic {magic!r}")
    data = blob[SNAPSHOT_HEADER.size :]
    if length != len(data):
        raise CorruptSnapshotError(str(path), f"header says {length} bytes, file has {len(data)}")
    if zlib.crc32(data, zlib.crc32(SNAPSHOT_COVERED.pack(index, length))) != crc:
        raise CorruptSnapshotError(str(path), "CRC mismatch")
    return Snapshot(index, data)


def remove_segments(paths: Iterable[Path]) -> None:
    """Delete detached segments (``FileStorage.detach_compacted``) in the order given, oldest
    first, so that a crash midway leaves a contiguous log; one already gone is skipped."""
    for path in paths:
        path.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class FileStorage:
    """A ``Storage`` in the directory ``data_dir``, created if missing; see the module doc."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: FsyncMode = "always",
        segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT,
        record_bytes_max: int = RECORD_BYTES_MAX_DEFAULT,
        write_buffer_bytes_max: int = WRITE_BUFFER_BYTES_MAX_DEFAULT,
        preallocate_bytes: int = 0,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be 'always' or 'never', got {fsync!r}")
        for name, value in (
            ("segment_bytes_max", segment_bytes_max),
            ("record_bytes_max", record_bytes_max),
            ("write_buffer_bytes_max", write_buffer_bytes_max),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if preallocate_bytes < 0:
            raise ValueError(f"preallocate_bytes must be >= 0, got {preallocate_bytes}")
        self.dir = Path(data_dir)
        self.fsync: FsyncMode = fsync
        self.segment_bytes_max = segment_bytes_max
        self.record_bytes_max = record_bytes_max
        self.write_buffer_bytes_max = write_buffer_bytes_max
        self.preallocate_bytes = preallocate_bytes
        self._segments: list[_Segment] = []  # oldest first; the last one is active
        self._fd = -1  # the active segment
        self._active_bytes = 0  # size of the active segment's records, including the buffer
        self._allocated_bytes = 0  # size of the active segment's file (records, then zeros)
        self._buffer = bytearray()  # frames appended but not yet handed to the kernel
        self._next_index = 1
        self._synced_index = 0
        self._snapshot_index: int | None = None
        self._failed: OSError | None = None
        self._closed = False
        self._lock_fd = -1
        self._open()

    # -- the Storage protocol ------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self._segments[0].first if self._segments else self._next_index

    @property
    def last_index(self) -> int:
        return self._next_index - 1

    @property
    def synced_index(self) -> int:
        return self._synced_index

    def append(self, record: bytes) -> int:
        self._check_usable()
        check_record(record, self.record_bytes_max)
        frame = encode_frame(bytes(record))
        with self._io("append"):
            if self._active_bytes > 0 and self._active_bytes + len(frame) > self.segment_bytes_max:
                self._rotate()
            self._buffer += frame
            self._active_bytes += len(frame)
            if len(self._buffer) >= self.write_buffer_bytes_max:
                self._flush()
        index = self._next_index
        self._next_index += 1
        return index

    def sync(self) -> None:
        self._check_usable()
        if self._synced_index == self.last_index:
            return
        with self._io("sync"):
            self._flush()
            if self.preallocate_bytes and self.fsync == "always":
                os.fdatasync(self._fd)  # the blocks exist already: data only
            else:
                self._fsync_file(self._fd)
        self._synced_index = self.last_index

    def records(self, after: int = 0) -> Iterator[LogRecord]:
        self._check_usable()
        if after < self.first_index - 1:
            raise CompactedError(
                f"records {after + 1}..{self.first_index - 1} were compacted; read the snapshot"
            )
        with self._io("flush"):
            self._flush()
        return self._read_records(after, list(self._segments), self._next_index)

    def read_snapshot(self) -> Snapshot | None:
        """The latest snapshot, its chunks joined (for small snapshots and tests)."""
        reader = self.open_snapshot()
        if reader is None:
            return None
        try:
            return Snapshot(reader.index, b"".join(reader.chunks()))
        finally:
            reader.close()

    def open_snapshot(self) -> SnapshotFileReader | None:
        self._check_usable()
        if self._snapshot_index is None:
            return None
        reader = self._open_reader()
        if reader is None:
            raise CorruptSnapshotError(str(self.dir / SNAPSHOT_NAME), "file disappeared")
        return reader

    def write_snapshot(self, snapshot: Snapshot, *, compact: bool = True) -> None:
        chunks = [snapshot.data] if snapshot.data else []
        self.write_snapshot_chunks(snapshot.index, chunks, compact=compact)

    def write_snapshot_chunks(
        self, index: int, chunks: Iterable[bytes], *, compact: bool = True
    ) -> None:
        self._check_usable()
        self._check_snapshot_index(index)
        with self._io("snapshot write"):
            write_snapshot_file(self.dir, index, chunks, fsync=self.fsync == "always")
        self._adopted(index, compact)

    def adopt_snapshot(self, index: int, *, compact: bool = True) -> None:
        """Take up the snapshot another process wrote into the directory (``write_snapshot_file``
        in a forked child): check its framing and index, then ``compact`` below it if asked."""
        self._check_usable()
        self._check_snapshot_index(index)
        reader = self._open_reader()
        if reader is None:
            raise CorruptSnapshotError(str(self.dir / SNAPSHOT_NAME), "was not written")
        reader.close()
        if reader.index != index:
            raise CorruptSnapshotError(
                str(self.dir / SNAPSHOT_NAME), f"holds index {reader.index}, not {index}"
            )
        self._adopted(index, compact)

    def _check_snapshot_index(self, index: int) -> None:
        if index < 0:
            raise ValueError(f"snapshot index must be >= 0, got {index}")
        if self._snapshot_index is not None and index < self._snapshot_index:
            raise ValueError(f"snapshot index {index} is below the current {self._snapshot_index}")

    def _adopted(self, index: int, compact: bool) -> None:
        self._snapshot_index = index
        if index > self.last_index:
            self._restart_log_after(index)
        elif compact:
            self.compact(index)

    def compact(self, upto: int) -> None:
        paths = self.detach_compacted(upto)
        with self._io("compaction"):
            remove_segments(paths)

    def detach_compacted(self, upto: int) -> list[Path]:
        """Forget the segments wholly at or below ``upto`` (covered by the snapshot) and return
        their paths, oldest first, for ``remove_segments`` to delete later, in another thread:
        deleting a large file can take the file system tens of milliseconds, which a batch
        need not wait for.  Until they are deleted they are only garbage below the snapshot,
        which the next open deletes too (``_recover``)."""
        self._check_usable()
        covered = self._snapshot_index
        if covered is None or upto > covered:
            raise ValueError(f"compact({upto}) would drop records no snapshot covers ({covered})")
        detached: list[Path] = []
        # Never the active segment.
        while len(self._segments) > 1 and self._segments[1].first - 1 <= upto:
            detached.append(self._segments.pop(0).path)
        return detached

    def close(self) -> None:
        """Sync (unless the storage failed), close the files and release the lock."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.sync()
        finally:
            self._release()

    def abandon(self) -> None:
        """Close without flushing or syncing: what ``kill -9`` leaves on disk (for tests)."""
        # A new buffer, not ``clear()``: after a failed write the traceback may still hold a
        # view of the old one, and a viewed bytearray cannot be resized.
        self._buffer = bytearray()
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- opening and recovery ------------------------------------------------------------------

    def _open(self) -> None:
        created = []  # the folders made here, innermost first
        folder = self.dir
        while not folder.exists():
            created.append(folder)
            folder = folder.parent
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for made in reversed(created):  # each new name is durable only once its parent is synced
            self._fsync_dir(made.parent)
        lock_path = self.dir / LOCK_NAME
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise StorageLockedError(f"{self.dir} is in use: {lock_path} is locked") from None
        try:
            self._recover()
        except BaseException:
            self._release()
            raise

    def _recover(self) -> None:
        temp = self.dir / SNAPSHOT_TEMP_NAME
        if temp.exists():
            log.warning("removing %s, left by a crash during a snapshot write", temp)
            temp.unlink()
        snapshot = self._open_reader()
        if snapshot is not None:
            snapshot.close()
        self._snapshot_index = None if snapshot is None else snapshot.index
        covered = 0 if snapshot is None else snapshot.index
        segments = self._list_segments()
        if snapshot is not None:
            # Finish a compaction a crash interrupted: drop segments wholly below the snapshot.
            while len(segments) > 1 and segments[1].first - 1 <= covered:
                segments.pop(0).path.unlink()
        next_index = segments[0].first if segments else covered + 1
        if next_index > covered + 1:
            raise CorruptLogError(
                str(segments[0].path),
                0,
                f"records {covered + 1}..{next_index - 1} are missing: "
                "no segment and no snapshot holds them",
            )
        for position, segment in enumerate(segments):
            if segment.first != next_index:
                raise CorruptLogError(
                    str(segment.path),
                    0,
                    f"segment starts at index {segment.first} but the one before it ends at "
                    f"{next_index - 1}",
                )
            scanned = self._scan_segment(segment, last=position == len(segments) - 1)
            next_index = segment.first + scanned.count
            self._active_bytes = scanned.good_bytes
        self._next_index = next_index
        self._synced_index = next_index - 1
        if segments and next_index - 1 >= covered:
            self._segments = segments
            self._fd = os.open(segments[-1].path, os.O_WRONLY)
            self._allocated_bytes = os.fstat(self._fd).st_size
            return
        # A new directory, or a snapshot newer than the whole log (installed from a peer, or the
        # records after the old log end were never synced): start right after the snapshot.
        for segment in segments:
            segment.path.unlink()
        self._next_index = covered + 1
        self._synced_index = covered
        self._start_segment()

    def _scan_segment(self, segment: _Segment, *, last: bool) -> _Scan:
        data = segment.path.read_bytes()
        scanned = _scan(data, self.record_bytes_max)
        if scanned.problem is None:
            return scanned
        offset = scanned.good_bytes
        if last and _NONZERO.search(data, offset) is None:
            return _Scan(scanned.count, offset, None)  # preallocated zeros: the clean end
        if not last:
            raise CorruptLogError(
                str(segment.path), offset, f"{scanned.problem} in a segment that is not the last"
            )
        valid_after = _valid_frame_after(data, offset, self.record_bytes_max)
        if valid_after is not None:
            raise CorruptLogError(
                str(segment.path),
                offset,
                f"{scanned.problem}, with a valid record at byte offset {valid_after} after it",
            )
        log.warning(
            "truncating torn tail of %s at byte offset %d: %s (%d bytes dropped)",
            segment.path,
            offset,
            scanned.problem,
            len(data) - offset,
        )
        fd = os.open(segment.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            self._fsync_file(fd)
        finally:
            os.close(fd)
        return scanned

    def _list_segments(self) -> list[_Segment]:
        found: list[_Segment] = []
        for path in self.dir.iterdir():
            match = SEGMENT_NAME.match(path.name)
            if match is not None:
                found.append(_Segment(int(match.group(1)), path))
        found.sort(key=lambda segment: segment.first)
        return found

    def _open_reader(self) -> SnapshotFileReader | None:
        path = self.dir / SNAPSHOT_NAME
        try:
            return SnapshotFileReader(path)
        except FileNotFoundError:
            return None

    # -- writing -------------------------------------------------------------------------------

    def _read_records(
        self, after: int, segments: list[_Segment], next_index: int
    ) -> Generator[LogRecord, None, None]:
        for position, segment in enumerate(segments):
            end = segments[position + 1].first if position + 1 < len(segments) else next_index
            if end - 1 <= after:
                continue
            data = segment.path.read_bytes()
            index, offset = segment.first, 0
            while offset < len(data) and index < end:  # the active segment may end in zeros
                frame_end, problem = _check_frame(data, offset, self.record_bytes_max)
                if problem is not None:
                    raise CorruptLogError(str(segment.path), offset, problem)
                if index > after:
                    yield LogRecord(index, data[offset + FRAME_HEADER.size : frame_end])
                index, offset = index + 1, frame_end
            if index != end:
                raise CorruptLogError(
                    str(segment.path), offset, f"holds records up to {index - 1}, not {end - 1}"
                )

    def _rotate(self) -> None:
        """Finish the active segment (durably, so only the last can be torn); start the next."""
        self._flush()
        if self._allocated_bytes > self._active_bytes:  # only the active segment ends in zeros
            os.ftruncate(self._fd, self._active_bytes)
        self._fsync_file(self._fd)
        self._synced_index = self.last_index
        os.close(self._fd)
        self._fd = -1
        self._start_segment()

    def _start_segment(self) -> None:
        path = self.dir / segment_name(self._next_index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._active_bytes = 0
        self._allocated_bytes = 0
        self._segments.append(_Segment(self._next_index, path))
        self._fsync_dir(self.dir)

    def _restart_log_after(self, index: int) -> None:
        """The snapshot covers the whole log: drop every segment, start at ``index + 1``."""
        with self._io("log restart after a snapshot"):
            self._buffer.clear()
            os.close(self._fd)
            self._fd = -1
            while self._segments:
                self._segments.pop(0).path.unlink()
            self._next_index = index + 1
            self._synced_index = index
            self._start_segment()

    def _flush(self) -> None:
        buffer = self._buffer
        if buffer:
            end = self._active_bytes
            if self.preallocate_bytes and end > self._allocated_bytes:
                self._preallocate(end)
            _pwrite_all(self._fd, buffer, end - len(buffer))
            buffer.clear()

    def _preallocate(self, end: int) -> None:
        """Grow the active segment with zeros to cover ``end`` and ``preallocate_bytes`` more
        (at most to the segment limit): later appends overwrite blocks the file already has."""
        grown = max(
            end, min(self._allocated_bytes + self.preallocate_bytes, self.segment_bytes_max)
        )
        if grown > end:
            _pwrite_all(self._fd, bytes(grown - end), end)
        self._allocated_bytes = grown

    def _fsync_file(self, fd: int) -> None:
        if self.fsync == "always":
            os.fsync(fd)

    def _fsync_dir(self, path: Path) -> None:
        if self.fsync == "always":
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- state ---------------------------------------------------------------------------------

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self._failed = exc
            raise StorageFailedError(
                f"{what} failed in {self.dir}: {exc}; the storage refuses further work, "
                "restart the node to recover from what is on disk"
            ) from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self.dir} is closed")
        if self._failed is not None:
            raise StorageFailedError(
                f"an earlier write or fsync failed in {self.dir} ({self._failed}); "
                "restart the node to recover from what is on disk"
            )

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1
        self._closed = True


class _WriteBehind:
    """Start the writeback of each ``SNAPSHOT_WRITE_BEHIND_BYTES`` written and wait for the
    one before it (Linux ``sync_file_range``; nothing elsewhere): the file's dirty pages stay
    under two steps, and a log fsync at the same moment waits behind a few MiB of it, not
    behind the whole file.  Not a durability step: the final fsync still makes it durable."""

    __slots__ = ("_call", "_fd", "_started_to", "_waited_to")

    _WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._started_to = self._waited_to = 0
        self._call = _sync_file_range()

    def written(self, offset: int) -> None:
        call = self._call
        if call is None or offset - self._started_to < SNAPSHOT_WRITE_BEHIND_BYTES:
            return
        call(self._fd, self._started_to, offset - self._started_to, self._WRITE)
        if self._started_to > self._waited_to:
            wait = self._WAIT_BEFORE | self._WRITE | self._WAIT_AFTER
            call(self._fd, self._waited_to, self._started_to - self._waited_to, wait)
            self._waited_to = self._started_to
        self._started_to = offset


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range``, or ``None`` where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


def write_snapshot_file(
    data_dir: str | os.PathLike[str], index: int, chunks: Iterable[bytes], *, fsync: bool
) -> int:
    """Write a format-2 snapshot of ``chunks`` into ``data_dir`` atomically and durably (temp
    file, fsync, rename, fsync of the directory); return the chunk count.

    A plain function of a path, so a forked child can call it: it touches no open storage.
    """
    directory = Path(data_dir)
    temp, final = directory / SNAPSHOT_TEMP_NAME, directory / SNAPSHOT_NAME
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    count = written = 0
    behind = _WriteBehind(fd) if fsync else None
    try:
        covered = CHUNKED_MAGIC + struct.pack("<Q", index)
        buffer = bytearray(CHUNKED_HEADER.pack(CHUNKED_MAGIC, index, zlib.crc32(covered)))
        for chunk in chunks:
            if not 0 < len(chunk) <= SNAPSHOT_CHUNK_BYTES_MAX:
                raise ValueError(f"a snapshot chunk of {len(chunk)} bytes cannot be framed")
            buffer += FRAME_HEADER.pack(len(chunk), zlib.crc32(chunk))
            buffer += chunk
            count += 1
            if len(buffer) >= SNAPSHOT_WRITE_BUFFER_BYTES:
                _write_all(fd, buffer)
                written += len(buffer)
                buffer.clear()
                if behind is not None:
                    behind.written(written)
        end_crc = zlib.crc32(CHUNKED_END_COVERED.pack(count, index))
        buffer += CHUNKED_END.pack(0, end_crc, count, index)
        _write_all(fd, buffer)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)
    if fsync:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return count


class SnapshotFileReader:
    """A snapshot file opened for reading (``storage.base.SnapshotReader``): its header and end
    frame are checked at once, each chunk's CRC when it is read.  Raises
    ``FileNotFoundError`` if there is no file, ``CorruptSnapshotError`` for damage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._size = os.fstat(self._fd).st_size
            self._open()
        except BaseException:
            os.close(self._fd)
            raise

    def _open(self) -> None:
        magic = os.pread(self._fd, 4, 0)
        self._offsets: list[int] | None = None  # each chunk's frame, found on first need
        self._whole: bytes | None = None  # format 1: the one blob, checked
        if magic == SNAPSHOT_MAGIC or len(magic) < 4:
            blob = os.pread(self._fd, self._size, 0)
            decoded = _decode_snapshot(self.path, blob)
            self.index, self.format_version, self._whole = decoded.index, 1, decoded.data
            self.chunk_count = 1 if decoded.data else 0
            return
        if magic != CHUNKED_MAGIC:
            raise CorruptSnapshotError(str(self.path), f"bad magic {magic!r}")
        if self._size < CHUNKED_HEADER.size + CHUNKED_END.size:
            raise CorruptSnapshotError(
                str(self.path), f"{self._size} bytes, shorter than a header and an end frame"
            )
        _, index, crc = CHUNKED_HEADER.unpack(os.pread(self._fd, CHUNKED_HEADER.size, 0))
        if zlib.crc32(CHUNKED_MAGIC + struct.pack("<Q", index)) != crc:
            raise CorruptSnapshotError(str(self.path), "header CRC mismatch")
        end = os.pread(self._fd, CHUNKED_END.size, self._size - CHUNKED_END.size)
        zero, end_crc, count, end_index = CHUNKED_END.unpack(end)
        if zero != 0 or zlib.crc32(CHUNKED_END_COVERED.pack(count, end_index)) != end_crc:
            raise CorruptSnapshotError(str(self.path), "no valid end frame (cut short?)")
        if end_index != index:
            raise CorruptSnapshotError(
                str(self.path), f"end frame says index {end_index}, header {index}"
            )
        self.index, self.format_version, self.chunk_count = index, 2, count

    def chunks(self) -> Iterator[bytes]:
        if self._whole is not None:
            if self._whole:
                yield self._whole
            return
        offset = CHUNKED_HEADER.size
        for seq in range(self.chunk_count):
            chunk, offset = self._read_frame(offset, seq)
            yield chunk
        if offset != self._size - CHUNKED_END.size:
            raise CorruptSnapshotError(str(self.path), f"bytes after chunk {self.chunk_count}")

    def read_chunk(self, seq: int) -> bytes:
        if not 0 <= seq < self.chunk_count:
            raise IndexError(f"chunk {seq} of {self.chunk_count}")
        if self._whole is not None:
            return self._whole
        if self._offsets is None:
            self._offsets = self._scan_offsets()
        return self._read_frame(self._offsets[seq], seq)[0]

    def _scan_offsets(self) -> list[int]:
        """Where each chunk's frame starts: its headers only, a seek per chunk."""
        offsets: list[int] = []
        offset = CHUNKED_HEADER.size
        for seq in range(self.chunk_count):
            offsets.append(offset)
            length = self._frame_length(offset, seq)
            offset += FRAME_HEADER.size + length
        return offsets

    def _frame_length(self, offset: int, seq: int) -> int:
        header = os.pread(self._fd, FRAME_HEADER.size, offset)
        if len(header) < FRAME_HEADER.size:
            raise CorruptSnapshotError(str(self.path), f"chunk {seq} at byte {offset} cut short")
        length = FRAME_HEADER.unpack(header)[0]
        last = self._size - CHUNKED_END.size
        if not 0 < length <= SNAPSHOT_CHUNK_BYTES_MAX or offset + FRAME_HEADER.size + length > last:
            raise CorruptSnapshotError(
                str(self.path), f"chunk {seq} at byte {offset}: impossible length {length}"
            )
        return int(length)

    def _read_frame(self, offset: int, seq: int) -> tuple[bytes, int]:
        length = self._frame_length(offset, seq)
        crc = FRAME_HEADER.unpack(os.pread(self._fd, FRAME_HEADER.size, offset))[1]
        start = offset + FRAME_HEADER.size
        chunk = os.pread(self._fd, length, start)
        if len(chunk) != length or zlib.crc32(chunk) != crc:
            raise CorruptSnapshotError(
                str(self.path), f"chunk {seq} at byte {offset}: CRC mismatch"
            )
        return chunk, start + length

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
