"""redis-py against a real 3-node cluster: hashes, lists, sets and sorted sets, in RESP2 and
RESP3, through a follower (which forwards writes and linearizable reads to the leader)."""

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
        with pytest.raises(ResponseError, match="not supported"):
            await r.blpop(["l"], timeout=1)
    finally:
        await r.aclose()
