"""Disk faults applied to a killed node's newest log segment before it restarts.

The segment format is ``storage.file``'s: frames of ``[u32 length LE][u32 CRC32][payload]``.
Three faults, chosen so that a correct build must come through each with a clean verdict:

* ``torn``: a partial frame is appended (a header promising more bytes than follow) -- what a
  process killed in the middle of ``write`` leaves.  No ``fsync`` ever covered it, so nothing
  acknowledged depended on it: the node must truncate it and start.
* ``bad-tail``: a whole frame with a wrong CRC is appended after the last record -- a last
  write whose bytes were garbled on the way.  It looks exactly like a torn write (storage.file
  says so), and the node must truncate it and start.
* ``corrupt``: one byte of a record *followed by valid records* is flipped -- damage to
  acknowledged data.  The node must refuse to start (exit 1) with a message naming the file
  and byte offset.  The harness checks exactly that, then puts the original bytes back (as an
  operator restores a backup) and starts the node again.

Why not truncate or wipe acknowledged records: Paxos assumes an acceptor's promises and votes
survive (Paxos Made Simple, section 2.3).  A node that forgets a vote it sent can let a second
value be chosen, so erasing acknowledged records would make a correct build fail; that is a
test of the storage's refusal, not of the protocol, and ``corrupt`` tests the refusal.
"""

from __future__ import annotations

import os
import random
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

FRAME = struct.Struct("<II")
SEGMENT = re.compile(r"^wal-(\d+)\.log$")
DISK_FAULTS = ("torn", "bad-tail", "corrupt")


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def newest_segment(node_dir: Path) -> Path | None:
    found = [
        (int(m.group(1)), p)
        for p in node_dir.glob("wal-*.log")
        if (m := SEGMENT.match(p.name)) is not None
    ]
    return max(found)[1] if found else None


def frame_offsets(data: bytes) -> list[int]:
    """Start offsets of the whole, well-formed frames at the front of ``data``."""
    offsets: list[int] = []
    offset = 0
    while offset + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if length == 0 or end > len(data):
            break
        if zlib.crc32(data[offset + FRAME.size : end]) != crc:
            break
        offsets.append(offset)
        offset = end
    return offsets


@dataclass(frozen=True)
class DiskFault:
    kind: str  # one of DISK_FAULTS
    path: Path
    offset: int  # where the damage starts
    original: bytes | None = None  # the segment before a ``corrupt``, to put back

    def describe(self) -> str:
        return f"{self.kind} {self.path.name} at byte {self.offset}"

    def restore(self) -> None:
        if self.original is not None:
            self.path.write_bytes(self.original)


def inject(node_dir: Path, kind: str, rng: random.Random) -> DiskFault | None:
    """Damage ``node_dir``'s newest segment; ``None`` when there is nothing to damage
    (``corrupt`` needs two records: the damaged one must have a valid one after it)."""
    path = newest_segment(node_dir)
    if path is None:
        return None
    data = path.read_bytes()
    if kind == "torn":
        length = rng.randrange(64, 4096)
        body = rng.randbytes(rng.randrange(0, length))
        tail = FRAME.pack(length, 0)[: rng.randrange(1, FRAME.size + 1)]
        tail = tail + body if len(tail) == FRAME.size else tail
        _append(path, tail)
        return DiskFault(kind, path, len(data))
    if kind == "bad-tail":
        payload = rng.randbytes(rng.randrange(8, 512))
        _append(path, FRAME.pack(len(payload), zlib.crc32(payload) ^ 0x5A5A5A5A) + payload)
        return DiskFault(kind, path, len(data))
    if kind == "corrupt":
        offsets = frame_offsets(data)
        if len(offsets) < 2:
            return None
        start = rng.choice(offsets[:-1])
        (length,) = struct.unpack_from("<I", data, start)
        at = start + FRAME.size + rng.randrange(length)
        damaged = bytearray(data)
        damaged[at] ^= 0xFF
        path.write_bytes(bytes(damaged))
        return DiskFault(kind, path, start, original=data)
    raise ValueError(f"unknown disk fault {kind!r}")


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
