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
from redis.asyncio import Redis
from redis.exceptions import ResponseError, TryAgainError
from runtime_helpers import RunningCluster, port_of, retry, write_cluster

from pypaxos.runtime.config import load_config
from pypaxos.transport.resp import encode_command

pytestmark = pytest.mark.asyncio


async def _start(
    tmp_path: Path, reads: str, extra: str = "", metrics: bool = False
) -> RunningCluster:
    config = load_config(
        write_cluster(tmp_path, extra=f'reads = "{reads}"\n{extra}', metrics=metrics)
    )
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


def _read_counts(running: RunningCluster, node_id: int) -> dict[str, int]:
    counts = running.apps[node_id].read_counts()
    return {**counts.by_path, "rounds": counts.rounds}


async def _info_paxos(client: Redis) -> dict[str, str]:
    """``INFO paxos`` as text fields (redis-py parses the reply into typed values)."""
    parsed = await client.info("paxos")
    return {key: str(value) for key, value in parsed.items()}


async def test_paxos_req_reads_take_the_read_path_and_writes_stay_exactly_once(
    read_index: RunningCluster,
) -> None:
    leader = await read_index.wait_leader()
    client = read_index.client(leader)
    cid = 4_242_424_242

    async def req(seq: int, *args: str) -> object:
        return await client.execute_command("PAXOS.REQ", cid, seq, *args)

    assert await retry(lambda: req(1, "SET", "s", "v1")) == b"OK"  # opens the session
    applied = read_index.applied(leader)
    before = _read_counts(read_index, leader)
    assert await req(2, "GET", "s") == b"v1"
    assert await req(3, "EXISTS", "s") == 1
    assert read_index.applied(leader) == applied  # two session reads, no slot
    after = _read_counts(read_index, leader)
    assert after["read-index"] == before["read-index"] + 2
    assert after["log"] == before["log"]
    # The session is as it was: a later seq writes, its retry is answered and not applied again.
    assert await req(4, "INCR", "n") == 1
    assert await req(4, "INCR", "n") == 1
    assert await req(5, "GET", "n") == b"1"
    assert _read_counts(read_index, leader)["log"] == before["log"]
    # A stale seq goes to the log, which refuses it as it always did; so does a lost session.
    with pytest.raises(ResponseError, match="stale"):
        await req(3, "GET", "n")
    with pytest.raises(ResponseError, match="session expired"):
        await client.execute_command("PAXOS.REQ", cid + 1, 5, "GET", "n")
    assert _read_counts(read_index, leader)["log"] == before["log"] + 2


async def test_a_session_that_starts_with_a_read_opens_through_the_log(
    read_index: RunningCluster,
) -> None:
    leader = await read_index.wait_leader()
    client = read_index.client(leader)
    cid = 5_151_515_151
    await retry(lambda: client.set("warm", "up"))
    applied = read_index.applied(leader)
    before = _read_counts(read_index, leader)
    assert await client.execute_command("PAXOS.REQ", cid, 1, "GET", "warm") == b"up"
    assert read_index.applied(leader) > applied  # the first request opened the session
    assert _read_counts(read_index, leader)["log"] == before["log"] + 1
    assert await client.execute_command("PAXOS.REQ", cid, 2, "SET", "warm", "x") == b"OK"


async def test_pipelined_session_requests_keep_the_connections_order(
    read_index: RunningCluster,
) -> None:
    leader = await read_index.wait_leader()
    follower = next(i for i in read_index.apps if i != leader)
    await retry(lambda: read_index.client(leader).set("q", "0"))
    for node_id, cid in ((leader, 7_000_001), (follower, 7_000_002)):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port_of(read_index.apps[node_id].member.client)
        )
        expected = b""
        seq = 0
        for i in range(1, 21):  # a read before and after each write, all sent at once
            for args in (("GET", "q"), ("SET", "q", str(i)), ("GET", "q")):
                seq += 1
                writer.write(encode_command("PAXOS.REQ", str(cid), str(seq), *args))
            old, new = str(i - 1).encode(), str(i).encode()
            expected += b"$%d\r\n%s\r\n+OK\r\n$%d\r\n%s\r\n" % (len(old), old, len(new), new)
        await writer.drain()
        got = b""
        async with asyncio.timeout(10):
            while len(got) < len(expected):
                chunk = await reader.read(65536)
                assert chunk
                got += chunk
        writer.close()
        assert got == expected
        await retry(lambda: read_index.client(leader).set("q", "0"))


async def test_info_and_metrics_count_reads_by_path(tmp_path: Path) -> None:
    running = await _start(tmp_path, "read-index", "follower_reads = true", metrics=True)
    try:
        leader = await running.wait_leader()
        follower = next(i for i in running.apps if i != leader)
        assert await retry(lambda: running.client(leader).set("k", "v1")) is True
        on_leader, on_follower = running.client(leader), running.client(follower)
        assert await on_leader.get("k") == b"v1"
        assert await on_follower.mget("k", "absent") == [b"v1", None]
        assert await on_follower.execute_command("READONLY") is True
        assert await on_follower.get("k") == b"v1"
        assert await on_follower.execute_command("READWRITE") is True
        assert await on_leader.execute_command("GET", "k") == b"v1"
        pipe = on_leader.pipeline(transaction=False)
        pipe.set("k", "v2").get("k")
        assert await pipe.execute() == [True, b"v2"]  # a mixed group: its read is a log read
        leader_info = await _info_paxos(on_leader)
        follower_info = await _info_paxos(on_follower)
        assert leader_info["read_path"] == "read-index"
        assert leader_info["follower_reads"] == "1"
        assert int(leader_info["reads_read_index"]) == 2
        assert int(leader_info["reads_log"]) == 1
        assert int(leader_info["read_rounds"]) >= 1
        assert int(follower_info["reads_follower"]) == 2
        assert int(follower_info["reads_stale"]) == 1
        assert int(follower_info["reads_lease"]) == int(follower_info["reads_forwarded"]) == 0
        assert int(follower_info["reads_read_index"]) == 0
        metrics = running.apps[follower].metrics
        assert metrics is not None
        exposition = metrics.exposition().decode()
        assert 'pypaxos_reads_total{path="follower"} 2.0' in exposition
        assert 'pypaxos_reads_total{path="stale"} 1.0' in exposition
        assert "pypaxos_read_rounds_total" in exposition
    finally:
        await running.close()


async def test_lease_reads_are_counted_apart_from_read_index_reads(tmp_path: Path) -> None:
    running = await _start(tmp_path, "lease")
    try:
        leader = await running.wait_leader()
        client = running.client(leader)
        assert await retry(lambda: client.set("k", "v1")) is True
        node = running.apps[leader].driver.node
        async with asyncio.timeout(10):
            while not node._lease_holds():
                await asyncio.sleep(0.01)
        before = _read_counts(running, leader)
        assert await client.get("k") == b"v1"
        assert await client.mget("k", "absent") == [b"v1", None]
        after = _read_counts(running, leader)
        answered = after["lease"] + after["read-index"] - before["lease"] - before["read-index"]
        assert answered == 3  # the GET and MGET's two keys, each once
        assert after["lease"] > before["lease"]  # the lease answered (unless it lapsed since)
        info = await _info_paxos(client)
        assert info["read_path"] == "lease"
        assert int(info["reads_lease"]) == after["lease"]
        follower = next(i for i in running.apps if i != leader)
        assert await running.client(follower).get("k") == b"v1"
        assert _read_counts(running, follower)["forwarded"] == 1  # served by the leader
        assert running.apps[leader].driver.lease_answered == set()  # nothing left behind
    finally:
        await running.close()
