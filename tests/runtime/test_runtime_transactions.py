"""redis-py's transactions, optimistic locking and ``Lock`` against a real 3-node cluster.

``pipeline()`` (``MULTI``/``EXEC``), ``WATCH`` with a conflicting writer on another node (the
``transaction()`` helper retries), Lua scripts through every node (the script cache is
replicated), and redis-py's ``Lock`` (``SET NX PX`` to take it, scripts to release and extend)
keeping a second client out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.client import Pipeline
from redis.exceptions import ExecAbortError, LockError, NoScriptError, ResponseError, WatchError
from runtime_helpers import RunningCluster, port_of, write_cluster

from pypaxos.runtime.config import load_config
from pypaxos.transport.resp import encode_command

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await RunningCluster.start(load_config(write_cluster(tmp_path)))
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


def follower_and_leader(cluster: RunningCluster) -> tuple[int, int]:
    leader = cluster.leader()
    assert leader is not None
    return next(i for i in cluster.apps if i != leader), leader


async def test_pipeline_transaction_is_atomic_and_reports_each_error(
    cluster: RunningCluster,
) -> None:
    follower, leader = follower_and_leader(cluster)
    r = cluster.client(follower)
    async with r.pipeline() as pipe:  # transaction=True: MULTI ... EXEC
        pipe.set("a", "1").incr("a").get("a").delete("b")
        assert await pipe.execute() == [True, 2, b"2", 0]
    async with r.pipeline() as pipe:
        pipe.set("s", "text").incr("s").incr("a")
        replies = await pipe.execute(raise_on_error=False)
    assert replies[0] is True and isinstance(replies[1], ResponseError) and replies[2] == 3
    async with r.pipeline() as pipe:  # an unknown command: nothing runs
        pipe.incr("a")
        pipe.execute_command("NOSUCHCOMMAND")
        with pytest.raises((ExecAbortError, ResponseError)):
            await pipe.execute()
    assert await cluster.client(leader).get("a") == b"3"


async def test_watch_aborts_on_a_conflicting_write_and_the_helper_retries(
    cluster: RunningCluster,
) -> None:
    follower, leader = follower_and_leader(cluster)
    r, other = cluster.client(follower), cluster.client(leader)
    await r.set("counter", "0")
    async with r.pipeline() as pipe:
        await pipe.watch("counter")
        await other.set("counter", "0")  # the same value: still a modification (no ABA)
        pipe.multi()
        pipe.incr("counter")
        with pytest.raises(WatchError):
            await pipe.execute()
    assert await r.get("counter") == b"0"

    attempts = 0

    async def increment(pipe: Pipeline) -> None:
        nonlocal attempts
        attempts += 1
        current = int(await pipe.get("counter") or 0)
        if attempts == 1:
            await other.incr("counter")  # a conflicting writer, through another node
        pipe.multi()
        pipe.set("counter", current + 1)

    await r.transaction(increment, "counter")
    assert attempts == 2
    assert await other.get("counter") == b"2"


async def test_scripts_run_on_every_node_from_the_replicated_cache(cluster: RunningCluster) -> None:
    follower, leader = follower_and_leader(cluster)
    r, other = cluster.client(follower), cluster.client(leader)
    body = "redis.call('set', KEYS[1], ARGV[1]) return {redis.call('get', KEYS[1]), #KEYS}"
    assert await r.eval(body, 1, "k", "v") == [b"v", 1]
    sha = await other.script_load("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert await r.script_exists(sha) == [True]
    assert await r.evalsha(sha, 1, "n", 5) == 5
    await other.script_flush()
    with pytest.raises(NoScriptError):
        await r.evalsha(sha, 1, "n", 5)
    script = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert await script(keys=["n"], args=[2]) == 7  # NOSCRIPT, then SCRIPT LOAD, then EVALSHA
    with pytest.raises(ResponseError):
        await r.eval("local i = 0 while true do i = i + 1 end", 0)
    assert await r.get("n") == b"7"  # the node still serves after a script was stopped


async def test_redis_py_lock_keeps_a_second_client_out(cluster: RunningCluster) -> None:
    follower, leader = follower_and_leader(cluster)
    first, second = cluster.client(follower), cluster.client(leader)
    held = first.lock("resource", timeout=10)
    assert await held.acquire(blocking=False)
    rival = second.lock("resource", timeout=10, blocking_timeout=0.2)
    assert not await rival.acquire()
    assert await held.extend(5)
    assert 10_000 < await second.pttl("resource") <= 15_000
    with pytest.raises(LockError):
        await rival.release()  # not its token: the release script refuses
    await held.release()
    assert await rival.acquire()
    with pytest.raises(LockError):
        await held.release()
    await rival.release()


async def test_a_pipelined_transaction_through_the_server_and_resp3(
    cluster: RunningCluster,
) -> None:
    """One write carrying plain fast-path commands, MULTI's errors and two EXECs, then RESP3."""
    follower, _ = follower_and_leader(cluster)
    port = port_of(cluster.apps[follower].member.client)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands = [
        ["SET", "x", "0"], ["MULTI"], ["SET", "x", "1"], ["INCR", "x"], ["MULTI"],
        ["WATCH", "x"], ["PING"], ["EXEC"], ["MULTI"], ["GET"], ["SET", "x", "9"], ["EXEC"],
        ["EXEC"], ["DISCARD"], ["GET", "x"],
    ]  # fmt: skip
    writer.write(b"".join(encode_command(*c) for c in commands))
    expected = (
        b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n"
        b"-ERR WATCH inside MULTI is not allowed\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n+PONG\r\n"
        b"+OK\r\n-ERR wrong number of arguments for 'get' command\r\n+QUEUED\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n$1\r\n2\r\n"
    )
    async with asyncio.timeout(10):
        got = await reader.readexactly(len(expected))
    assert got == expected
    writer.close()
    await writer.wait_closed()

    r3 = cluster.client(follower, protocol=3)
    async with r3.pipeline() as pipe:
        await pipe.watch("x")
        await cluster.client(follower).incr("x")
        pipe.multi()
        pipe.get("x")
        with pytest.raises(WatchError):  # the null array, spelled for RESP3
            await pipe.execute()
    assert await r3.eval("return {1, {'a', false}, redis.status_reply('S')}", 0) == [
        1,
        [b"a", None],
        b"S",
    ]
