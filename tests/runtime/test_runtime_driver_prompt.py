"""Prompt steps (``runtime.driver``): a read's confirmation round is stepped in the callback it
arrives in when the driver sleeps, and never while a batch waits for its sync.

The first two tests show the latency path: a leader's read sends its heartbeats from inside
``Driver.read``, and a follower acknowledges a heartbeat from inside ``Driver.deliver``.  The
third is the ordering that must hold: a follower whose promise of a new ballot is still being
synced neither acknowledges that ballot's heartbeat nor sends anything before the sync ends.
"""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from runtime_helpers import Recorder

from pypaxos.core.effects import Send
from pypaxos.core.types import Ballot
from pypaxos.kv import Get, KVStateMachine, Request, encode_request
from pypaxos.multi import (
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
    heartbeat_ticks=5,
    election_timeout_min_ticks=10_000,  # no election during the tests
    election_timeout_max_ticks=10_000,
    step_down_ticks=10_000,
    pre_vote=False,
)
TICK_S = 0.005
READ = encode_request(Request(0, 0, Get(b"k"), 0))

pytestmark = pytest.mark.asyncio


class HeldStorage(MemoryStorage):
    """A ``MemoryStorage`` whose ``sync`` waits (in the storage thread) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.syncing = threading.Event()
        self.synced = 0

    def sync(self) -> None:
        self.syncing.set()
        self.release.wait(10)
        super().sync()
        self.synced += 1


def _leader() -> Node:
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    for _ in range(20_000):
        prepare = next((e.msg for e in node.tick() if isinstance(e, Send)), None)
        if isinstance(prepare, Prepare):
            node.handle(Promise(2, prepare.ballot, 0, 0, 0))
            break
    assert node.role is Role.LEADER
    return node


async def _until_asleep(driver: Driver) -> None:
    for _ in range(400):
        await asyncio.sleep(TICK_S / 5)
        if driver._asleep():
            return
    raise AssertionError("the driver never went to sleep")


async def test_a_read_sends_its_heartbeats_from_inside_read() -> None:
    node, sender = _leader(), Recorder()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), sender, executor, tick_s=TICK_S, idle_spin_s=0)
        task = asyncio.create_task(driver.run())
        await _until_asleep(driver)
        sender.sent.clear()
        driver.read(1, READ)  # no await: stepped in this call
        assert node.reads.in_flight()  # the read waits for its round, which has left:
        latest = node.reads.round
        beats = {to for to, m in sender.sent if isinstance(m, Heartbeat) and m.read_round == latest}
        assert beats == {2, 3}
        assert driver.prompt_steps >= 1
        driver.stop()
        await task


async def test_a_sleeping_follower_acknowledges_from_inside_deliver() -> None:
    node, sender = Node(1, CONFIG, random.Random(1), KVStateMachine()), Recorder()
    ballot = Ballot(1, 2)
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), sender, executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        await _until_asleep(driver)
        driver.deliver(Heartbeat(2, ballot, 0, 7))  # no await: stepped in this call
        assert sender.sent == [(2, HeartbeatAck(1, ballot, 0, 7))]
        assert node.leader_id == 2
        driver.stop()
        await task


async def _ack_while_syncing(*, planted: bool) -> list[type]:
    """What follower 1 sends while its promise of a new ballot is being synced."""
    node, sender, storage = (
        Node(1, CONFIG, random.Random(1), KVStateMachine()),
        Recorder(),
        HeldStorage(),
    )
    ballot = Ballot(1, 2)
    with ThreadPoolExecutor(1) as executor:
        # every sync in the storage thread, so the batch awaits it
        driver = Driver(
            node,
            storage,
            sender,
            executor,
            tick_s=TICK_S,
            inline_sync_inputs_max=0,
            prompt_while_busy=planted,
        )
        task = asyncio.create_task(driver.run())
        await _until_asleep(driver)
        driver.deliver(Prepare(2, ballot, 0))  # a promise: a record to sync
        for _ in range(400):
            await asyncio.sleep(TICK_S / 5)
            if storage.syncing.is_set():
                break
        assert storage.syncing.is_set()
        driver.deliver(Heartbeat(2, ballot, 0, 7))
        await asyncio.sleep(4 * TICK_S)
        during = [type(m) for _, m in sender.sent]
        storage.release.set()
        for _ in range(400):
            await asyncio.sleep(TICK_S / 5)
            if len(sender.sent) >= 2:
                break
        after = [type(m) for _, m in sender.sent]
        assert planted or after[:2] == [Promise, HeartbeatAck]
        driver.stop()
        await task
    return during


async def test_no_acknowledgement_leaves_while_the_promise_is_being_synced() -> None:
    assert await _ack_while_syncing(planted=False) == []  # nothing before the sync


async def test_planted_prompt_while_busy_acknowledges_before_the_sync() -> None:
    # The check can fail: acknowledgements leave before the promise is durable.  On a loaded
    # machine the planted driver has been seen to send the same acknowledgement twice.
    during = await _ack_while_syncing(planted=True)
    assert HeartbeatAck in during and set(during) == {HeartbeatAck}


class ReadAgainSink:
    """Records the answers; the first one submits another read from inside its callback."""

    def __init__(self) -> None:
        self.driver: Driver | None = None
        self.events: list[str] = []

    def on_reply(self, request_id: int, result: bytes) -> None:
        self.events.append(f"reply {request_id}")
        if request_id == 1 and self.driver is not None:
            self.driver.read(2, READ)
            self.events.append("submitted 2")

    def on_local_reply(self, request_id: int, answer: object) -> None: ...

    def on_redirect(self, request_id: int, leader_id: int | None) -> None: ...

    def on_busy(self, request_id: int) -> None: ...

    def on_refused(self, refusal: object) -> None: ...


async def test_a_read_submitted_by_a_prompt_steps_answer_waits_for_the_task() -> None:
    alone = MultiConfig(
        node_ids=(1,),
        pre_vote=False,
        election_timeout_min_ticks=3,
        election_timeout_max_ticks=4,
        leader_stickiness_ticks=1,
    )
    node = Node(1, alone, random.Random(1), KVStateMachine())  # its own quorum: reads at once
    for _ in range(50):
        node.tick()
    assert node.role is Role.LEADER
    sink = ReadAgainSink()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S, idle_spin_s=0)
        driver.sink = sink  # type: ignore[assignment]
        sink.driver = driver
        task = asyncio.create_task(driver.run())
        await _until_asleep(driver)
        driver.read(1, READ)
        # read 2 was not stepped inside read 1's answer (a batch inside a batch):
        assert sink.events == ["reply 1", "submitted 2"]
        await _until_asleep(driver)
        assert sink.events == ["reply 1", "submitted 2", "reply 2"]
        driver.stop()
        await task
