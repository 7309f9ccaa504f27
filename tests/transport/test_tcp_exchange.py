"""Real sockets on 127.0.0.1: two and three transports exchange messages, in order."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from transport_helpers import CODEC, MakeTransport, connect_all, eventually

from pypaxos.core.messages import Accept, Message, Query
from pypaxos.core.types import Ballot
from pypaxos.transport.base import Transport, UnknownPeer
from pypaxos.transport.codec import Codec, MessageTooLarge
from pypaxos.transport.tcp import TcpTransport


def numbered(sender: int, to: int, count: int) -> list[Message]:
    return [Accept(sender, Ballot(seq, sender), f"{sender}->{to}#{seq}") for seq in range(count)]


@pytest.mark.asyncio
async def test_two_transports_exchange_everything_in_order(make_transport: MakeTransport) -> None:
    (a, inbox_a), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    a_to_b, b_to_a = numbered(1, 2, 1000), numbered(2, 1, 1000)
    for x, y in zip(a_to_b, b_to_a, strict=True):
        a.send(2, x)
        b.send(1, y)
    await eventually(lambda: len(inbox_b.messages) == 1000 and len(inbox_a.messages) == 1000)
    assert inbox_b.messages == a_to_b
    assert inbox_a.messages == b_to_a
    assert a.peer_stats(2).frames_dropped == 0
    assert a.peer_stats(2).connects == 1
    assert a.peer_stats(2).writes < 1000  # the writer coalesced queued frames
    assert b.inbound_stats.messages_received == 1000


@pytest.mark.asyncio
async def test_three_transports_all_pairs(make_transport: MakeTransport) -> None:
    nodes = [await make_transport(i) for i in (1, 2, 3)]
    connect_all([t for t, _ in nodes])
    count = 300
    expected = {(i, j): numbered(i, j, count) for i, j in itertools.permutations((1, 2, 3), 2)}
    for seq in range(count):
        for (i, j), msgs in expected.items():
            nodes[i - 1][0].send(j, msgs[seq])
        if seq % 50 == 0:
            await asyncio.sleep(0)  # interleave sending with the writers and readers
    await eventually(lambda: all(len(inbox.messages) == 2 * count for _, inbox in nodes))
    for (i, j), msgs in expected.items():
        assert nodes[j - 1][1].from_sender(i) == msgs


@pytest.mark.asyncio
async def test_send_to_self_is_delivered_locally(make_transport: MakeTransport) -> None:
    a, inbox = await make_transport(1)
    a.send(1, Query(1))
    assert inbox.messages == []  # never re-entrant: delivered from the loop, not inside send
    await eventually(lambda: inbox.messages == [Query(1)])


@pytest.mark.asyncio
async def test_local_misuse_raises_at_the_caller(make_transport: MakeTransport) -> None:
    a, _ = await make_transport(1)
    with pytest.raises(UnknownPeer):
        a.send(9, Query(1))
    small = TcpTransport(
        5, "127.0.0.1:0", {6: "127.0.0.1:1"}, Codec[Message](Message, frame_bytes_max=100), print
    )
    await small.start()
    try:
        with pytest.raises(MessageTooLarge):
            small.send(6, Accept(5, Ballot(1, 5), "x" * 128))
        assert small.queued_frames(6) == 0
    finally:
        await small.close()


@pytest.mark.asyncio
async def test_send_after_close_is_dropped(make_transport: MakeTransport) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    await a.close()
    a.send(2, Query(1))
    await asyncio.sleep(0.05)
    assert inbox_b.messages == []


def test_tcp_transport_satisfies_the_protocol() -> None:
    def accepts(_: Transport[Message]) -> None:
        pass

    transport: TcpTransport[Message] = TcpTransport(
        1, "127.0.0.1:0", {}, Codec[Message](Message), lambda m: None
    )
    accepts(transport)  # checked by mypy; at runtime just constructing is the test


@pytest.mark.asyncio
async def test_a_raising_deliver_callback_loses_that_message_only(
    make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Message] = []

    def picky(msg: Message) -> None:
        if isinstance(msg, Query):
            raise RuntimeError("runtime bug")
        received.append(msg)

    a, _ = await make_transport(1)
    b = TcpTransport(2, "127.0.0.1:0", {}, CODEC, picky)
    await b.start()
    try:
        connect_all([a, b])
        msgs = numbered(1, 2, 3)
        a.send(2, msgs[0])
        a.send(2, Query(1))
        a.send(2, msgs[1])
        a.send(2, msgs[2])
        await eventually(lambda: len(received) == 3)
    finally:
        await b.close()
    assert received == msgs
    assert "deliver callback raised" in caplog.text
    assert a.peer_stats(2).connects == 1  # the connection survived


@pytest.mark.asyncio
async def test_flush_writes_a_corked_batch_at_once_from_the_caller(
    make_transport: MakeTransport,
) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    a.send(2, numbered(1, 2, 1)[0])  # connect, and let the writer go back to sleep
    await eventually(lambda: len(inbox_b.messages) == 1)
    await eventually(lambda: a.queued_frames(2) == 0)
    await asyncio.sleep(0.01)
    writes_before = a.peer_stats(2).writes
    batch = numbered(1, 2, 6)[1:]
    a.cork()
    for msg in batch:
        a.send(2, msg)
    assert a.queued_frames(2) == 5  # corked: queued, and the writer was not woken
    a.flush()
    # Written before the caller yields to the loop: no writer-task step in between.
    assert a.queued_frames(2) == 0
    assert a.peer_stats(2).writes == writes_before + 1
    await eventually(lambda: len(inbox_b.messages) == 6)
    assert inbox_b.messages[1:] == batch


@pytest.mark.asyncio
async def test_flush_leaves_a_peer_not_yet_connected_to_its_writer(
    make_transport: MakeTransport,
) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    msgs = numbered(1, 2, 3)
    a.cork()
    for msg in msgs:
        a.send(2, msg)
    a.flush()  # no connection yet: nothing written here, the writer connects and sends
    assert a.queued_frames(2) == 3
    await eventually(lambda: len(inbox_b.messages) == 3)
    assert inbox_b.messages == msgs
