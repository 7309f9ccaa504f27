"""Reads on a real 3-node cluster: read-index through leader and followers, READONLY stale mode.

With ``reads = "read-index"`` a ``GET`` takes no slot: the leader's applied index stays where it
was however many reads it answers (with ``reads = "log"`` each read is a slot).  ``READONLY``
answers from the node's own state even with no leader at all, which no linearizable read can.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.exceptions import TryAgainError
from runtime_helpers import RunningCluster, port_of, retry, write_cluster

from pypaxos.runtime.config import load_config
from pypaxos.transport.resp import encode_command

pytestmark = pytest.mark.asyncio


async def _start(tmp_path: Path, reads: str, extra: str = "") -> RunningCluster:
    config = load_config(write_cluster(tmp_path, extra=f'reads = "{reads}"\n{extra}'))
    assert config.reads == reads
    return await RunningCluster.start(config, request_timeout_s=1.0)


@pytest_asyncio.fixture
async def read_index(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await _start(tmp_path, "read-index")
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


async def test_gets_through_leader_and_followers_take_no_slot(read_index: RunningCluster) -> None:
    leader = await read_index.wait_leader()
    follower = next(i for i in read_index.apps if i != leader)
    writer = read_index.client(follower)
    assert await retry(lambda: writer.set("k", "v1")) is True
    applied = read_index.applied(leader)
    for node_id in read_index.apps:
        client = read_index.client(node_id)
        assert await client.get("k") == b"v1"
        assert await client.mget("k", "absent") == [b"v1", None]
        assert await client.exists("k", "absent") == 1
    assert read_index.applied(leader) == applied  # nine reads, no slot


async def test_a_connection_reads_its_own_pipelined_writes_in_order(
    read_index: RunningCluster,
) -> None:
    leader = await read_index.wait_leader()
    follower = next(i for i in read_index.apps if i != leader)
    assert await retry(lambda: read_index.client(leader).set("warm", "up")) is True
    for node_id in (leader, follower):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port_of(read_index.apps[node_id].member.client)
        )
        expected = b""
        for i in range(30):  # separate writes: reads and writes in separate groups, mostly
            writer.write(encode_command("GET", "p"))
            writer.write(encode_command("SET", "p", str(i)))
            await writer.drain()
            await asyncio.sleep(0)
            before = b"$-1\r\n" if i == 0 else b"$%d\r\n%d\r\n" % (len(str(i - 1)), i - 1)
            expected += before + b"+OK\r\n"
        got = b""
        async with asyncio.timeout(10):
            while len(got) < len(expected):
                chunk = await reader.read(65536)
                assert chunk
                got += chunk
        writer.close()
        assert got == expected
        reset = read_index.client(leader)
        assert await reset.delete("p") == 1


async def test_readonly_answers_from_the_local_state_even_without_a_leader(
    read_index: RunningCluster,
) -> None:
    leader = await read_index.wait_leader()
    follower = next(i for i in read_index.apps if i != leader)
    assert await retry(lambda: read_index.client(leader).set("k", "v1")) is True
    stale = read_index.client(follower)
    assert await stale.execute_command("READONLY") is True
    async with asyncio.timeout(10):
        while await stale.get("k") != b"v1":  # the follower applies it a moment later
            await asyncio.sleep(0.02)
    for node_id in [i for i in read_index.apps if i != follower]:
        await read_index.apps[node_id].stop()
    assert await stale.get("k") == b"v1"  # no quorum, no leader: the local state, at once
    assert await stale.mget("k", "absent") == [b"v1", None]
    assert await stale.execute_command("READWRITE") is True
    with pytest.raises(TryAgainError):
        await stale.get("k")  # linearizable again: nobody can confirm it


async def test_log_reads_take_a_slot_each(tmp_path: Path) -> None:
    running = await _start(tmp_path, "log")
    try:
        leader = await running.wait_leader()
        client = running.client(leader)
        assert await retry(lambda: client.set("k", "v1")) is True
        applied = running.applied(leader)
        assert await client.get("k") == b"v1"
        assert running.applied(leader) > applied
    finally:
        await running.close()


async def test_with_follower_reads_a_follower_answers_without_forwarding(tmp_path: Path) -> None:
    running = await _start(tmp_path, "read-index", "follower_reads = true")
    try:
        leader = await running.wait_leader()
        follower = next(i for i in running.apps if i != leader)
        assert await retry(lambda: running.client(leader).set("k", "v1")) is True
        router = running.apps[follower].router
        assert router is not None
        forwarded = router.stats.forwarded
        client = running.client(follower)
        assert await client.get("k") == b"v1"  # the leader's write, read at once
        assert await client.mget("k", "absent") == [b"v1", None]
        assert router.stats.forwarded == forwarded  # answered here, from its own state
        assert await client.set("k", "v2") is True  # writes still go to the leader
        assert await client.get("k") == b"v2"
    finally:
        await running.close()


async def test_lease_reads_take_no_slot_and_are_answered_under_the_lease(tmp_path: Path) -> None:
    running = await _start(tmp_path, "lease")
    try:
        leader = await running.wait_leader()
        client = running.client(leader)
        assert await retry(lambda: client.set("k", "v1")) is True
        node = running.apps[leader].driver.node
        applied = running.applied(leader)
        async with asyncio.timeout(10):  # the lease comes with the next acknowledged round
            while not node._lease_holds():
                await asyncio.sleep(0.01)
        before = node.lease_reads
        assert await client.get("k") == b"v1"
        assert running.applied(leader) == applied  # no slot
        assert node.lease_reads > before  # answered under the lease, not after a round
    finally:
        await running.close()
