"""A misbehaving client loses its own connection, with a WARNING naming it; others carry on.

Each case opens a raw asyncio connection to node 2, writes bad bytes, and expects node 2 to
hang up and log the client's address and the error, while node 1 keeps sending to node 2
throughout and every one of its messages arrives in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import msgspec
import pytest
from transport_helpers import CODEC, FAST, MakeTransport, connect_all, eventually

from pypaxos.core.messages import Accept, Prepare, Query
from pypaxos.core.types import Ballot
from pypaxos.transport.codec import FRAME_BYTES_MAX_DEFAULT, PROTOCOL_VERSION, Hello
from pypaxos.transport.tcp import TcpConfig

CLUSTER = "main"
HELLO = CODEC.encode_hello(Hello(7, CLUSTER, protocol=PROTOCOL_VERSION))


def frame(version: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, version) + payload


BAD_STREAMS = {
    "garbage": (HELLO + frame(1, b"\xc1\xc1\xc1 not msgpack"), "MalformedFrame"),
    "http request": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "FrameTooLarge"),
    "oversized length": (struct.pack(">IB", FRAME_BYTES_MAX_DEFAULT + 1, 1), "FrameTooLarge"),
    "bad version": (frame(2, msgspec.msgpack.encode(Hello(7, CLUSTER))), "UnsupportedVersion"),
    "unknown tag": (
        HELLO + frame(1, msgspec.msgpack.encode({"type": "Bogus", "sender": 7})),
        "MalformedFrame",
    ),
    "no hello": (CODEC.encode_frame(Query(7)), "MalformedFrame"),
    "forged sender": (HELLO + CODEC.encode_frame(Query(1)), "SenderMismatch"),
    "wrong cluster": (
        CODEC.encode_hello(Hello(7, "other", protocol=PROTOCOL_VERSION)),
        "HandshakeRejected",
    ),
}


async def hung_up(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    try:
        async with asyncio.timeout(5):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
async def test_bad_stream_closes_only_that_connection(
    case: str, make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    data, error_name = BAD_STREAMS[case]
    (a, _) = await make_transport(1, cluster_id=CLUSTER)
    (b, inbox_b) = await make_transport(2, cluster_id=CLUSTER)
    connect_all([a, b])
    good = [Accept(1, Ballot(i, 1), f"v{i}") for i in range(30)]
    for msg in good[:10]:
        a.send(2, msg)
    await eventually(lambda: len(inbox_b.messages) == 10)

    host, port = b.listen_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    client_port = writer.get_extra_info("sockname")[1]
    try:
        with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
            writer.write(data)
            for msg in good[10:20]:
                a.send(2, msg)
            assert await hung_up(reader)
    finally:
        writer.close()
        await writer.wait_closed()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert str(client_port) in text and error_name in text, text
    assert b.inbound_stats.protocol_errors == 1

    for msg in good[20:]:
        a.send(2, msg)
    await eventually(lambda: len(inbox_b.messages) == 30)
    assert inbox_b.messages == good  # the well-behaved peer never noticed


@pytest.mark.asyncio
async def test_silent_client_is_dropped_after_the_handshake_timeout(
    make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    config = TcpConfig(handshake_timeout_s=0.1)
    b, _ = await make_transport(2, config=config)
    host, port = b.listen_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
            writer.write(HELLO[:3])  # a trickle that never completes the Hello
            assert await hung_up(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert any("no Hello within 0.1 s" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_good_client_frames_in_one_chunk_with_the_hello_are_delivered(
    make_transport: MakeTransport,
) -> None:
    b, inbox_b = await make_transport(2, config=FAST)
    host, port = b.listen_address.rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port))
    msgs = [Prepare(7, Ballot(i, 7)) for i in range(5)]
    try:
        writer.write(HELLO + CODEC.encode_frames(msgs))  # one write, one chunk
        await eventually(lambda: len(inbox_b.messages) == 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert inbox_b.messages == msgs


@pytest.mark.asyncio
async def test_a_hello_split_across_reads_is_waited_for(make_transport: MakeTransport) -> None:
    b, inbox_b = await make_transport(2, config=FAST)
    host, port = b.listen_address.rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port))
    msgs = [Prepare(7, Ballot(i, 7)) for i in range(3)]
    try:
        writer.write(HELLO[:4])
        await writer.drain()
        await asyncio.sleep(0.05)  # its own read on the server
        writer.write(HELLO[4:] + CODEC.encode_frames(msgs[:1]))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(CODEC.encode_frames(msgs[1:]))
        await eventually(lambda: len(inbox_b.messages) == 3)
    finally:
        writer.close()
        await writer.wait_closed()
    assert inbox_b.messages == msgs
    assert b.inbound_stats.protocol_errors == 0


@pytest.mark.asyncio
async def test_close_hangs_up_every_inbound_connection(make_transport: MakeTransport) -> None:
    b, _ = await make_transport(2, config=FAST)
    host, port = b.listen_address.rsplit(":", 1)
    clients = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    clients[0][1].write(HELLO)  # one greeted, two still in their handshake
    await eventually(lambda: b.inbound_stats.connections == 3)
    await b.close()
    try:
        for reader, _writer in clients:
            assert await hung_up(reader)
    finally:
        for _reader, writer in clients:
            writer.close()
    assert not b._inbound  # each connection's end was seen and forgotten
