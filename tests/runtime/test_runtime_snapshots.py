"""Snapshots on real nodes: written by a forked child, the log compacted below them, and a
wiped follower rebuilt from a peer's snapshot streamed in chunks, agreeing with the others."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

import pytest
from runtime_helpers import RunningCluster, retry, write_cluster

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine, Request, Set, encode_request
from pypaxos.multi import AcceptRecord, Entry, MultiConfig, PromiseRecord, SnapshotRecord
from pypaxos.runtime.app import NodeApp, rebuild_node, recover_records
from pypaxos.runtime.config import load_config
from pypaxos.runtime.wire import encode_snapshot_state
from pypaxos.storage import FileStorage, Snapshot
from pypaxos.storage.file import SNAPSHOT_NAME, encode_snapshot_v1

LIMITS = """
[limits]
snapshot_every_slots = 16
log_window_slots = 64
snapshot_chunk_bytes_max = 2048
snapshot_window_chunks = 3
"""


async def _fill(running: RunningCluster, node_id: int, first: int, count: int) -> None:
    client = running.client(node_id)
    for start in range(first, first + count, 25):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 25, first + count)):
            pipe.set(f"key:{i}", f"value {i} " + "x" * 40)
        await retry(pipe.execute)


async def _converged(running: RunningCluster, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while len({running.applied(i) for i in running.apps}) != 1:
            await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_wiped_follower_is_rebuilt_from_a_chunked_snapshot(tmp_path: Path) -> None:
    config = load_config(
        write_cluster(tmp_path, fsync="always", extra="bootstrapped = true\n" + LIMITS)
    )
    running = await RunningCluster.start(config, allow_empty_voter=True)  # a first start
    try:
        leader = await running.wait_leader()
        await _fill(running, leader, 0, 1500)
        await _converged(running)
        async with asyncio.timeout(30):  # forked children write the snapshots in their time
            while not all(a.driver and a.driver.snapshots_saved for a in running.apps.values()):
                await asyncio.sleep(0.05)
        for app in running.apps.values():
            assert app.driver is not None and app.storage is not None
            reader = app.storage.open_snapshot()  # (the log drops whole 64 MiB segments only)
            assert reader is not None and reader.index > 0 and reader.format_version == 2
            reader.close()
        victim = next(i for i in running.apps if i != leader)
        await running.apps[victim].stop()
        shutil.rmtree(config.node_dir(victim))
        await _fill(running, leader, 1500, 500)  # the others move on and compact further
        # ... until each keeps no slot the wiped node could ask for (the decided log is kept
        # back to the previous snapshot: a second one must be written, by a forked child)
        survivors = [a for i, a in running.apps.items() if i != victim]
        more = 2000
        async with asyncio.timeout(30):
            while not all(a.driver and a.driver.node.replica.retained_from for a in survivors):
                await _fill(running, leader, more, 50)
                more += 50
                await asyncio.sleep(0.05)
        sent_before = sum(
            a.driver.snapshot_chunks_sent
            for i, a in running.apps.items()
            if a.driver and i != victim
        )
        # The unsafe override: this measures the snapshot transfer, not the rejoin procedure
        # (a wiped voter forgot its promises; test_runtime_members covers remove + rejoin).
        reborn = NodeApp(config, victim, request_timeout_s=3.0, allow_empty_voter=True)
        running.apps[victim] = reborn
        await reborn.start()
        await _converged(running, timeout_s=30.0)
        sent = sum(
            a.driver.snapshot_chunks_sent
            for i, a in running.apps.items()
            if a.driver and i != victim
        )
        assert sent - sent_before > 3  # rebuilt from many chunks, not one message
        assert reborn.driver is not None
        assert reborn.driver.node.refused_messages == 0
        # INFO's account of the transfer: the chunks' bytes, once installed
        assert reborn.driver.node.replica.snapshots_installed >= 1
        assert reborn.driver.snapshot_receive_bytes > 3 * 2048 - 1
        assert reborn.driver.snapshot_receive_s > 0
        info = await retry(lambda: running.client(victim).info("paxos"))
        assert info["snapshot_receive_bytes"] == reborn.driver.snapshot_receive_bytes
        states = {
            i: a.driver.node.replica.machine.snapshot() for i, a in running.apps.items() if a.driver
        }
        assert len(set(states.values())) == 1  # every node holds the same store
        assert (
            await retry(lambda: running.client(victim).get("key:1999"))
            == b"value 1999 " + b"x" * 40
        )
        # and the rebuilt node saved a snapshot of its own, from which it restarts
        async with asyncio.timeout(10):
            while reborn.driver.snapshots_saved == 0:
                await asyncio.sleep(0.05)
    finally:
        await running.close()


@pytest.mark.asyncio
async def test_a_node_restarts_from_its_chunked_snapshot_and_log(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, extra=LIMITS))
    running = await RunningCluster.start(config)
    try:
        leader = await running.wait_leader()
        await _fill(running, leader, 0, 800)
        await _converged(running)
        victim = next(i for i in running.apps if i != leader)
        victim_app = running.apps[victim]
        async with asyncio.timeout(30):  # its forked child writes the snapshot in its own time
            while not (victim_app.driver and victim_app.driver.snapshots_saved):
                await asyncio.sleep(0.05)
        await victim_app.stop()
        reborn = NodeApp(config, victim, request_timeout_s=3.0)
        running.apps[victim] = reborn
        await reborn.start()
        assert reborn.driver is not None
        assert reborn.driver.node.replica.snapshot_slot > 0  # it started from its snapshot
        await _converged(running)
        assert (
            await retry(lambda: running.client(victim).get("key:799")) == b"value 799 " + b"x" * 40
        )
    finally:
        await running.close()


def test_a_data_dir_with_a_format_1_snapshot_still_starts(tmp_path: Path) -> None:
    """Older versions wrote one blob: the acceptor's records and the whole store inside them."""
    store = KVStateMachine()
    for i in range(20):
        store.apply(encode_request(Request(1, i + 1, Set(b"k%d" % i, b"v%d" % i), 0)))
    vote = AcceptRecord(7, Ballot(2, 1), (Entry(1, 99, b""),))
    old = [PromiseRecord(Ballot(2, 1)), SnapshotRecord(7, (store.snapshot(),)), vote]
    with FileStorage(tmp_path) as storage:
        pass
    (tmp_path / SNAPSHOT_NAME).write_bytes(
        encode_snapshot_v1(Snapshot(3, encode_snapshot_state(old)))
    )
    with FileStorage(tmp_path) as storage:
        machine = KVStateMachine()
        records = recover_records(storage, str(tmp_path), machine)
        node = rebuild_node(1, MultiConfig(), random.Random(0), machine, records, str(tmp_path))
        assert storage.last_index == 3
    assert node.applied_index == 7 and node.acceptor.promised == Ballot(2, 1)
    assert node.acceptor.accepted[7].value == vote.value
    assert machine.snapshot() == store.snapshot()
