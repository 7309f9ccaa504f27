"""Read-index groups of many connections in one pass of the loop leave as one read, and a
driver batch's replies are written at its end.

A router that records each submission and answers reads from a ``KVStateMachine`` when told
stands in for the cluster, and each connection writes to memory: the tests look at how many
reads the router was asked for and at what every connection got back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from connection_fakes import Collecting, ReadingRouter

from pypaxos.kv import Request, Set, encode_request
from pypaxos.kv.commands import InDb
from pypaxos.runtime.requests import GROUP_BYTES_MAX, GROUP_OPS_MAX
from pypaxos.runtime.router import Failure
from pypaxos.runtime.server import RespConnection, RespServer
from pypaxos.transport.resp import encode_command


def connect(server: RespServer, count: int) -> list[tuple[RespConnection, Collecting]]:
    connections = []
    for _ in range(count):
        connection, transport = RespConnection(server), Collecting()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connections.append((connection, transport))
    return connections


def reading_server() -> tuple[ReadingRouter, RespServer]:
    router = ReadingRouter()
    for seq, key in enumerate((b"a", b"b", b"c"), start=1):
        router.machine.apply(encode_request(Request(9, seq, Set(key, key.upper()))))
    server = RespServer(router, lambda section: "", "127.0.0.1:0", read_index=True)  # type: ignore[arg-type]
    return router, server


async def settle(router: ReadingRouter, failure: Failure | None = None) -> None:
    router.answer(failure)
    await asyncio.sleep(0)  # the connections write from a loop callback
    await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_groups_of_one_pass_share_one_read_and_each_gets_its_own_answers() -> None:
    router, server = reading_server()
    connections = connect(server, 4)
    pipelines = [(b"a", b"b"), (b"c",), (b"b", b"x", b"a"), (b"c", b"c")]
    for (connection, _), keys in zip(connections, pipelines, strict=True):
        connection.data_received(b"".join(encode_command("GET", key) for key in keys))
    # Every group waits for the end of the pass, and they leave as one read.
    assert router.submitted == []
    await asyncio.sleep(0)
    assert [reads for *_, reads in router.submitted] == [8]
    assert all(read for _, _, read, _ in router.submitted)
    await settle(router)
    for (_, transport), keys in zip(connections, pipelines, strict=True):
        expected = b"".join(
            b"$-1\r\n" if key == b"x" else b"$1\r\n" + key.upper() + b"\r\n" for key in keys
        )
        assert bytes(transport.out) == expected
    assert all(connection.reads_out == 0 for connection, _ in connections)


@pytest.mark.asyncio
async def test_a_burst_of_connections_in_different_databases_reads_each_in_its_own() -> None:
    router, server = reading_server()
    router.machine.apply(encode_request(Request(9, 4, InDb(3, Set(b"a", b"THREE")))))
    connections = connect(server, 3)
    # the first and third connection SELECT 3 (answered at once, no read), then all GET a
    for index in (0, 2):
        connections[index][0].data_received(encode_command("SELECT", "3"))
    await asyncio.sleep(0)
    for connection, _ in connections:
        connection.data_received(encode_command("GET", "a"))
    await asyncio.sleep(0)
    assert [reads for *_, reads in router.submitted] == [3]  # all three shared one read
    await settle(router)
    replies = [bytes(transport.out).removeprefix(b"+OK\r\n") for _, transport in connections]
    assert replies == [b"$5\r\nTHREE\r\n", b"$1\r\nA\r\n", b"$5\r\nTHREE\r\n"]


@pytest.mark.asyncio
async def test_a_failed_combined_read_answers_every_command_of_every_group() -> None:
    router, server = reading_server()
    connections = connect(server, 3)
    for connection, _ in connections:
        connection.data_received(encode_command("GET", b"a") + encode_command("GET", b"b"))
    await asyncio.sleep(0)
    assert len(router.submitted) == 1
    await settle(router, Failure.TIMEOUT)
    for _, transport in connections:
        assert bytes(transport.out).count(b"-TRYAGAIN") == 2


@pytest.mark.asyncio
async def test_a_burst_is_cut_at_the_group_bound_and_a_new_pass_starts_alone() -> None:
    router, server = reading_server()
    connections = connect(server, 4)
    per_connection = GROUP_OPS_MAX // 2  # two groups fill one read
    for connection, _ in connections:
        connection.data_received(encode_command("GET", b"a") * per_connection)
    await asyncio.sleep(0)
    assert [reads for *_, reads in router.submitted] == [2 * per_connection] * 2
    await settle(router)
    for _, transport in connections:
        assert bytes(transport.out) == b"$1\r\nA\r\n" * per_connection
    connections[0][0].data_received(encode_command("GET", b"c"))  # a new pass: alone
    await asyncio.sleep(0)
    assert [reads for *_, reads in router.submitted] == [1]
    await settle(router)
    assert bytes(connections[0][1].out).endswith(b"$1\r\nA\r\n$1\r\nC\r\n")


@pytest.mark.asyncio
async def test_a_burst_is_cut_at_the_byte_bound_of_its_inputs() -> None:
    router, server = reading_server()
    key = b"k" * (GROUP_BYTES_MAX // 4)  # each input a quarter of the bound, and a bit
    connections = connect(server, 6)
    for connection, _ in connections:
        connection.data_received(encode_command("GET", key))
    await asyncio.sleep(0)
    # three (just under the bound), then the next three
    assert [reads for *_, reads in router.submitted] == [3, 3]
    await settle(router)
    assert all(bytes(transport.out) == b"$-1\r\n" for _, transport in connections)


@pytest.mark.asyncio
async def test_a_connections_write_after_its_burst_read_waits_for_the_read() -> None:
    router, server = reading_server()
    (first, _), (second, second_out) = connect(server, 2)
    first.data_received(encode_command("GET", b"a"))
    second.data_received(encode_command("GET", b"b"))  # both wait for the end of the pass
    second.data_received(encode_command("SET", b"b", b"new"))  # deferred behind the read
    await asyncio.sleep(0)
    assert [(read, reads) for _, _, read, reads in router.submitted] == [(True, 2)]
    await settle(router)  # the reads answered, the deferred write leaves now
    assert [read for _, _, read, _ in router.submitted] == [False]
    await settle(router)
    assert bytes(second_out.out) == b"$1\r\nB\r\n+OK\r\n"


class Driverish:
    """What ``RespServer.start`` looks for on a router's driver: its after-batch listeners."""

    def __init__(self) -> None:
        self.applied_listeners: list[Callable[[], None]] = []


@pytest.mark.asyncio
async def test_replies_are_written_when_the_drivers_batch_ends_not_a_pass_later() -> None:
    router, server = reading_server()
    router.driver = Driverish()  # type: ignore[attr-defined]
    await server.start()
    try:
        (connection, transport), (other, other_out) = connect(server, 2)
        connection.data_received(encode_command("GET", b"a"))
        other.data_received(encode_command("GET", b"b"))
        await asyncio.sleep(0)  # the burst leaves
        router.answer()  # the driver's batch answers both reads...
        assert transport.out == other_out.out == b""  # ... and writes nothing yet
        for listener in router.driver.applied_listeners:  # type: ignore[attr-defined]
            listener()  # the batch's end: both written at once, no loop pass needed
        assert bytes(transport.out) == b"$1\r\nA\r\n"
        assert bytes(other_out.out) == b"$1\r\nB\r\n"
        await asyncio.sleep(0)  # the pass's own flush finds nothing more to write
        assert bytes(transport.out) == b"$1\r\nA\r\n"
    finally:
        await server.close()
