"""A node bounds what one client can cost it: connections, unread replies, a whole command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from runtime_helpers import port_of, write_cluster

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[NodeApp]:
    node = NodeApp(load_config(write_cluster(tmp_path, nodes=1)), 1)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def _ask(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.close()


async def test_a_client_over_the_limit_is_told_and_closed(app: NodeApp) -> None:
    assert app.server is not None
    app.server.clients_max = 2
    port = port_of(app.member.client)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(10):
            assert await reader.readline() == b"-ERR max number of clients reached\r\n"
            assert await reader.read() == b""
        writer.close()
        assert await _ask(port, b"PING\r\n") == b"-ERR max number of clients reached\r\n"
    finally:
        for _, writer in held:
            writer.close()


async def test_a_client_that_never_reads_is_dropped(app: NodeApp) -> None:
    assert app.server is not None
    app.server.output_bytes_max = 1024 * 1024
    port = port_of(app.member.client)
    value = b"x" * 100_000
    set_value = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + value + b"\r\n"
    assert await _ask(port, set_value) == b"+OK\r\n"
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET k\r\n" * 2000)  # 200 MB of replies that nobody reads
        await writer.drain()
        async with asyncio.timeout(20):
            while app.server.connections:
                await asyncio.sleep(0.05)
        assert await _ask(port, b"PING\r\n") == b"+PONG\r\n"  # the node serves on
    finally:
        writer.close()


async def test_a_six_megabyte_array_is_answered_and_the_node_serves_on(app: NodeApp) -> None:
    # Its linear cost is asserted structurally (tests/runtime/test_resp.py, tests/fuzz); its
    # time is measured, not tested (docs/security.md).
    port = port_of(app.member.client)
    count = 1_048_576
    reply = await _ask(port, b"*%d\r\n" % count + b"$0\r\n\r\n" * count)
    assert reply.startswith(b"-ERR unknown command")
    assert await _ask(port, b"PING\r\n") == b"+PONG\r\n"
