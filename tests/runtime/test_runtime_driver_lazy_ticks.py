"""A quiet node wakes up for ticks once per heartbeat interval, and still counts every tick.

A follower of a known leader (or a leader with nothing to announce) lets ``tick_wake_ticks``
ticks come due before the driver wakes for them; it then counts them all, so its clock keeps
pace with the loop clock and only its timers' granularity changes.  A candidate, or a leader
with a commit its followers have not heard of, ticks on time.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from runtime_helpers import Recorder

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Heartbeat, MultiConfig, Node, Role
from pypaxos.runtime.driver import Driver
from pypaxos.storage import MemoryStorage

CONFIG = MultiConfig(
    node_ids=(1, 2, 3),
    heartbeat_ticks=5,
    election_timeout_min_ticks=10_000,  # no election during the test
    election_timeout_max_ticks=10_000,
    leader_stickiness_ticks=10,
    step_down_ticks=10_000,
)
TICK_S = 0.005
RUN_S = 0.4  # 80 ticks
LEADER_BALLOT = Ballot(1, 2)


async def idle_follower_batches(tick_wake_ticks: int) -> int:
    """Node 1 hears one heartbeat from leader 2, then nothing for ``RUN_S``: how many batches
    (wake-ups) the driver ran meanwhile."""
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node,
            MemoryStorage(),
            Recorder(),
            executor,
            tick_s=TICK_S,
            tick_wake_ticks=tick_wake_ticks,
        )
        task = asyncio.create_task(driver.run())
        driver.deliver(Heartbeat(2, LEADER_BALLOT, 0))
        await asyncio.sleep(2 * TICK_S)
        assert node.role is Role.FOLLOWER and node.leader_id == 2
        batches_before, now_before = driver.batches, node.detector.now
        await asyncio.sleep(RUN_S)
        batches, ticks = driver.batches - batches_before, node.detector.now - now_before
        driver.stop()
        await task
    expected_ticks = RUN_S / TICK_S
    # The clock keeps pace either way: every tick is counted, late ones in bulk.  (Counting
    # only ``ticks_per_batch_max`` per wake-up would give 2 in 5: 40% of them.)
    assert expected_ticks * 0.55 <= ticks <= expected_ticks * 1.3, ticks
    return batches


@pytest.mark.asyncio
async def test_a_quiet_follower_wakes_once_per_heartbeat_interval() -> None:
    batches = await idle_follower_batches(tick_wake_ticks=5)
    assert batches <= RUN_S / TICK_S / 5 * 1.5  # about 16 wake-ups, not 80


@pytest.mark.asyncio
async def test_waking_for_every_tick_takes_five_times_as_many_batches() -> None:
    batches = await idle_follower_batches(tick_wake_ticks=1)
    assert batches >= RUN_S / TICK_S * 0.5  # the check above can fail


def test_a_leader_with_a_commit_to_announce_ticks_on_time() -> None:
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S)
        assert driver.tick_wake_ticks == CONFIG.heartbeat_ticks
        assert driver._deferred_ticks() == 0  # a follower with no leader: on time
        node.role, node.commit_unannounced = Role.LEADER, True
        assert driver._deferred_ticks() == 0
        node.commit_unannounced = False
        assert driver._deferred_ticks() == CONFIG.heartbeat_ticks - 1
        node.role = Role.CANDIDATE
        assert driver._deferred_ticks() == 0


def test_a_leader_with_a_thrifty_read_round_out_ticks_on_time() -> None:
    """The round went to its targets only: a tick later it goes to every peer, so the leader's
    ticks must not wait (``multi.reads``, step 2)."""
    node = Node(1, replace(CONFIG, thrifty_reads=True), random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S)
        node.role = Role.LEADER
        assert driver._deferred_ticks() == CONFIG.heartbeat_ticks - 1
        node.reads.thrifty_tick = node.detector.now
        node.reads.rounds.append((1, []))
        assert node.read_round_waiting and driver._deferred_ticks() == 0
        node.reads.rounds.clear()  # confirmed: quiet again
        assert driver._deferred_ticks() == CONFIG.heartbeat_ticks - 1


def test_tick_wake_ticks_must_be_positive() -> None:
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="tick_wake_ticks"):
        Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S, tick_wake_ticks=0)
