"""Where the driver runs its fsync: on the loop thread for a small batch (the one-client
latency path), on the storage thread for a large one or after a slow sync (so the loop keeps
serving and sending keep-alives while the disk is slow)."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine, Request, Set, encode_request
from pypaxos.multi import (
    Accept,
    Entry,
    Heartbeat,
    MultiConfig,
    Node,
    SnapshotChunk,
    SnapshotRecord,
)
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.wire import WireMessage, decode_snapshot_meta
from pypaxos.storage import MemoryStorage

CONFIG = MultiConfig(
    node_ids=(1, 2, 3), election_timeout_min_ticks=200, election_timeout_max_ticks=200
)
LEADER_BALLOT = Ballot(1, 2)
TICK_S = 0.005

pytestmark = pytest.mark.asyncio


class ThreadNotingStorage(MemoryStorage):
    """Notes the thread of each ``sync``; sleeps ``delay_s`` in it (a slow disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_threads: list[int] = []
        self.delay_s = 0.0

    def sync(self) -> None:
        self.sync_threads.append(threading.get_ident())
        time.sleep(self.delay_s)
        super().sync()


class Discard:
    def send(self, to: int, msg: WireMessage) -> None:
        pass


def accept(slot: int) -> Accept:
    return Accept(2, LEADER_BALLOT, slot, (Entry(2, slot, b"SET k v"),), 0)


async def run_follower(
    storage: ThreadNotingStorage, batches: list[list[Accept]], delays_s: list[float]
) -> Driver:
    """Feed each batch of ``Accept``s in one go (one driver batch each), the disk taking
    ``delays_s[i]`` for batch ``i``'s sync."""
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node, storage, Discard(), executor, tick_s=TICK_S, inline_sync_inputs_max=4,
            slow_sync_s=0.02,
        )  # fmt: skip
        task = asyncio.create_task(driver.run())
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
        await asyncio.sleep(3 * TICK_S)
        for batch, delay_s in zip(batches, delays_s, strict=True):
            storage.delay_s = delay_s
            syncs = len(storage.sync_threads)
            for msg in batch:
                driver.deliver(msg)
            async with asyncio.timeout(5):
                while len(storage.sync_threads) == syncs or driver._inbox:
                    await asyncio.sleep(0.001)
            await asyncio.sleep(delay_s + 2 * TICK_S)
        driver.stop()
        await task
    return driver


async def test_a_small_batch_syncs_on_the_loop_thread_a_large_one_on_the_storage_thread() -> None:
    storage = ThreadNotingStorage()
    loop_thread = threading.get_ident()
    batches = [[accept(1)], [accept(s) for s in range(2, 12)], [accept(12)]]
    driver = await run_follower(storage, batches, [0.0, 0.0, 0.0])
    assert len(storage.sync_threads) == 3
    small, large, small_again = storage.sync_threads
    assert small == loop_thread and small_again == loop_thread
    assert large != loop_thread
    assert driver.inline_syncs == 2


async def test_after_a_slow_sync_the_next_one_goes_to_the_storage_thread() -> None:
    storage = ThreadNotingStorage()
    loop_thread = threading.get_ident()
    batches = [[accept(1)], [accept(2)], [accept(3)], [accept(4)]]
    await run_follower(storage, batches, [0.0, 0.05, 0.0, 0.0])
    first, slow, after_slow, fast_again = storage.sync_threads
    assert first == loop_thread and slow == loop_thread  # nobody knew it would be slow
    assert after_slow != loop_thread  # the disk was slow: keep the loop free
    assert fast_again == loop_thread  # and it was fast again


# -- an installed snapshot is written out of line, then the log below it goes ----------------


class EventStorage(MemoryStorage):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def write_snapshot_chunks(
        self, index: int, chunks: Iterable[bytes], *, compact: bool = True
    ) -> None:
        self.events.append("snapshot written")
        super().write_snapshot_chunks(index, chunks, compact=compact)


class EventSender:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def send(self, to: int, msg: WireMessage) -> None:
        self.events.append(f"sent {type(msg).__name__}")


async def test_an_installed_snapshot_is_loaded_by_chunks_then_saved() -> None:
    events: list[str] = []
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    leaders_state = KVStateMachine()
    for i in range(200):
        leaders_state.apply(encode_request(Request(1, i + 1, Set(b"k%d" % i, b"v"), 0)))
    chunks = list(leaders_state.snapshot_chunks(512))
    storage = EventStorage(events)
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, EventSender(events), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        # The leader is at slot 50: we ask to catch up and get its snapshot of slot 40.
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 50))
        await asyncio.sleep(3 * TICK_S)
        for seq, chunk in enumerate(chunks):
            driver.deliver(SnapshotChunk(2, 40, seq, len(chunks), chunk))
        async with asyncio.timeout(5):
            while "snapshot written" not in events:
                await asyncio.sleep(TICK_S)
        driver.stop()
        await task
    assert node.applied_index == 40 and node.replica.snapshot_slot == 40
    assert node.replica.machine.snapshot() == leaders_state.snapshot()
    reader = storage.open_snapshot()
    assert reader is not None
    saved = list(reader.chunks())
    # the machine's chunks (cut the node's way), then the node's meta
    assert saved[:-1] == list(leaders_state.snapshot_chunks(CONFIG.snapshot_chunk_bytes_max))
    assert decode_snapshot_meta(saved[-1])[1] == SnapshotRecord(40)


async def test_a_slow_batch_is_logged_with_where_the_time_went(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = ThreadNotingStorage()
    with caplog.at_level(logging.WARNING, logger="pypaxos.runtime.driver"):
        await run_follower(storage, [[accept(1)], [accept(2)]], [0.0, 0.25])
    slow = [r.getMessage() for r in caplog.records if "slow batch" in r.getMessage()]
    assert len(slow) == 1, slow  # the 0.25 s sync, not the fast one
    assert "node 1: slow batch" in slow[0] and "storage and sends" in slow[0]
