"""Leases in the runtime: ``reads = "lease"`` in cluster.toml, and a leader's clock never late.

A leader whose loop stood still longer than its lease must count the missed ticks before it
answers the read that waited (``runtime.driver``, ``multi.lease``): the read then takes a
confirmation round instead of the lease.  With the old order (inputs first, ticks capped) the
same stall answers from the expired lease: the test can fail.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from runtime_helpers import Recorder
from test_runtime_config import GOOD, write

from pypaxos.core.effects import Send
from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Heartbeat, HeartbeatAck, MultiConfig, Node, Prepare, Promise, Role
from pypaxos.runtime.config import (
    ConfigError,
    follower_clock_lag_ticks,
    load_config,
    render_config,
)
from pypaxos.runtime.driver import Driver
from pypaxos.storage import MemoryStorage

# A lone node driven by hand: its timer sends Prepare at once (no pre-vote, ``multi.election``).
CONFIG = MultiConfig(node_ids=(1, 2, 3), lease_ticks=20, clock_drift_ppm=10_000, pre_vote=False)
TICK_S = 0.005
STALL_S = 0.3  # 60 ticks: three leases


def test_lease_reads_parse_render_and_reach_the_protocol(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, GOOD)).multi_config().leases  # off by default
    text = GOOD.replace("tick_ms = 5", 'tick_ms = 5\nreads = "lease"')
    config = load_config(write(tmp_path, text))
    multi = config.multi_config()
    assert multi.lease_clock_lag_ticks == follower_clock_lag_ticks(multi.heartbeat_ticks)
    bound = multi.lease_ticks - 1 - multi.lease_clock_lag_ticks
    assert multi.lease_serve_ticks() == bound * 1_000_000 // (1_000_000 + multi.clock_drift_ppm)
    assert multi.leases and (multi.lease_ticks, multi.clock_drift_ppm) == (40, 10_000)
    again = load_config(write(tmp_path, render_config(config)))
    assert again == config
    tuned = text.replace("heartbeat_ticks = 4", "heartbeat_ticks = 4\nlease_ticks = 30")
    assert load_config(write(tmp_path, tuned)).multi_config().lease_ticks == 30
    assert "lease_ticks = 30" in render_config(load_config(write(tmp_path, tuned)))


@pytest.mark.parametrize(
    ("line", "key"),
    [('reads = "leases"', "reads"), ("[timeouts]\nlease_ticks = 1", "timeouts")],
)
def test_lease_settings_are_strict(tmp_path: Path, line: str, key: str) -> None:
    text = GOOD.replace("tick_ms = 5", 'tick_ms = 5\nreads = "lease"')
    if line.startswith("[timeouts]"):
        text = text.replace("heartbeat_ticks = 4", "heartbeat_ticks = 4\nlease_ticks = 1")
    else:
        text = text.replace('reads = "lease"', line)
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, text))


def _leader() -> Node:
    """Node 1, leader at its ballot on node 2's promise (driven by hand, before any loop)."""
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    for _ in range(200):
        prepares = [e.msg for e in node.tick() if isinstance(e, Send)]
        prepare = next((m for m in prepares if isinstance(m, Prepare)), None)
        if prepare is not None:
            node.handle(Promise(2, prepare.ballot, 0, 0, 0))
            break
    assert node.role is Role.LEADER
    return node


async def _stalled_read(leases_first: bool) -> Node:
    node = _leader()
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S)
        if not leases_first:  # the old order: inputs first, the clock capped and late
            driver._lease_clock = lambda: False  # type: ignore[method-assign]
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(2 * TICK_S)
        driver.deliver(HeartbeatAck(2, node.leader.ballot, 0, node.reads.round))
        await asyncio.sleep(TICK_S)
        assert node._lease_holds()
        driver.read(1, b"\x00")  # answered at once under the lease
        await asyncio.sleep(TICK_S)
        assert node.lease_reads == 1
        time.sleep(STALL_S)  # blocks the loop, as a descheduled process would be
        # The next read arrives in the first pass after the stall (it waited in the socket);
        # it finds the driver asleep, so it is stepped at once, in the caller's callback.
        driver.read(2, b"\x00")
        await asyncio.sleep(2 * TICK_S)
        driver.stop()
        await task
    return node


@pytest.mark.asyncio
async def test_a_leader_counts_a_stall_before_it_answers_from_its_lease() -> None:
    node = await _stalled_read(leases_first=True)
    assert node.lease_reads == 1  # the second read took a confirmation round instead


@pytest.mark.asyncio
async def test_with_the_clock_capped_the_same_stall_answers_from_an_expired_lease() -> None:
    node = await _stalled_read(leases_first=False)
    assert node.lease_reads == 2


@pytest.mark.asyncio
async def test_a_followers_clock_jumps_after_an_ack_by_no_more_than_the_leader_allows() -> None:
    """The driver steps a follower's messages before its ticks, so after a stall the clock an
    acknowledgement's promise was counted on jumps right after it: the promise is that much
    shorter in real time.  The jump is bounded by ``follower_clock_lag_ticks``, and the
    runtime's leader serves that much less (``MultiConfig.lease_clock_lag_ticks``)."""
    heartbeat_ticks = 5
    config = MultiConfig(
        node_ids=(1, 2, 3),
        heartbeat_ticks=heartbeat_ticks,
        election_timeout_min_ticks=10_000,
        election_timeout_max_ticks=10_000,
        lease_ticks=40,
        pre_vote=False,
    )
    node = Node(1, config, random.Random(1), KVStateMachine())
    lag_max = follower_clock_lag_ticks(heartbeat_ticks)
    jumps = []
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Recorder(), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        driver.deliver(Heartbeat(2, Ballot(1, 2), 0, 1))
        await asyncio.sleep(10 * TICK_S)
        for read_round in (2, 3):
            time.sleep(40 * TICK_S)  # the loop stands still; the next heartbeat waits
            driver.deliver(Heartbeat(2, Ballot(1, 2), 0, read_round))
            await asyncio.sleep(0)
            acknowledged_at = node.lease.bound_until - config.lease_ticks
            jumps.append(node.detector.now - acknowledged_at)
            await asyncio.sleep(10 * TICK_S)
        driver.stop()
        await task
    assert all(1 < jump <= lag_max for jump in jumps), jumps  # it happens, and it is bounded
