"""The driver's snapshots on a real data directory: written by a forked child and adopted, a
failed child leaving everything as it was, and chunks served to a peer from the file."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine, Request, Set, encode_request
from pypaxos.multi import (
    Accept,
    CatchUp,
    Entry,
    Heartbeat,
    MultiConfig,
    Node,
    SnapshotChunk,
    SnapshotRecord,
)
from pypaxos.runtime import driver as driver_module
from pypaxos.runtime.app import recover_records
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.wire import WireMessage, decode_snapshot_meta
from pypaxos.storage import FileStorage

CONFIG = MultiConfig(
    node_ids=(1, 2, 3),
    election_timeout_min_ticks=400,
    election_timeout_max_ticks=400,
    snapshot_every_slots=4,
    window_slots=4,
    log_window_slots=16,
    snapshot_window_chunks=3,
    snapshot_chunk_bytes_max=64,
)
LEADER_BALLOT = Ballot(1, 2)
TICK_S = 0.005

pytestmark = pytest.mark.asyncio


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[int, WireMessage]] = []

    def send(self, to: int, msg: WireMessage) -> None:
        self.sent.append((to, msg))


async def follow(driver: Driver, slots: range) -> None:
    """The leader's ``Accept`` s, each carrying the commit index up to the slot before it."""
    driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
    for slot in slots:
        command = encode_request(Request(7, slot + 1, Set(b"key %d" % slot, b"v" * 40), 0))
        value = (Entry(2, slot, command),)
        driver.deliver(Accept(2, LEADER_BALLOT, slot, value, slot))
        await asyncio.sleep(TICK_S)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(TICK_S)


async def test_a_forked_child_writes_the_snapshot_and_the_node_serves_it(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    outbox = Outbox()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, outbox, executor, tick_s=TICK_S)
        assert driver.snapshot_in_child
        task = asyncio.create_task(driver.run())
        await follow(driver, range(0, 21))
        await until(lambda: driver.snapshots_saved >= 2 and not node.replica.snapshot_pending)
        reader = storage.open_snapshot()
        assert reader is not None and reader.format_version == 2
        chunks = list(reader.chunks())
        reader.close()
        snapshot_record = decode_snapshot_meta(chunks[-1])[1]
        assert isinstance(snapshot_record, SnapshotRecord)
        assert snapshot_record.slot == node.replica.snapshot_slot > 4
        assert node.acceptor.log_start == node.replica.snapshot_slot  # compacted once adopted
        # The growth schedule's base: the size of the file as stored.
        assert node.replica.snapshot_size_bytes == (tmp_path / "snapshot.bin").stat().st_size
        # A peer far behind asks: it gets the first window of the file's machine chunks.
        outbox.sent.clear()
        driver.deliver(CatchUp(3, 0))
        await until(lambda: any(isinstance(m, SnapshotChunk) for _, m in outbox.sent))
        driver.stop()
        await task
    sent = [m for to, m in outbox.sent if to == 3 and isinstance(m, SnapshotChunk)]
    assert [m.seq for m in sent] == [0, 1, 2]
    assert all(m.chunk_count == len(chunks) - 1 for m in sent)
    assert all(m.slot == snapshot_record.slot for m in sent)
    assert [m.data for m in sent] == chunks[:3] and len(chunks) > 4
    storage.close()
    # Started again on that directory, the node knows the size it recovered from.
    storage = FileStorage(tmp_path)
    machine = KVStateMachine()
    records = recover_records(storage, str(tmp_path), machine)
    node = Node.recover(1, CONFIG, random.Random(1), machine, records)
    with ThreadPoolExecutor(1) as executor:
        Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        assert node.replica.snapshot_size_bytes == (tmp_path / "snapshot.bin").stat().st_size > 0
    storage.close()


async def test_a_failed_child_changes_nothing_and_the_next_one_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(driver_module, "write_snapshot_file", broken)  # the child inherits it
    storage = FileStorage(tmp_path)
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        await follow(driver, range(0, 6))
        await until(lambda: node.applied_index >= 5 and not node.replica.snapshot_pending)
        assert driver.snapshots_saved == 0 and storage.open_snapshot() is None
        assert node.replica.snapshot_slot == node.acceptor.log_start == 0
        monkeypatch.undo()
        await follow(driver, range(6, 9))  # the next apply asks again
        await until(lambda: driver.snapshots_saved >= 1)
        driver.stop()
        await task
    assert node.replica.snapshot_slot > 0
    storage.close()
