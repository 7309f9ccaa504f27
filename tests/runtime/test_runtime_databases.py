"""Databases on a real 3-node cluster: redis-py's ``db=`` option, ``SELECT`` per connection
through a follower (which forwards the command with its database), pipelines that switch
database, ``MOVE``/``SWAPDB``/``FLUSHDB``, ``INFO keyspace`` per database, ``CLIENT LIST``'s
``db=``, ``RESET``, blocking pops and keyspace notifications per database, ``PAXOS.REQ`` in a
database, and every node's state machine agreeing on each database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from runtime_helpers import port_of, write_cluster

from pypaxos.client import AsyncClient, CommandError
from pypaxos.client.replies import Reply, ReplyParser
from pypaxos.kv import KVStateMachine
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


def connect(app: NodeApp, db: int = 0, protocol: int = 2) -> aioredis.Redis:
    port = port_of(app.member.client)
    return aioredis.Redis(host="127.0.0.1", port=port, db=db, socket_timeout=10, protocol=protocol)


def machine(app: NodeApp) -> KVStateMachine:
    assert app.driver is not None
    found = app.driver.node.replica.machine
    assert isinstance(found, KVStateMachine)
    return found


async def test_databases_through_a_follower(apps: dict[int, NodeApp]) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    zero, three = connect(follower), connect(follower, db=3, protocol=3)
    try:
        assert await zero.set("k", "zero") is True
        assert await three.set("k", "three") is True
        assert await three.expire("k", 1000) is True
        assert await zero.get("k") == b"zero" and await three.get("k") == b"three"
        assert await zero.dbsize() == 1 and await three.dbsize() == 1
        async with zero.pipeline(transaction=False) as pipe:  # one batch across a SELECT
            pipe.set("p", "0").execute_command("SELECT", 5).set("p", "5").get("k")
            pipe.execute_command("SELECT", 0).get("p")
            assert await pipe.execute() == [True, True, True, None, True, b"0"]
        assert await zero.move("k", 5) is True
        assert await zero.move("k", 5) is False  # gone from 0
        info = await zero.info("keyspace")
        assert info["db3"] == {"keys": 1, "expires": 1, "avg_ttl": pytest.approx(1e6, rel=0.1)}
        assert info["db5"]["keys"] == 2 and info["db0"]["keys"] == 1  # p; k and p in 5
        assert await zero.swapdb(3, 5) is True
        assert await three.get("k") == b"zero" and await three.get("p") == b"5"
        with pytest.raises(ResponseError, match="DB index is out of range"):
            await zero.execute_command("SELECT", 16)
        clients = await three.client_list()
        assert {c["db"] for c in clients} >= {"0", "3"}
        assert await three.flushdb() is True
        assert await three.dbsize() == 0 and await zero.dbsize() == 1
        await zero.execute_command("SELECT", 7)
        assert await zero.execute_command("RESET") in ("RESET", b"RESET")
        assert await zero.get("p") == b"0"  # back in database 0
        assert follower.server is not None
        follower.server.databases = 4  # cluster.toml's databases = 4
        with pytest.raises(ResponseError, match="DB index is out of range"):
            await zero.execute_command("SELECT", 4)
        assert await zero.execute_command("SELECT", 3) in ("OK", b"OK", True)
    finally:
        await zero.aclose()
        await three.aclose()


async def pipelined(app: NodeApp, commands: list[list[str]]) -> list[Reply]:
    """``commands`` written at once on a fresh connection (one ``data_received``), and the
    replies, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(app.member.client))
    writer.write(b"".join(encode_command(*(a.encode() for a in c)) for c in commands))
    parser, replies = ReplyParser(), []
    try:
        async with asyncio.timeout(10):
            while len(replies) < len(commands):
                data = await reader.read(65536)
                assert data, "the node closed the connection"
                replies += parser.feed(data)
    finally:
        writer.close()
    return replies


async def test_a_transaction_selects_unless_its_watch_fails(apps: dict[int, NodeApp]) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    for aborted in (True, False):
        commands = [["WATCH", "k"], *([["SET", "k", "changed"]] if aborted else [])]
        commands += [["MULTI"], ["SELECT", "6"], ["SET", "in-tx", "1"], ["EXEC"]]
        commands += [["SET", "after", "x"], ["KEYS", "*"]]
        replies = await pipelined(follower, commands)
        assert (replies[-3] is None) == aborted, replies
        assert sorted(replies[-1]) == ([b"after", b"k"] if aborted else [b"after", b"in-tx"])


async def test_paxos_req_carries_the_database(apps: dict[int, NodeApp]) -> None:
    follower = next(app for app in apps.values() if not app.is_leader)
    r = connect(follower, db=9)
    try:
        assert await r.execute_command("PAXOS.REQ", 4242, 1, "INCR", "n") == 1
        assert await r.execute_command("PAXOS.REQ", 4242, 1, "INCR", "n") == 1  # a retry
        assert await r.get("n") == b"1"
        await r.execute_command("SELECT", 0)
        assert await r.get("n") is None
        async with asyncio.timeout(10):  # every node applies it to database 9
            while any(machine(app).get(b"n", 9) != b"1" for app in apps.values()):
                await asyncio.sleep(0.02)
        assert all(machine(app).get(b"n", 0) is None for app in apps.values())
        await r.execute_command("SELECT", 9)
        assert await r.execute_command("READONLY") in ("OK", b"OK", True)
        assert await r.get("n") == b"1"  # the follower's own state, in database 9
        assert await r.mget("n", "none") == [b"1", None]
    finally:
        await r.aclose()


async def test_blocking_pops_and_notifications_per_database(apps: dict[int, NodeApp]) -> None:
    leader = next(app for app in apps.values() if app.is_leader)
    waiter, pusher, listener = connect(leader, db=2), connect(leader), connect(leader)
    try:
        await pusher.config_set("notify-keyspace-events", "KEA")
        pubsub = listener.pubsub()
        await pubsub.psubscribe("__keyspace@2__:*")
        info = await pusher.info("stats")
        assert info["pubsub_patterns"] == 1 and info["pubsub_channels"] == 0
        popped = asyncio.create_task(waiter.blpop(["q"], timeout=5))
        await asyncio.sleep(0.2)  # most likely blocked by now (either way it must wait)
        assert await pusher.rpush("q", "in-zero") == 1  # database 0: not for the waiter
        await pusher.execute_command("SELECT", 2)
        assert await pusher.rpush("q", "in-two") == 1
        assert tuple(await popped) == (b"q", b"in-two")
        await pusher.execute_command("SELECT", 0)
        assert await pusher.lrange("q", 0, -1) == [b"in-zero"]
        messages = []
        async with asyncio.timeout(5):
            while len(messages) < 2:
                message = await pubsub.get_message(timeout=1)
                if message and message["type"] == "pmessage":
                    messages.append((message["channel"], message["data"]))
        assert messages == [(b"__keyspace@2__:q", b"rpush"), (b"__keyspace@2__:q", b"lpop")]
        await pubsub.aclose()
    finally:
        for client in (waiter, pusher, listener):
            await client.aclose()


async def test_pypaxos_client_in_a_database(apps: dict[int, NodeApp]) -> None:
    addresses = [app.member.client for app in apps.values()]
    async with AsyncClient(addresses, db=5) as client:
        await client.set("k", "five")  # PAXOS.REQ, in database 5
        assert await client.incr("n") == 1
        assert await client.get("k") == b"five"
    leader = next(app for app in apps.values() if app.is_leader)
    r = connect(leader, db=5)
    try:
        assert await r.get("k") == b"five" and await r.dbsize() == 2
        await r.execute_command("SELECT", 0)
        assert await r.dbsize() == 0
    finally:
        await r.aclose()
    for app in apps.values():
        assert app.server is not None
        app.server.databases = 4
    async with AsyncClient(addresses, db=5, retries=0) as client:
        with pytest.raises(CommandError, match="DB index is out of range"):
            await client.get("k")
