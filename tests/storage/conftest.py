"""Fixtures for the storage tests: an fsync counter and one harness over both implementations."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pypaxos.storage import FileStorage, MemoryStorage


@dataclass
class FsyncLog:
    """Every ``os.fsync`` call, as ``"file"`` or ``"dir"``; the real fsync still runs."""

    calls: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return self.calls.count(kind)

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    real_fsync = os.fsync
    log = FsyncLog()

    def counting_fsync(fd: int) -> None:
        log.calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    return log


class Harness:
    """One storage implementation with the two ways a node stops: clean restart and crash."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.storage: MemoryStorage | FileStorage = self._open()

    def _open(self) -> MemoryStorage | FileStorage:
        if self.kind == "memory":
            return MemoryStorage(record_bytes_max=1000)
        # Small segments so that compaction by segment has something to delete; a small
        # preallocation step so that segments grow, and are cut back, often.
        preallocate_bytes = 40 if self.kind == "file-preallocated" else 0
        return FileStorage(
            self.data_dir,
            segment_bytes_max=100,
            record_bytes_max=1000,
            preallocate_bytes=preallocate_bytes,
        )

    def restart(self) -> None:
        """Clean shutdown (close syncs) and start again on the same data."""
        self.storage.close()
        self.crash()

    def crash(self) -> None:
        """Stop without syncing and start again: unsynced records are lost."""
        if isinstance(self.storage, MemoryStorage):
            self.storage.crash()
        else:
            self.storage.abandon()
            self.storage = self._open()


@pytest.fixture(params=["memory", "file", "file-preallocated"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path / "data")
    yield h
    if isinstance(h.storage, FileStorage):
        h.storage.abandon()
