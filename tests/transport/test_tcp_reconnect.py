"""Peers that are down at first, or restart, are reached once they listen again."""

from __future__ import annotations

import asyncio

import pytest
from transport_helpers import MakeTransport, connect_all, eventually, free_port

from pypaxos.core.messages import Accept, Decided, Message, Query
from pypaxos.core.types import Ballot
from pypaxos.transport.tcp import TcpConfig


def numbered(sender: int, start: int, count: int) -> list[Message]:
    return [Accept(sender, Ballot(seq, sender), f"m{seq}") for seq in range(start, start + count)]


@pytest.mark.asyncio
async def test_peer_down_at_first_gets_the_queued_messages_when_it_comes_up(
    make_transport: MakeTransport,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    a, _ = await make_transport(1, peers={2: address})
    msgs = numbered(1, 0, 20)
    for msg in msgs:
        a.send(2, msg)
    await eventually(lambda: a.peer_stats(2).connect_failures >= 3)
    assert a.queued_frames(2) == 20  # held (within the bound) while the peer is down
    _b, inbox_b = await make_transport(2, listen=address)
    await eventually(lambda: len(inbox_b.messages) == 20)
    assert inbox_b.messages == msgs
    assert a.peer_stats(2).connects == 1


@pytest.mark.asyncio
async def test_peer_restart_on_the_same_port(make_transport: MakeTransport) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    address = b.listen_address
    first = numbered(1, 0, 50)
    for msg in first:
        a.send(2, msg)
    await eventually(lambda: inbox_b.messages == first)

    await b.close()  # "crash": the EOF reaches a's writer, which drops the dead connection
    await eventually(lambda: a.peer_stats(2).disconnects == 1)
    _b2, inbox_b2 = await make_transport(2, listen=address)
    second = numbered(1, 50, 50)
    for msg in second:
        a.send(2, msg)
    await eventually(lambda: len(inbox_b2.messages) == 50)
    assert inbox_b2.messages == second
    assert a.peer_stats(2).connects == 2


@pytest.mark.asyncio
async def test_messages_sent_while_the_peer_restarts_arrive_after_it(
    make_transport: MakeTransport,
) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    address = b.listen_address
    a.send(2, numbered(1, 0, 1)[0])
    await eventually(lambda: len(inbox_b.messages) == 1)
    await b.close()
    await eventually(lambda: a.peer_stats(2).disconnects == 1)
    during = numbered(1, 1, 10)
    for msg in during:
        a.send(2, msg)  # queued while nobody listens; reconnects fail and back off
    await eventually(lambda: a.peer_stats(2).connect_failures >= 1)
    _b2, inbox_b2 = await make_transport(2, listen=address)
    await eventually(lambda: len(inbox_b2.messages) == 10)
    assert inbox_b2.messages == during


@pytest.mark.asyncio
async def test_a_peer_that_stops_reading_is_dropped_and_redialled(
    make_transport: MakeTransport,
) -> None:
    stop = asyncio.Event()
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await stop.wait()
        writer.close()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        config = TcpConfig(
            drain_timeout_s=0.2,
            reconnect_delay_initial_s=0.01,
            reconnect_delay_max_s=0.05,
            send_queue_bytes_max=64 << 20,
        )
        a, _ = await make_transport(1, peers={2: f"127.0.0.1:{port}"}, config=config)
        big = Decided(1, "x" * 60_000)
        for _ in range(600):  # ~36 MB: more than loopback socket buffers hold
            a.send(2, big)
        await eventually(lambda: a.peer_stats(2).disconnects == 1)
        assert a.peer_stats(2).frames_sent == 0  # the stuck batch is lost, as Paxos allows
        a.send(2, Query(1))  # the next send redials
        await eventually(lambda: len(accepted) == 2)
        assert a.peer_stats(2).connects == 2
    finally:
        stop.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_dial_connects_with_nothing_to_send(make_transport: MakeTransport) -> None:
    (a, _), (b, _) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    a.dial(2)
    await eventually(lambda: a.peer_stats(2).connects == 1 and b.inbound_stats.connections == 1)
    assert a.peer_stats(2).frames_sent == 0


@pytest.mark.asyncio
async def test_a_peer_that_dials_us_cuts_our_backoff_towards_it_short(
    make_transport: MakeTransport,
) -> None:
    slow = TcpConfig(reconnect_delay_initial_s=30.0, reconnect_delay_max_s=60.0)
    address = f"127.0.0.1:{free_port()}"
    a, _ = await make_transport(1, peers={2: address}, config=slow)
    msg = numbered(1, 0, 1)[0]
    a.send(2, msg)
    await eventually(lambda: a.peer_stats(2).connect_failures == 1)  # now backing off 15-30 s
    b, inbox_b = await make_transport(2, listen=address, peers={1: a.listen_address})
    b.dial(1)  # b's Hello tells a that b is back
    await eventually(lambda: inbox_b.messages == [msg], timeout_s=2.0)


@pytest.mark.asyncio
async def test_a_connection_closed_under_the_writer_is_redialled_and_nothing_queued_is_lost(
    make_transport: MakeTransport,
) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    a.send(2, numbered(1, 0, 1)[0])
    await eventually(lambda: len(inbox_b.messages) == 1)
    writer = a._peers[2].writer
    assert writer is not None
    writer.transport.abort()  # closed now, before the EOF watcher has had a turn
    later = numbered(1, 1, 5)
    for msg in later:
        a.send(2, msg)
    await eventually(lambda: len(inbox_b.messages) == 6)
    assert inbox_b.messages[1:] == later
    assert a.peer_stats(2).connects == 2
    assert a.peer_stats(2).writer_crashes == 0


@pytest.mark.asyncio
async def test_a_writer_that_crashes_on_a_bug_is_started_again(
    make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    (a, _), (b, inbox_b) = await make_transport(1), await make_transport(2)
    connect = a._connect
    failures = [RuntimeError("a bug in the writer")]

    async def connect_once_broken(peer: object) -> object:
        if failures:
            raise failures.pop()
        return await connect(peer)  # type: ignore[arg-type]

    monkeypatch.setattr(a, "_connect", connect_once_broken)
    connect_all([a, b])
    msgs = numbered(1, 0, 3)
    for msg in msgs:
        a.send(2, msg)
    await eventually(lambda: inbox_b.messages == msgs)
    assert a.peer_stats(2).writer_crashes == 1


@pytest.mark.asyncio
async def test_a_peer_that_hung_up_is_redialled_with_nothing_to_send(
    make_transport: MakeTransport,
) -> None:
    (a, _), (b, _) = await make_transport(1), await make_transport(2)
    connect_all([a, b])
    address = b.listen_address
    a.dial(2)
    await eventually(lambda: a.peer_stats(2).connects == 1)
    await b.close()
    await eventually(lambda: a.peer_stats(2).disconnects == 1)
    await eventually(lambda: a.peer_stats(2).connect_failures >= 1)  # and it keeps trying
    b2, _ = await make_transport(2, listen=address)
    await eventually(lambda: b2.inbound_stats.connections == 1 and a.peer_stats(2).connects == 2)
    assert a.peer_stats(2).frames_queued == 0
