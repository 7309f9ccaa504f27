"""The backup file ``pypaxos snapshot save`` writes and ``restore``/``inspect`` read.

Self-describing and checked end to end::

    magic "PXB1"                           4 bytes
    header frame                           the ``BackupHeader`` (msgpack)
    chunk frames, ``chunk_count`` of them  the key-value machine's snapshot chunks, in order
    trailer                                "PXBE", chunk count (u32), BLAKE2b-256 of all above

A frame is ``length (u32) | CRC-32 (u32) | bytes``: a flipped bit is found in the frame it hit
(and named by its byte offset); the trailer's digest covers the whole file, so a truncated,
reordered or spliced file is refused too.  The header names the source cluster, the applied
index (slot) the snapshot is at and the digest of the replicated state there
(``kv.digest``): a restore loads the chunks and recomputes that digest, so what a new
cluster starts from is exactly what the old one held at that slot.

Written durably (``write_backup``: temp file, fsync, rename, fsync of the folder), so a file
under the final name is always whole; reading (``read_backup``) bounds every length before it
allocates and raises ``BackupFileError`` with the reason and the offset.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from hashlib import blake2b
from pathlib import Path
from typing import BinaryIO

import msgspec

from pypaxos.storage.durable import fsync_dir

MAGIC = b"PXB1"
TRAILER_MAGIC = b"PXBE"
FORMAT_VERSION = 1
FRAME = struct.Struct("<II")  # length, CRC-32
TRAILER = struct.Struct("<4sI32s")  # magic, chunk count, BLAKE2b-256 of everything before
HEADER_BYTES_MAX = 64 * 1024
CHUNK_BYTES_MAX = 256 * 1024 * 1024  # as a snapshot file's frames (storage.file)
FILE_DIGEST_BYTES = 32


class BackupFileError(Exception):
    """The file is not a whole, intact backup this version can read."""

    def __init__(self, path: Path, reason: str, offset: int | None = None) -> None:
        where = "" if offset is None else f" at byte {offset}"
        super().__init__(f"{path}: {reason}{where}")
        self.path = path
        self.reason = reason
        self.offset = offset


class BackupHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a backup holds: whose state, at which slot, and its digest."""

    format: int
    cluster_id: str
    node_id: int  # the node that served it
    slot: int  # the applied index the state is at
    chunk_count: int
    state_digest: str  # hex, ``kv.digest`` of the state at ``slot``
    keys: int
    created_unix_ms: int
    machine: str = "kv"


_HEADER_DECODER = msgspec.msgpack.Decoder(BackupHeader)


def _frame(data: bytes) -> bytes:
    return FRAME.pack(len(data), zlib.crc32(data)) + data


class BackupWriter:
    """Writes a backup at ``path`` atomically and durably, one chunk at a time (chunks may
    arrive from the network): nothing appears under ``path`` until ``finish`` has written the
    trailer, synced the file, renamed it and synced the folder; ``abort`` (or leaving the
    ``with`` block on an error) removes the temp file."""

    def __init__(self, path: Path, header: BackupHeader) -> None:
        self.path = path
        self.header = header
        self.temp = path.with_name(path.name + ".tmp")
        self.size = 0
        self.count = 0
        self._hasher = blake2b(digest_size=FILE_DIGEST_BYTES)
        self._file: BinaryIO = open(self.temp, "wb")  # noqa: SIM115 - closed by finish/abort
        self._put(MAGIC)
        self._put(_frame(msgspec.msgpack.encode(header)))

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._hasher.update(data)
        self.size += len(data)

    def add(self, chunk: bytes) -> None:
        if not 0 < len(chunk) <= CHUNK_BYTES_MAX:
            raise ValueError(f"a chunk of {len(chunk)} bytes cannot be framed")
        if self.count >= self.header.chunk_count:
            raise ValueError(f"more chunks than the {self.header.chunk_count} promised")
        self._put(_frame(chunk))
        self.count += 1

    def finish(self) -> int:
        """Seal, sync and rename into place; return the file's size in bytes."""
        if self.count != self.header.chunk_count:
            promised = self.header.chunk_count
            raise ValueError(f"{self.count} chunks written, the header promised {promised}")
        trailer = TRAILER.pack(TRAILER_MAGIC, self.count, self._hasher.digest())
        self._file.write(trailer)
        self.size += len(trailer)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.path)
        fsync_dir(self.path.absolute().parent)
        return self.size

    def abort(self) -> None:
        self._file.close()
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.abort()


def write_backup(path: Path, header: BackupHeader, chunks: Iterable[bytes]) -> int:
    """``BackupWriter`` over ``chunks``: the backup's size in bytes."""
    with BackupWriter(path, header) as writer:
        for chunk in chunks:
            writer.add(chunk)
        return writer.finish()


class BackupReader:
    """A backup file opened for reading: ``header`` is read and checked at once; ``chunks``
    yields the chunks, each checked, and checks the trailer after the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._hasher = blake2b(digest_size=FILE_DIGEST_BYTES)
        self._offset = 0
        try:
            magic = self._read(len(MAGIC), "the magic")
            if magic != MAGIC:
                raise BackupFileError(path, f"not a pypaxos backup (magic {magic!r})", 0)
            raw = self._frame(HEADER_BYTES_MAX, "the header")
            try:
                self.header = _HEADER_DECODER.decode(raw)
            except msgspec.DecodeError as error:
                raise BackupFileError(path, f"the header does not decode: {error}") from None
            if self.header.format != FORMAT_VERSION:
                raise BackupFileError(path, f"backup format {self.header.format} is not known")
            if self.header.machine != "kv" or not 0 <= self.header.chunk_count < 2**32:
                raise BackupFileError(path, "the header describes no key-value backup")
        except BaseException:
            self._file.close()
            raise

    def _read(self, count: int, what: str) -> bytes:
        data = self._file.read(count)
        if len(data) != count:
            raise BackupFileError(self.path, f"truncated in {what}", self._offset + len(data))
        self._hasher.update(data)
        self._offset += count
        return data

    def _frame(self, bytes_max: int, what: str) -> bytes:
        start = self._offset
        length, crc = FRAME.unpack(self._read(FRAME.size, what))
        if not 0 < length <= bytes_max:
            raise BackupFileError(self.path, f"{what} claims {length} bytes", start)
        data = self._read(length, what)
        if zlib.crc32(data) != crc:
            raise BackupFileError(self.path, f"{what} fails its CRC", start)
        return data

    def chunks(self) -> Iterator[bytes]:
        for seq in range(self.header.chunk_count):
            yield self._frame(CHUNK_BYTES_MAX, f"chunk {seq}")
        expected = self._hasher.digest()
        start = self._offset
        raw = self._file.read(TRAILER.size)
        if len(raw) != TRAILER.size:
            raise BackupFileError(self.path, "truncated in the trailer", start + len(raw))
        magic, count, digest = TRAILER.unpack(raw)
        if magic != TRAILER_MAGIC or count != self.header.chunk_count:
            raise BackupFileError(self.path, "the trailer does not match the header", start)
        if digest != expected:
            raise BackupFileError(self.path, "the file digest does not match its contents", start)
        if self._file.read(1):
            raise BackupFileError(self.path, "bytes after the trailer", start + TRAILER.size)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> BackupReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_backup(path: Path) -> BackupReader:
    """Open ``path``; ``BackupFileError`` if it is no backup (``OSError`` if unreadable)."""
    return BackupReader(path)
