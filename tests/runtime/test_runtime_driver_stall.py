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
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Heartbeat, MultiConfig, Node, Prepare, Role
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.wire import WireMessage
from pypaxos.storage import MemoryStorage

CONFIG = MultiConfig(
    node_ids=(1, 2, 3),
    election_timeout_min_ticks=20,
    election_timeout_max_ticks=20,
    leader_stickiness_ticks=10,
    step_down_ticks=20,
)
TICK_S = 0.005
STALL_S = 0.5  # 100 ticks: five election timeouts
LEADER_BALLOT = Ballot(1, 2)

pytestmark = pytest.mark.asyncio


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[int, WireMessage]] = []

    def send(self, to: int, msg: WireMessage) -> None:
        self.sent.append((to, msg))


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
