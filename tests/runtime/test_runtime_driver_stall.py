"""A stalled process does not depose a live leader (issue 7, "no leader change under saturation").

A node process that was descheduled or blocked for several election timeouts wakes up with many
ticks due and the leader's messages waiting.  The driver handles the waiting messages before it
counts ticks, and counts at most ``ticks_per_batch_max`` ticks per wake-up (the node's clock runs
late instead), so a follower whose leader kept sending does not start an election.  The same
stall with no cap on the ticks does start one: the test can fail.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from runtime_helpers import Recorder

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import (
    Accept,
    Accepted,
    Entry,
    Heartbeat,
    HeartbeatAck,
    MultiConfig,
    Node,
    Prepare,
    Promise,
    Role,
)
from pypaxos.runtime.driver import Driver
from pypaxos.storage import MemoryStorage

CONFIG = MultiConfig(
    node_ids=(1, 2, 3),
    election_timeout_min_ticks=20,
    election_timeout_max_ticks=20,
    leader_stickiness_ticks=10,
    step_down_ticks=20,
    pre_vote=False,  # a lone node: an election shows as its Prepare (``multi.election``)
)
TICK_S = 0.005
STALL_S = 0.5  # 100 ticks: five election timeouts
LEADER_BALLOT = Ballot(1, 2)

pytestmark = pytest.mark.asyncio


async def stalled_follower(ticks_per_batch_max: int) -> tuple[Node, Recorder]:
    """Node 1 follows leader 2, its loop blocks for ``STALL_S`` while a heartbeat waits."""
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    sender = Recorder()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node,
            MemoryStorage(),
            sender,
            executor,
            tick_s=TICK_S,
            ticks_per_batch_max=ticks_per_batch_max,
        )
        task = asyncio.create_task(driver.run())
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
        await asyncio.sleep(5 * TICK_S)
        assert node.leader_id == 2
        # The leader's next heartbeat arrives, then the whole process stalls.
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
        time.sleep(STALL_S)  # blocks the loop, as a descheduled process would be
        await asyncio.sleep(2 * TICK_S)  # the wake-up: far fewer ticks than an election timeout
        driver.stop()
        await task
    return node, sender


async def test_a_stall_with_the_leaders_message_waiting_starts_no_election() -> None:
    node, sender = await stalled_follower(ticks_per_batch_max=2)
    assert not [m for _, m in sender.sent if isinstance(m, Prepare)]
    assert node.role is Role.FOLLOWER and node.leader_id == 2
    assert node.detector.now < CONFIG.election_timeout_min_ticks  # the clock ran late


async def test_without_the_cap_the_same_stall_starts_an_election() -> None:
    node, sender = await stalled_follower(ticks_per_batch_max=10_000)
    assert [m for _, m in sender.sent if isinstance(m, Prepare)]
    assert node.role is not Role.FOLLOWER or node.leader_id != 2


# -- a slow sync: keep-alives while the storage works --------------------------------------


class SlowSyncStorage(MemoryStorage):
    """Every ``sync`` blocks until the test releases it (a disk stalled by other jobs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def sync(self) -> None:
        assert self.release.wait(10), "the test never released the sync"
        super().sync()


async def follower_with_a_slow_sync(keepalive_s: float | None) -> tuple[Recorder, int, int]:
    """Node 1 follows leader 2, acks a heartbeat, then an ``Accept`` makes it sync for
    ``STALL_S``; returns the sender and how many sends had happened before and during it."""
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    storage = SlowSyncStorage()
    sender = Recorder()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node,
            storage,
            sender,
            executor,
            tick_s=TICK_S,
            keepalive_s=keepalive_s,
            inline_sync_inputs_max=0,  # the thread: the loop must run during the stall
        )
        task = asyncio.create_task(driver.run())
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
        await asyncio.sleep(5 * TICK_S)
        before = len(sender.sent)
        assert isinstance(sender.sent[-1][1], HeartbeatAck)
        driver.deliver(Accept(2, LEADER_BALLOT, 1, (Entry(2, 7, b"SET k v"),), 0))
        await asyncio.sleep(STALL_S)  # the loop runs; the driver waits on the sync
        during = len(sender.sent)
        storage.release.set()
        await asyncio.sleep(5 * TICK_S)
        driver.stop()
        await task
    return sender, before, during


async def test_a_follower_waiting_on_a_slow_sync_keeps_acking_its_leader() -> None:
    sender, before, during = await follower_with_a_slow_sync(keepalive_s=3 * TICK_S)
    copies = sender.sent[before:during]
    assert len(copies) >= STALL_S / (3 * TICK_S) / 2  # one every keepalive_s, give or take
    last_ack = sender.sent[before - 1]
    # Only copies of what already left: the Accepted waits for its sync.
    assert all(sent == last_ack and sent[1] is last_ack[1] for sent in copies)
    after = [m for _, m in sender.sent[during:]]
    assert any(isinstance(m, Accepted) and m.slot == 1 for m in after)


async def test_with_no_keepalive_a_slow_sync_silences_the_follower() -> None:
    # A keep-alive longer than the stall is none: the follower sends nothing meanwhile.
    _, before, during = await follower_with_a_slow_sync(keepalive_s=10 * STALL_S)
    assert during == before


async def test_a_leader_waiting_on_a_slow_sync_keeps_heartbeating() -> None:
    node = Node(2, CONFIG, random.Random(2), KVStateMachine())
    storage = SlowSyncStorage()
    storage.release.set()
    sender = Recorder()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node,
            storage,
            sender,
            executor,
            tick_s=TICK_S,
            keepalive_s=3 * TICK_S,
            inline_sync_inputs_max=0,
        )
        task = asyncio.create_task(driver.run())
        deadline = time.monotonic() + 5
        while not [m for _, m in sender.sent if isinstance(m, Prepare)]:
            assert time.monotonic() < deadline, "no election"
            await asyncio.sleep(TICK_S)
        prepare = next(m for _, m in sender.sent if isinstance(m, Prepare))
        driver.deliver(Promise(1, prepare.ballot, prepare.first_slot, 0, 0))
        while node.role is not Role.LEADER:
            assert time.monotonic() < deadline, "not elected"
            await asyncio.sleep(TICK_S)
        await asyncio.sleep(5 * TICK_S)
        storage.release.clear()
        driver.propose(1, b"SET k v")  # its AcceptRecord, then a follower's record, stall
        await asyncio.sleep(STALL_S / 5)
        stalled_at = len(sender.sent)
        await asyncio.sleep(STALL_S)
        during = sender.sent[stalled_at:]
        storage.release.set()
        await asyncio.sleep(5 * TICK_S)
        driver.stop()
        await task
    beats = [(to, m) for to, m in during if isinstance(m, Heartbeat)]
    assert {to for to, _ in beats} == {1, 3}
    assert all(m.ballot == prepare.ballot for _, m in beats)
    assert len(during) == len(beats)  # nothing else while the sync is in flight
