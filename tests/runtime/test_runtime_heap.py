"""The C heap trimmer (``runtime.heap``): one trim at a time in its own thread, asked for by the
driver each time a snapshot is saved and the log below it is let go."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_runtime_driver_snapshots import CONFIG, TICK_S, Outbox, follow, until

from pypaxos.kv import KVStateMachine
from pypaxos.multi import Node
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.heap import HeapTrimmer
from pypaxos.storage import FileStorage


class GatedTrim:
    """A stand-in for ``malloc_trim`` that waits until the test lets it finish."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        self.started.set()
        assert self.release.wait(10)
        return 1


def test_a_request_while_a_trim_runs_is_dropped_and_the_next_one_runs() -> None:
    gated = GatedTrim()
    heap = HeapTrimmer(trim=gated)
    assert heap.request()
    assert gated.started.wait(10)
    assert not heap.request()  # the running trim releases what this one would
    gated.release.set()
    heap.wait(10)
    assert heap.trims == 1 and gated.calls == [0]
    assert heap.request()
    heap.wait(10)
    assert heap.trims == 2 and gated.calls == [0, 0]


def test_a_disabled_trimmer_never_starts_a_thread() -> None:
    gated = GatedTrim()
    heap = HeapTrimmer(trim=gated, enabled=False)
    assert not heap.available
    assert not heap.request()
    heap.wait(1)
    assert heap.trims == 0 and gated.calls == []


def test_glibc_gives_freed_pages_back() -> None:
    """With the real ``malloc_trim``: holes freed between live allocations (which ``free`` alone
    keeps resident) leave the process."""
    heap = HeapTrimmer()
    if not heap.available:
        pytest.skip("no malloc_trim in this C library")
    heap.request()  # start from a trimmed heap
    heap.wait(30)
    kept, freed = [], []
    for index in range(16_000):  # 4 KiB blocks from malloc, every fourth one kept
        block = bytes(4096) + index.to_bytes(4, "big")
        (kept if index % 4 == 0 else freed).append(block)
    before_kib = _resident_kib()
    del freed
    assert heap.request()
    heap.wait(30)
    after_kib = _resident_kib()
    assert before_kib - after_kib > 16 * 1024, (before_kib, after_kib)  # about 47 MiB were freed
    assert len(kept) == 4000


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    pytest.skip("no /proc/self/status")


class CountingTrimmer(HeapTrimmer):
    def __init__(self) -> None:
        super().__init__(trim=lambda pad: 0)
        self.requests = 0

    def request(self) -> bool:
        self.requests += 1
        return super().request()


@pytest.mark.asyncio
async def test_the_driver_trims_after_each_saved_snapshot(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        counting = driver.heap = CountingTrimmer()
        task = asyncio.create_task(driver.run())
        await follow(driver, range(0, 13))
        await until(lambda: driver.snapshots_saved >= 2 and not node.replica.snapshot_pending)
        driver.stop()
        await task
    assert counting.requests == driver.snapshots_saved
    storage.close()
