"""redis-py against a real 3-node cluster: the string, key and server commands applications use.

Through a follower (which forwards writes to the leader) and the leader.  redis-py's ``Lock``
(``SET NX PX``, then Lua scripts) works too.
"""

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


def connect(app: NodeApp, protocol: int = 2) -> aioredis.Redis:
    port = port_of(app.member.client)
    return aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=protocol)


async def test_string_and_key_commands(apps: dict[int, NodeApp]) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    r = connect(follower)
    try:
        assert await r.set("k", "v", nx=True) is True
        assert await r.set("k", "w", nx=True) is None
        assert await r.set("k", "w", xx=True, get=True) == b"v"
        assert await r.get("k") == b"w"
        assert await r.incrby("n", 5) == 5
        assert await r.decr("n") == 4
        assert await r.incrbyfloat("n", 0.5) == 4.5
        assert await r.mset({"a": "1", "b": "2"}) is True
        assert await r.msetnx({"b": "3", "c": "4"}) is False
        assert await r.append("a", "23") == 3
        assert await r.getrange("a", 1, -1) == b"23"
        assert await r.strlen("a") == 3
        assert await r.type("a") == b"string"
        assert await r.rename("a", "z") is True
        with pytest.raises(ResponseError, match="no such key"):
            await r.rename("a", "y")
        assert sorted(await r.keys()) == [b"b", b"k", b"n", b"z"]
        assert sorted(await r.keys("[bk]")) == [b"b", b"k"]
        assert sorted([key async for key in r.scan_iter(count=2)]) == [b"b", b"k", b"n", b"z"]
        assert await r.dbsize() == 4
        assert await r.randomkey() in (b"b", b"k", b"n", b"z")
        assert await r.getdel("b") == b"2"
        assert await r.flushdb() is True
        assert await r.dbsize() == 0
    finally:
        await r.aclose()


async def test_expiry_and_redis_py_lock(apps: dict[int, NodeApp]) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    r = connect(follower)
    try:
        assert await r.set("k", "v", px=1000) is True
        assert 0 < await r.pttl("k") <= 1000
        assert await r.ttl("k") == 1
        assert await r.ttl("missing") == -2
        assert await r.setex("s", 100, "v") is True
        assert await r.persist("s") is True
        assert await r.ttl("s") == -1
        assert await r.set("gone", "v", px=50) is True
        await asyncio.sleep(0.2)
        assert await r.get("gone") is None
        assert await r.exists("gone") == 0
        # redis-py's Lock takes the lock with SET NX PX and releases it with a Lua script
        # (EVALSHA; test_runtime_transactions has the whole recipe).
        lock = r.lock("name", timeout=5)
        assert await lock.acquire(blocking=False) is True
        assert await r.set("name", "other", nx=True) is None  # held
        await lock.release()
        assert await r.set("name", "other", nx=True) is True
    finally:
        await r.aclose()


async def test_server_and_connection_commands(apps: dict[int, NodeApp]) -> None:
    leader = next(app for app in apps.values() if app.is_leader)
    r, other = connect(leader), connect(leader, protocol=3)
    try:
        await r.set("x", "1")
        info = await r.info()
        assert info["redis_version"] == "7.0.15"
        assert "pypaxos_version" in info and info["connected_clients"] >= 1
        assert info["db0"]["keys"] == 1
        assert (await r.info("server"))["redis_mode"] == "standalone"
        assert await r.client_setname("worker-1") is True
        assert await r.client_getname() == "worker-1"
        assert await other.client_getname() is None  # per connection
        assert await r.client_id() != await other.client_id()
        assert await r.config_get("maxclients") == {"maxclients": "10000"}
        assert await other.config_get("append*") == {"appendfsync": "no", "appendonly": "yes"}
        assert await r.config_get("nothing") == {}
        assert await r.echo("hi") == b"hi"
        seconds, micros = await r.time()
        assert seconds > 1_600_000_000 and 0 <= micros < 1_000_000
        assert await r.command_count() > 40
        with pytest.raises(ResponseError, match="cannot contain spaces"):
            await r.client_setname("a b")
    finally:
        await r.aclose()
        await other.aclose()
