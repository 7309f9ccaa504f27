"""A real 3-node cluster in one event loop: TCP between nodes, redis-py as the client.

Every node answers every command (followers forward to the leader), reads see writes made on
other nodes, ``PAXOS.REQ`` retries are answered without applying twice, the server's errors
leave the connection (or, for bad bytes, only that connection) as the contract says, and the
metrics endpoint serves its series.  Nodes run with ``fsync = "never"`` for speed; the process
tests use ``always``.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ResponseError, TryAgainError
from runtime_helpers import RunningCluster, port_of, retry, write_cluster

from pypaxos.kv import VALUE_BYTES_MAX
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await RunningCluster.start(load_config(write_cluster(tmp_path, metrics=True)))
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


async def test_commands_through_every_node(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    followers = [i for i in cluster.apps if i != leader]
    writer, reader, at_leader = (
        cluster.client(followers[0]),
        cluster.client(followers[1]),
        cluster.client(leader),
    )
    assert await writer.ping()
    assert await retry(lambda: writer.set("a", "1")) is True
    assert await reader.get("a") == b"1"  # written on one follower, read on the other
    assert await at_leader.get("a") == b"1"
    assert await reader.incr("n") == 1
    assert await writer.incr("n") == 2
    assert await writer.execute_command("CAS", "a", "1", "2") == 1
    assert await reader.execute_command("CAS", "a", "1", "3") == 0
    assert await at_leader.get("a") == b"2"
    assert await reader.mget("a", "n", "missing") == [b"2", b"2", None]
    assert await writer.exists("a", "n", "missing") == 2
    assert await reader.delete("a", "missing") == 1
    assert await writer.get("a") is None
    info = await reader.info()
    for _ in range(100):  # a thrifty leader's left-out follower learns at heartbeats (50 ms)
        if info["applied_index"] >= 1:
            break
        await asyncio.sleep(0.01)
        info = await reader.info()
    assert info["paxos_role"] == "follower" and info["leader_id"] == leader
    assert info["leader_client"] == cluster.apps[leader].member.client
    assert info["applied_index"] >= 1 and "ballot" in info and "pid" in info
    # what its disk alone brings back (its learned runs are synced before it applies them)
    assert info["durable_index"] >= 1, info


async def test_resp3_after_hello_3(cluster: RunningCluster) -> None:
    client = cluster.client(1, protocol=3)  # redis-py's default: HELLO 3 at connect
    assert await retry(lambda: client.set("r3", "v")) is True
    assert await client.get("missing") is None  # RESP3 null
    assert await client.mget("r3", "missing") == [b"v", None]
    hello = await client.execute_command("HELLO", "3")
    assert hello[b"proto"] == 3 and hello[b"server"] == b"pypaxos"
    with pytest.raises(ResponseError, match="unsupported protocol version"):
        await client.execute_command("HELLO", "4")


async def test_paxos_req_is_exactly_once(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    follower = cluster.client(next(i for i in cluster.apps if i != leader))
    other = cluster.client(leader)
    first = await retry(lambda: follower.execute_command("PAXOS.REQ", 42, 1, "INCR", "x"))
    assert first == 1
    # The same (client_id, seq) again, through another node: the original answer, no new apply.
    assert await other.execute_command("PAXOS.REQ", 42, 1, "INCR", "x") == 1
    assert await other.execute_command("PAXOS.REQ", 42, 2, "INCR", "x") == 2
    assert await follower.get("x") == b"2"
    with pytest.raises(ResponseError, match="stale"):
        await other.execute_command("PAXOS.REQ", 42, 1, "INCR", "x")
    with pytest.raises(ResponseError, match="session expired"):
        await other.execute_command("PAXOS.REQ", 77, 5, "GET", "x")


async def test_pipelines_from_many_connections_keep_their_order(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()

    async def pipeline(node_id: int, name: str) -> list[object]:
        client = cluster.client(node_id)
        pipe = client.pipeline(transaction=False)
        for i in range(50):
            pipe.set(f"{name}:{i}", i)
            pipe.incr(f"{name}:count")
        return await retry(pipe.execute)

    results = await asyncio.gather(*(pipeline(1 + n % 3, f"p{n}") for n in range(6)))
    for result in results:
        assert result[0::2] == [True] * 50
        assert result[1::2] == list(range(1, 51))
    assert await cluster.client(leader).get("p5:49") == b"49"


async def test_errors_leave_the_connection_usable(cluster: RunningCluster) -> None:
    client = cluster.client(1)
    await retry(lambda: client.set("k", "not a number"))
    cases = [
        (("FOO", "x"), "unknown command 'FOO'"),
        (("GET",), "wrong number of arguments for 'get' command"),
        (("SET", "k"), "wrong number of arguments for 'set' command"),
        (("INCR", "k"), "value is not an integer or out of range"),
        (("SET", "big", "x" * (VALUE_BYTES_MAX + 1)), "value too large"),
        (("PAXOS.REQ", "0", "1", "GET", "k"), "client_id and seq"),
        (("PAXOS.REQ", "1", "1", "MGET", "a", "b"), "one key per request"),
        (("PAXOS.REQ", "1", "1", "PING"), "cannot run 'PING'"),
    ]
    for command, message in cases:
        with pytest.raises(ResponseError, match=message):
            await client.execute_command(*command)
    assert await client.get("k") == b"not a number"  # still the same connection, still served


async def test_garbage_bytes_close_only_that_connection(cluster: RunningCluster) -> None:
    port = port_of(cluster.apps[2].member.client)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"*1\r\n$4\r\nPING\r\n*x\r\n")
    reply = await asyncio.wait_for(reader.read(), timeout=5)  # read() returns at EOF
    assert reply.startswith(b"+PONG\r\n-ERR Protocol error:")
    writer.close()
    client = cluster.client(2)
    assert await retry(lambda: client.set("after", "yes")) is True
    assert await client.get("after") == b"yes"


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not our protocol at all
        b"\xff\xff\xff\xff\x01",  # a length header far above the frame limit
        b"\x00\x00\x00\x03\x63\x81\xa0",  # an unsupported version byte
    ],
    ids=["http", "oversized", "bad-version"],
)
async def test_garbage_on_the_peer_port_closes_that_connection_only(
    cluster: RunningCluster, garbage: bytes
) -> None:
    port = port_of(cluster.apps[2].member.peer)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(garbage)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed by the node
    writer.close()
    client = cluster.client(2)
    assert await retry(lambda: client.set("after-peer-garbage", "yes")) is True
    assert await cluster.client(3).get("after-peer-garbage") == b"yes"


async def test_metrics_endpoint(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    await retry(lambda: cluster.client(leader).set("m", "1"))
    address = cluster.apps[leader].member.metrics
    assert address is not None

    def scrape() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    text = await asyncio.to_thread(scrape)
    for series in (
        "pypaxos_commands_committed_total",
        "pypaxos_commit_latency_seconds_bucket",
        "pypaxos_fsync_seconds_count",
        "pypaxos_leader_changes_total",
        "pypaxos_log_records",
        'pypaxos_role{role="leader"} 1.0',
    ):
        assert series in text, series


async def test_writes_continue_after_the_leader_stops(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    survivor = next(i for i in cluster.apps if i != leader)
    client = cluster.client(survivor)
    assert await retry(lambda: client.set("before", "1")) is True
    await cluster.apps[leader].stop()
    del cluster.apps[leader]
    assert await retry(lambda: client.set("after", "2"), timeout_s=15) is True
    assert await client.mget("before", "after") == [b"1", b"2"]


async def test_no_quorum_answers_tryagain(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path))
    app = NodeApp(config, 1, request_timeout_s=0.3)
    await app.start()
    client = aioredis.Redis(host="127.0.0.1", port=port_of(app.member.client))
    try:
        with pytest.raises(TryAgainError, match="no leader"):
            await client.set("k", "v")
        assert await client.ping()
    finally:
        await client.aclose()
        await app.stop()


async def test_one_pipelined_buffer_of_mixed_commands_is_answered_in_order(
    cluster: RunningCluster,
) -> None:
    """Plain commands that arrive together run as one batched log entry (requests.Group);
    PAXOS.REQ, PING and errors in between keep their place, and so does the execution order."""
    leader = await cluster.wait_leader()
    assert await retry(lambda: cluster.client(leader).set("warm", "up")) is True
    from pypaxos.transport.resp import encode_command

    commands = [
        ("SET", "m", "1"),
        ("PING",),
        ("INCR", "m"),
        ("PAXOS.REQ", "991", "1", "INCR", "m"),  # runs after the plain ones before it
        ("GET", "m"),
        ("set", "v", "text"),
        ("INCR", "v"),  # an error for this command only
        ("DEL", "m", "nothing"),
        ("MGET", "m", "v"),
        ("NOPE",),
        ("EXISTS", "v"),
    ]
    expected = (
        b"+OK\r\n+PONG\r\n:2\r\n:3\r\n$1\r\n3\r\n+OK\r\n"
        b"-ERR value is not an integer or out of range\r\n:1\r\n*2\r\n$-1\r\n$4\r\ntext\r\n"
        b"-ERR unknown command 'NOPE'\r\n:1\r\n"
    )
    for node_id in cluster.apps:  # through the leader and through followers
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port_of(cluster.apps[node_id].member.client)
        )
        session = [
            ("PAXOS.REQ", str(991 + node_id * 10), *c[2:]) if c[0] == "PAXOS.REQ" else c
            for c in commands
        ]
        writer.write(b"".join(encode_command(*c) for c in session))
        got = b""
        async with asyncio.timeout(10):
            while len(got) < len(expected):
                chunk = await reader.read(65536)
                assert chunk
                got += chunk
        writer.close()
        assert got == expected, (node_id, got)


async def test_a_pipeline_beyond_one_group_keeps_its_order(cluster: RunningCluster) -> None:
    """More commands (and bytes) in one buffer than one group takes: several log entries, in
    order (server.GROUP_OPS_MAX, GROUP_BYTES_MAX)."""
    leader = await cluster.wait_leader()
    assert await retry(lambda: cluster.client(leader).set("warm", "up")) is True
    from pypaxos.transport.resp import encode_command

    big = b"v" * 100_000
    commands = [encode_command("INCR", "order") for _ in range(2500)]
    commands += [encode_command(b"SET", b"big%d" % i, big) for i in range(6)]
    commands += [encode_command("INCR", "order")]
    expected = b"".join(b":%d\r\n" % i for i in range(1, 2501)) + b"+OK\r\n" * 6 + b":2501\r\n"
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port_of(cluster.apps[leader].member.client)
    )
    writer.write(b"".join(commands))
    got = b""
    async with asyncio.timeout(20):
        while len(got) < len(expected):
            chunk = await reader.read(65536)
            assert chunk
            got += chunk
    writer.close()
    assert got == expected
