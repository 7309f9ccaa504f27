"""redis-py's commands for hashes, lists, sets and sorted sets, each called the same way on
a real redis-server and on a 3-node cluster (through a follower), in RESP2 and RESP3: the
Python values redis-py makes of the replies must be equal.  Where Redis's choice is random
(``SPOP``, ``SRANDMEMBER``, ``HRANDFIELD``, ``ZRANDMEMBER``) only the number of members is
compared; sets and scans are compared sorted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from runtime_helpers import port_of, write_cluster
from test_runtime_redis_diff import REDIS_SERVER, redis_port  # noqa: F401  (the fixture)

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]


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


async def _sorted(items: AsyncIterator[object]) -> list[object]:
    return sorted([item async for item in items], key=repr)


async def _len(call: Awaitable[object]) -> int:
    value = await call
    assert isinstance(value, list | set | tuple)
    return len(value)


async def _both(*calls: Awaitable[object]) -> tuple[object, ...]:
    return tuple([await call for call in calls])


async def exercise(r: aioredis.Redis) -> list[tuple[str, object]]:
    """Every call's result (or its error), in order."""
    out: list[tuple[str, object]] = []
    await r.flushall()

    async def rec(name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            value = await call()
        except aioredis.ResponseError as error:
            value = f"error: {error}"
        out.append((name, sorted(value, key=repr) if isinstance(value, set) else value))

    await rec("hset", lambda: r.hset("h", mapping={"a": 1, "b": 2}, items=["c", 3]))
    await rec("hgetall", lambda: r.hgetall("h"))
    await rec("hincrbyfloat", lambda: r.hincrbyfloat("h", "a", 1.25))
    await rec("hstrlen", lambda: r.hstrlen("h", "a"))
    await rec("hscan_iter", lambda: _sorted(r.hscan_iter("h", match="*")))
    await rec("hrandfield", lambda: _len(r.hrandfield("h", 2, withvalues=True)))
    await rec("lpush", lambda: r.lpush("l", 1, 2, 3, 2))
    await rec("lpos", lambda: r.lpos("l", 2, rank=-1, count=2, maxlen=10))
    await rec("linsert", lambda: r.linsert("l", "BEFORE", 3, "x"))
    await rec("lrange", lambda: r.lrange("l", 0, -1))
    await rec("lmove", lambda: r.lmove("l", "l2", "LEFT", "RIGHT"))
    await rec("blmove", lambda: r.blmove("l", "l2", 1, "RIGHT", "LEFT"))
    await rec("rpoplpush", lambda: r.rpoplpush("l", "l2"))
    await rec("brpoplpush", lambda: r.brpoplpush("nol", "l2", 1))
    await rec("lmpop", lambda: r.lmpop(2, "nol", "l2", direction="RIGHT", count=2))
    await rec("blpop", lambda: r.blpop(["nol", "l2"], timeout=1))
    await rec("ltrim", lambda: r.ltrim("l", 0, 0))
    await rec("lset", lambda: r.lset("l", 0, "z"))
    await rec("lrem", lambda: r.lrem("l", 0, "z"))
    await rec("sadd", lambda: r.sadd("s", *range(10)))
    await rec("smismember", lambda: r.smismember("s", [1, 11]))
    await rec("sintercard", lambda: r.sintercard(2, ["s", "s"], limit=3))
    await rec("sdiffstore", lambda: r.sdiffstore("s2", ["s", "nos"]))
    await rec("smove", lambda: r.smove("s", "s3", 5))
    await rec("sscan", lambda: _sorted(r.sscan_iter("s", count=100)))
    await rec("spop", lambda: _len(r.spop("s", 3)))
    await rec("srandmember", lambda: _len(r.srandmember("s", -20)))
    await rec("zadd", lambda: r.zadd("z", {"a": 1, "b": 2.5, "c": -1}))
    await rec("zadd_gt_ch", lambda: r.zadd("z", {"a": 5, "b": 1}, gt=True, ch=True))
    await rec("zadd_incr", lambda: r.zadd("z", {"c": 2}, incr=True))
    await rec(
        "zrange_byscore",
        lambda: r.zrange("z", "(1", "+inf", byscore=True, offset=0, num=5, withscores=True),
    )
    await rec("zrange_desc", lambda: r.zrange("z", 0, -1, desc=True, withscores=True))
    await rec("zrangebylex", lambda: r.zrangebylex("z", "-", "+"))
    await rec(
        "zrevrangebyscore",
        lambda: r.zrevrangebyscore("z", "+inf", "-inf", withscores=True, start=1, num=1),
    )
    await rec("zmscore", lambda: r.zmscore("z", ["a", "x"]))
    await rec("zrank", lambda: _both(r.zrank("z", "a"), r.zrevrank("z", "a")))
    await rec("zcount", lambda: r.zcount("z", 0, 10))
    await rec("zunionstore", lambda: r.zunionstore("zu", {"z": 2, "s2": 0.5}, aggregate="MAX"))
    await rec("zinter", lambda: r.zinter(["z", "zu"], withscores=True))
    await rec("zdiff", lambda: r.zdiff(["zu", "z"], withscores=True))
    await rec("zrangestore", lambda: r.zrangestore("zs", "z", 0, 1))
    await rec("zpopmax", lambda: r.zpopmax("zu", 2))
    await rec("bzpopmin", lambda: r.bzpopmin(["nz", "zu"], timeout=1))
    await rec("zmpop", lambda: r.zmpop(1, ["zu"], min=True, count=2))
    await rec("zscan", lambda: _sorted(r.zscan_iter("z")))
    await rec("zrandmember", lambda: _len(r.zrandmember("z", 2, withscores=True)))
    await rec("zremrangebyscore", lambda: r.zremrangebyscore("z", "-inf", 0))
    await rec("zincrby", lambda: r.zincrby("z", 0.1, "a"))
    await rec("zscore", lambda: r.zscore("z", "a"))
    await rec("type", lambda: _both(*(r.type(k) for k in ("h", "l", "s", "z", "nokey"))))
    await rec("copy", lambda: r.copy("z", "zc", replace=True))
    await rec("scan_type", lambda: _sorted(r.scan_iter(_type="zset", count=1000)))
    await rec("wrongtype", lambda: r.lpush("h", 1))
    await rec("get_on_hash", lambda: r.get("h"))
    await rec("mget", lambda: r.mget("h", "nokey"))
    return out


@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_py_gets_the_same_values_from_both(
    apps: dict[int, NodeApp],
    redis_port: int,  # noqa: F811
    protocol: int,
) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    ours = aioredis.Redis(port=port_of(follower.member.client), protocol=protocol)
    theirs = aioredis.Redis(port=redis_port, protocol=protocol)
    try:
        expected, got = await exercise(theirs), await exercise(ours)
    finally:
        await ours.aclose()
        await theirs.aclose()
    assert len(got) == len(expected) > 50
    for (name, value), (_, wanted) in zip(got, expected, strict=True):
        assert value == wanted, name
