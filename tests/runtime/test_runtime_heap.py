"""The C heap trimmer (``runtime.heap``): one trim at a time in its own thread, asked for by the
driver each time a snapshot is saved and the log below it is let go."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_runtime_driver_snapshots import CONFIG, TICK_S, Outbox, follow, until

from pypaxos.kv import KVStateMachine
from pypaxos.multi import Node
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.heap import HeapTrimmer, MallocStats, _MallInfo2, malloc_stats
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


def test_an_owed_trim_is_paid_once_and_outlives_a_running_trim() -> None:
    gated = GatedTrim()
    heap = HeapTrimmer(trim=gated)
    assert not heap.pay()  # nothing owed: no trim
    assert heap.request()  # a trim that started before the debt (an idle one, say)
    assert gated.started.wait(10)
    heap.owe()
    assert not heap.pay() and heap.owed  # that trim may have passed what is owed now
    gated.release.set()
    heap.wait(10)
    assert heap.pay() and not heap.owed
    heap.wait(10)
    assert not heap.pay()
    assert heap.trims == 2 and gated.calls == [0, 0]


def test_malloc_stats_maps_glibcs_fields() -> None:
    fields = {name: 1000 * (index + 1) for index, (name, _) in enumerate(_MallInfo2._fields_)}
    stats = malloc_stats(lambda: _MallInfo2(**fields))
    assert stats == MallocStats(
        heap_bytes=fields["arena"],
        in_use_bytes=fields["uordblks"] + fields["hblkhd"],
        free_bytes=fields["fordblks"],
        mapped_bytes=fields["hblkhd"],
    )
    assert malloc_stats(None) is None


def test_the_trimmer_reads_the_counters_after_each_trim_in_its_thread() -> None:
    readings = iter([MallocStats(10, 8, 2, 1), None])
    threads: list[str] = []

    def read() -> MallocStats | None:
        threads.append(threading.current_thread().name)
        return next(readings)

    heap = HeapTrimmer(trim=lambda pad: 1, stats=read)
    assert heap.last_stats is None
    assert heap.request()
    heap.wait(10)
    assert heap.last_stats == MallocStats(10, 8, 2, 1)
    assert heap.request()
    heap.wait(10)
    assert heap.last_stats == MallocStats(10, 8, 2, 1)  # nothing read: the last reading stays
    assert threads == ["pypaxos-heap-trim"] * 2  # never the caller's (the loop's) thread


def test_malloc_stats_counts_what_is_allocated_and_freed() -> None:
    """With the real ``mallinfo2``: blocks from ``malloc`` show in use, then not once freed."""
    if malloc_stats() is None:
        pytest.skip("no mallinfo2 in this C library")
    before = malloc_stats()
    blocks = [bytes(4096) + index.to_bytes(4, "big") for index in range(8192)]  # 32 MiB
    during = malloc_stats()
    del blocks
    after = malloc_stats()
    assert before is not None and during is not None and after is not None
    assert during.in_use_bytes - before.in_use_bytes > 30 * 2**20
    assert during.in_use_bytes - after.in_use_bytes > 30 * 2**20


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
    def __init__(self, idle_trims: bool = True) -> None:
        super().__init__(trim=lambda pad: 0)
        self.requests = 0
        self.idle_trims = idle_trims
        self.before_request: Callable[[], None] = lambda: None

    def request(self) -> bool:
        self.requests += 1
        self.before_request()
        return super().request()

    def idle(self, progress: int) -> bool:
        return self.idle_trims and super().idle(progress)


@pytest.mark.asyncio
async def test_the_driver_trims_after_each_saved_snapshot(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        counting = driver.heap = CountingTrimmer(idle_trims=False)
        # What the compaction dropped (the votes' values) is let go a slice per turn of the
        # loop: a trim started before they are all gone would not give their pages back.
        dropped_at_request: list[int] = []
        counting.before_request = lambda: dropped_at_request.append(len(driver._dropped))
        task = asyncio.create_task(driver.run())
        # A snapshot every 4 slots: applied up to 5, one at 4; then up to 9, one at 8.  Each
        # compaction owes a trim, paid once its values are let go.
        await follow(driver, range(0, 6))
        await until(lambda: driver.snapshots_saved == 1 and counting.requests == 1)
        await follow(driver, range(6, 10))
        await until(lambda: driver.snapshots_saved == 2 and counting.requests == 2)
        assert dropped_at_request == [0, 0]
        assert not counting.owed
        driver.stop()
        await task
    storage.close()


@pytest.mark.asyncio
async def test_an_owed_trim_waits_for_a_due_fork_and_for_the_dropped_values(
    tmp_path: Path,
) -> None:
    """The driver pays a compaction's trim at the end of a batch, but not while the next
    snapshot's fork is due (it would wait for the trim's arena locks) nor while the values the
    compaction dropped are still being let go (the trim would miss them)."""
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        driver.heap.wait(10)  # the start's trim
        counting = driver.heap = CountingTrimmer(idle_trims=False)
        now = asyncio.get_running_loop().time()
        counting.owe()
        driver._snapshot_wanted = True  # a TakeSnapshot came: the fork starts at a next batch
        driver._batch_done(now, now, now, 0)
        assert counting.requests == 0 and counting.owed
        driver._snapshot_wanted, driver._releasing = False, True  # forked; values still held
        driver._batch_done(now, now, now, 0)
        assert counting.requests == 0 and counting.owed
        driver._releasing = False
        driver._batch_done(now, now, now, 0)
        assert counting.requests == 1 and not counting.owed
        counting.wait(10)
        driver._batch_done(now, now, now, 0)
        assert counting.requests == 1  # paid once
    storage.close()


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_an_idle_trim_needs_progress_and_a_pause_since_the_last_trim() -> None:
    clock = ManualClock()
    heap = HeapTrimmer(trim=lambda pad: 1, idle_interval_s=1.0, clock=clock)
    assert heap.idle(5)  # progress since the start: trim
    heap.wait(10)
    assert not heap.idle(5)  # nothing applied since
    assert not heap.idle(6)  # applied, but within the interval
    clock.now_s += 1.0
    assert heap.idle(6)
    heap.wait(10)
    assert heap.request()  # a compaction's trim counts as a trim for the interval
    heap.wait(10)
    clock.now_s += 0.5
    assert not heap.idle(7)
    clock.now_s += 0.5
    assert heap.idle(7)
    heap.wait(10)
    assert heap.trims == 4


@pytest.mark.asyncio
async def test_an_idle_driver_trims_once_after_it_applied_commands(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        counting = driver.heap = CountingTrimmer()
        task = asyncio.create_task(driver.run())
        await follow(driver, range(0, 3))  # below the first snapshot: no compaction trims
        await until(lambda: counting.requests >= 1)  # the pause after the last Accept
        assert driver.snapshots_saved == 0
        requests = counting.requests
        await asyncio.sleep(0.3)  # idle for longer, nothing applied: no second trim
        assert counting.requests == requests
        driver.stop()
        await task
    storage.close()
