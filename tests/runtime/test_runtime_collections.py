"""Collections on a real 3-node cluster: redis-py with hashes, lists, sets and sorted sets in
RESP2 and RESP3 through a follower (which forwards writes and linearizable reads to the leader),
and the blocking list commands, served by the node a client waits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from runtime_helpers import port_of, write_cluster

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config
from pypaxos.transport.resp import encode_command

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def apps(tmp_path: Path) -> AsyncIterator[dict[int, NodeApp]]:
    config = load_config(write_cluster(tmp_path))
    running = {m.id: NodeApp(config, m.id, request_timeout_s=3.0) for m in config.members}
    for app in running.values():
        await app.start()
    try:
        async with asyncio.timeout(10):
            while sum(app.is_leader for app in running.values()) != 1:
                await asyncio.sleep(0.02)
        yield running
    finally:
        for app in running.values():
            await app.stop()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_collections_through_redis_py(apps: dict[int, NodeApp], protocol: int) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    port = port_of(follower.member.client)
    r = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=protocol)
    try:
        assert await r.hset("h", mapping={"f": "1", "g": "x"}) == 2
        assert await r.hgetall("h") == {b"f": b"1", b"g": b"x"}
        assert await r.hincrby("h", "f", 4) == 5
        assert await r.hincrbyfloat("h", "f", 0.5) == 5.5
        assert await r.hmget("h", ["f", "nope"]) == [b"5.5", None]
        assert await r.hkeys("h") == [b"f", b"g"]
        assert await r.hexists("h", "g") is True
        assert await r.hdel("h", "g") == 1
        assert await r.rpush("l", "a", "b", "c") == 3
        assert await r.lrange("l", 0, -1) == [b"a", b"b", b"c"]
        assert await r.lpop("l", 2) == [b"a", b"b"]
        assert await r.lmove("l", "l2", "LEFT", "RIGHT") == b"c"
        assert await r.exists("l") == 0
        assert await r.sadd("s", "x", "y", "z") == 3
        assert await r.smembers("s") == {b"x", b"y", b"z"}
        assert await r.sismember("s", "y") in (1, True)
        assert await r.sinterstore("s2", ["s"]) == 3
        assert await r.zadd("z", {"a": 1.5, "b": 0.5}) == 2
        pairs = await r.zrange("z", 0, -1, withscores=True)  # RESP3: lists, as with Redis
        assert [tuple(pair) for pair in pairs] == [(b"b", 0.5), (b"a", 1.5)]
        assert await r.zincrby("z", 2, "b") == 2.5
        assert await r.zscore("z", "b") == 2.5
        assert await r.zrangebyscore("z", "(1.5", "+inf") == [b"b"]
        popped = await r.zpopmin("z")  # RESP3 without a count: flat, as Redis 7.0 sends it
        assert popped == ([b"a", 1.5] if protocol == 3 else [(b"a", 1.5)])
        assert await r.type("z") == b"zset"
        assert sorted([key async for key in r.scan_iter(_type="set")]) == [b"s", b"s2"]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await r.get("h")
        assert await r.execute_command("BLMPOP", "0.1", "1", "nolist", "LEFT") is None
    finally:
        await r.aclose()


async def waiting(app: NodeApp, count: int) -> None:
    """Until ``count`` clients wait on ``app``, none with an attempt in flight."""
    assert app.server is not None
    blocked = app.server.blocked
    async with asyncio.timeout(10):
        while len(blocked.waiters) < count or any(w.in_flight for w in blocked.waiters):
            await asyncio.sleep(0.01)


class Raw:
    """One RESP connection, replies read as exact bytes (RESP2)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, app: NodeApp) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port_of(app.member.client)))

    def send(self, *commands: tuple[str, ...]) -> None:
        self.writer.write(b"".join(encode_command(*command) for command in commands))

    async def reply(self) -> bytes:
        line = await self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$" and rest != b"-1":
            return line + await self.reader.readexactly(int(rest) + 2)
        if kind == b"*" and rest != b"-1":
            return line + b"".join([await self.reply() for _ in range(int(rest))])
        return line

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_blpop_is_served_at_once_or_when_a_push_is_applied(
    apps: dict[int, NodeApp],
) -> None:
    leader = next(app for app in apps.values() if app.is_leader)
    follower = next(app for app in apps.values() if not app.is_leader)
    waiter, other, pusher = (
        await Raw.open(follower),
        await Raw.open(follower),
        await Raw.open(leader),
    )
    try:
        pusher.send(("RPUSH", "q", "ready"))
        assert await pusher.reply() == b":1\r\n"
        waiter.send(("BLPOP", "empty", "q", "5"))
        assert await waiter.reply() == b"*2\r\n$1\r\nq\r\n$5\r\nready\r\n"  # at once
        # Two clients wait; one push serves the first, the second waits on for the next.
        waiter.send(("BRPOP", "q", "0"), ("PING",))  # the PING is held behind it
        await waiting(follower, 1)
        other.send(("BLPOP", "q", "0"))
        await waiting(follower, 2)
        pusher.send(("RPUSH", "q", "one"))
        assert await pusher.reply() == b":1\r\n"
        assert await waiter.reply() == b"*2\r\n$1\r\nq\r\n$3\r\none\r\n"
        assert await waiter.reply() == b"+PONG\r\n"
        pusher.send(("LPUSH", "q", "two"))
        assert await pusher.reply() == b":1\r\n"
        assert await other.reply() == b"*2\r\n$1\r\nq\r\n$3\r\ntwo\r\n"
        pusher.send(("LLEN", "q"))
        assert await pusher.reply() == b":0\r\n"  # each item taken once
        waiter.send(("BZPOPMAX", "scores", "0"))
        await waiting(follower, 1)
        pusher.send(("ZADD", "scores", "1.5", "low", "2", "high"))
        assert await pusher.reply() == b":2\r\n"
        assert await waiter.reply() == b"*3\r\n$6\r\nscores\r\n$4\r\nhigh\r\n$1\r\n2\r\n"
    finally:
        for connection in (waiter, other, pusher):
            await connection.close()


async def test_blocking_timeouts_hold_the_connection_and_report_wrongtype(
    apps: dict[int, NodeApp],
) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    client = await Raw.open(follower)
    try:
        # As in Redis, the RPUSH behind the BLPOP runs only once the BLPOP has timed out.
        client.send(("BLPOP", "late", "0.2"), ("RPUSH", "late", "x"))
        assert await client.reply() == b"*-1\r\n"
        assert await client.reply() == b":1\r\n"
        client.send(("BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.1"))
        assert await client.reply() == b"*-1\r\n"
        client.send(("BLMOVE", "late", "dst", "LEFT", "RIGHT", "1"))
        assert await client.reply() == b"$1\r\nx\r\n"
        client.send(("SET", "str", "v"), ("BLPOP", "str", "1"), ("BLPOP", "k", "-1"))
        assert await client.reply() == b"+OK\r\n"
        assert (await client.reply()).startswith(b"-WRONGTYPE")
        assert await client.reply() == b"-ERR timeout is negative\r\n"
        client.send(("HELLO", "3"))
        await client.reader.readuntil(b"modules\r\n*0\r\n")
        client.send(("BRPOP", "none", "0.1"))
        assert await client.reply() == b"_\r\n"  # RESP3's null
    finally:
        await client.close()


async def test_a_closed_blocked_connection_takes_nothing(apps: dict[int, NodeApp]) -> None:
    leader = next(app for app in apps.values() if app.is_leader)
    gone, pusher = await Raw.open(leader), await Raw.open(leader)
    try:
        gone.send(("BLPOP", "q", "0"))
        await waiting(leader, 1)
        await gone.close()
        assert leader.server is not None
        async with asyncio.timeout(10):
            while leader.server.blocked.waiters:  # forgotten once the close is seen
                await asyncio.sleep(0.01)
        pusher.send(("RPUSH", "q", "kept"), ("LRANGE", "q", "0", "-1"))
        assert await pusher.reply() == b":1\r\n"
        assert await pusher.reply() == b"*1\r\n$4\r\nkept\r\n"
    finally:
        await pusher.close()


async def test_a_repeated_paxos_req_collection_write_applies_once(
    apps: dict[int, NodeApp],
) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    client = await Raw.open(follower)
    try:
        push = ("PAXOS.REQ", "77", "1", "RPUSH", "jobs", "a")
        client.send(push, push, ("PAXOS.REQ", "77", "2", "ZINCRBY", "z", "1.5", "m"), push)
        assert await client.reply() == b":1\r\n"
        assert await client.reply() == b":1\r\n"  # the retry: its first answer, not applied
        assert await client.reply() == b"$3\r\n1.5\r\n"
        assert (await client.reply()).startswith(b"-ERR stale request")
        client.send(("LLEN", "jobs"))
        assert await client.reply() == b":1\r\n"
    finally:
        await client.close()


async def test_a_push_wakes_as_many_waiters_as_it_brings_items(apps: dict[int, NodeApp]) -> None:
    leader = next(app for app in apps.values() if app.is_leader)
    waiters = [await Raw.open(leader) for _ in range(3)]
    pusher = await Raw.open(leader)
    try:
        assert leader.server is not None
        blocked = leader.server.blocked
        for count, waiter in enumerate(waiters, start=1):
            waiter.send(("BLPOP", "jobs", "0"))
            await waiting(leader, count)  # in this order: the oldest is served first
        before = blocked.attempts
        pusher.send(("RPUSH", "jobs", "one", "two"))
        assert await pusher.reply() == b":2\r\n"
        assert await waiters[0].reply() == b"*2\r\n$4\r\njobs\r\n$3\r\none\r\n"
        assert await waiters[1].reply() == b"*2\r\n$4\r\njobs\r\n$3\r\ntwo\r\n"
        assert blocked.attempts - before == 2  # not one per waiter
        pusher.send(("RPUSH", "jobs", "three"))
        assert await pusher.reply() == b":1\r\n"
        assert await waiters[2].reply() == b"*2\r\n$4\r\njobs\r\n$5\r\nthree\r\n"
    finally:
        for connection in (*waiters, pusher):
            await connection.close()
