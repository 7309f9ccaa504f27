"""Sends to an unreachable peer are bounded: the queue drops, counts, logs rarely, and memory
stays flat however many messages the caller pushes."""

from __future__ import annotations

import logging
import tracemalloc

import pytest
from transport_helpers import FAST, MakeTransport, eventually, free_port

from pypaxos.core.messages import Accept, Message
from pypaxos.core.types import Ballot
from pypaxos.transport.tcp import DropPolicy, TcpConfig


def msg(seq: int) -> Message:
    return Accept(1, Ballot(seq, 1), f"value-{seq}")


def bounded(policy: DropPolicy, frames_max: int = 100, bytes_max: int = 1 << 20) -> TcpConfig:
    return TcpConfig(
        send_queue_frames_max=frames_max,
        send_queue_bytes_max=bytes_max,
        drop_policy=policy,
        reconnect_delay_initial_s=FAST.reconnect_delay_initial_s,
        reconnect_delay_max_s=FAST.reconnect_delay_max_s,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("policy", "kept"), [("drop_oldest", range(9900, 10000)), ("drop_new", range(100))]
)
async def test_full_queue_drops_by_policy_and_the_survivors_arrive(
    policy: DropPolicy,
    kept: range,
    make_transport: MakeTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    a, _ = await make_transport(1, peers={2: address}, config=bounded(policy))
    with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
        for seq in range(10_000):
            a.send(2, msg(seq))
    assert a.queued_frames(2) == 100
    assert a.peer_stats(2).frames_dropped == 9900
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1  # rate-limited: one line for 9900 drops, not 9900 lines

    _b, inbox_b = await make_transport(2, listen=address)
    await eventually(lambda: len(inbox_b.messages) == 100)
    assert inbox_b.messages == [msg(seq) for seq in kept]


@pytest.mark.asyncio
async def test_byte_bound_applies_too(make_transport: MakeTransport) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = bounded("drop_oldest", frames_max=10_000, bytes_max=4096)
    a, _ = await make_transport(1, peers={2: address}, config=config)
    for seq in range(1000):
        a.send(2, msg(seq))
    assert a.queued_bytes(2) <= 4096
    assert 0 < a.queued_frames(2) < 1000
    assert a.peer_stats(2).frames_dropped == 1000 - a.queued_frames(2)


@pytest.mark.asyncio
async def test_memory_does_not_grow_while_the_peer_is_unreachable(
    make_transport: MakeTransport,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    a, _ = await make_transport(1, peers={2: address}, config=bounded("drop_oldest"))
    tracemalloc.start()
    try:
        for seq in range(5_000):  # fill the queue and warm every cache
            a.send(2, msg(seq))
        await eventually(lambda: a.peer_stats(2).connect_failures >= 2)
        before, _ = tracemalloc.get_traced_memory()
        for seq in range(5_000, 35_000):
            a.send(2, msg(seq))
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert a.queued_frames(2) == 100
    assert a.peer_stats(2).frames_dropped == 35_000 - 100
    # 30_000 more frames of ~50 bytes would be ~2.5 MB if kept; allow 64 KiB of noise.
    assert after - before < 64 * 1024, after - before
