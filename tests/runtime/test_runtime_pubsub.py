"""Publish/subscribe on a 3-node cluster through redis-py: every subscriber, on any node, gets
every message once, in log order; patterns, RESP3 pushes, RESP2 subscribe mode, keyspace
notifications, and resuming from a revision on another node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import redis.exceptions
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


async def _messages(pubsub: aioredis.client.PubSub, count: int) -> list[dict[str, object]]:
    """The next ``count`` messages (not the subscribe confirmations)."""
    got: list[dict[str, object]] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                got.append(message)
    return got


async def _no_more(pubsub: aioredis.client.PubSub) -> None:
    extra = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3)
    assert extra is None, extra


def _followers(cluster: RunningCluster, leader: int) -> list[int]:
    return [i for i in cluster.apps if i != leader]


async def test_every_node_delivers_each_message_once_in_log_order(
    cluster: RunningCluster,
) -> None:
    leader = await cluster.wait_leader()
    follower = _followers(cluster, leader)[0]
    subscribers = []
    for node_id in cluster.apps:
        for protocol in (2, 3):
            pubsub = cluster.client(node_id, protocol).pubsub()
            await pubsub.subscribe("news")
            subscribers.append(pubsub)
    publishers = [cluster.client(leader), cluster.client(follower)]
    counts = await asyncio.gather(*[publishers[i % 2].publish("news", f"m{i}") for i in range(40)])
    # Two subscribers on each publisher's node: that node's count.
    assert set(counts) == {2}
    received = [await _messages(pubsub, 40) for pubsub in subscribers]
    orders = [[m["data"] for m in got] for got in received]
    assert sorted(orders[0]) == sorted(f"m{i}".encode() for i in range(40))
    assert all(order == orders[0] for order in orders)  # the log's order, everywhere
    for pubsub in subscribers:
        await _no_more(pubsub)
        await pubsub.aclose()


async def test_patterns_and_unsubscribe(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    follower = _followers(cluster, leader)[0]
    pubsub = cluster.client(follower).pubsub()
    await pubsub.psubscribe("user:*")
    await pubsub.subscribe("user:1")
    publisher = cluster.client(leader)
    assert await publisher.publish("user:1", "a") == 0  # nobody on the leader
    assert await publisher.publish("other", "b") == 0
    got = await _messages(pubsub, 2)
    kinds = sorted((m["type"], m["pattern"], m["channel"], m["data"]) for m in got)
    assert kinds == [
        ("message", None, b"user:1", b"a"),
        ("pmessage", b"user:*", b"user:1", b"a"),
    ]
    local = cluster.client(follower)
    assert await local.pubsub_numpat() == 1
    assert await local.pubsub_channels() == [b"user:1"]
    assert await local.pubsub_numsub("user:1", "none") == [(b"user:1", 1), (b"none", 0)]
    assert await local.publish("user:1", "c") == 2  # channel + pattern, on this node
    await _messages(pubsub, 2)
    await pubsub.punsubscribe("user:*")
    await pubsub.unsubscribe("user:1")
    await publisher.publish("user:1", "d")
    await _no_more(pubsub)
    assert await local.pubsub_numpat() == 0
    await pubsub.aclose()


class Raw:
    """One connection's exact reply bytes (asyncio streams: the cluster shares the loop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, *args: str) -> None:
        self.writer.write(encode_command(*args))
        await self.writer.drain()

    async def reply(self) -> bytes:
        async with asyncio.timeout(10):
            return await self._reply()

    async def _reply(self) -> bytes:
        line = await self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"-", b":", b"_"):
            return line
        if kind == b"$":
            if rest == b"-1":
                return line
            return line + await self.reader.readexactly(int(rest) + 2)
        if kind in (b"*", b">", b"%"):
            size = int(rest) * (2 if kind == b"%" else 1)
            return line + b"".join([await self._reply() for _ in range(max(size, 0))])
        raise AssertionError(f"unexpected reply {line!r}")

    async def call(self, *args: str) -> bytes:
        await self.send(*args)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _port(cluster: RunningCluster, node_id: int) -> int:
    return port_of(cluster.apps[node_id].member.client)


async def test_resp3_pushes_and_other_commands_between(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    raw = await Raw.open(_port(cluster, _followers(cluster, leader)[0]))
    assert (await raw.call("HELLO", "3")).startswith(b"%")
    assert await raw.call("SUBSCRIBE", "c") == b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    assert await raw.call("SET", "k", "v") == b"+OK\r\n"  # allowed in RESP3
    await cluster.client(leader).publish("c", "hi")
    assert await raw.reply() == b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"
    assert await raw.call("GET", "k") == b"$1\r\nv\r\n"
    await raw.close()


async def test_resp2_subscribe_mode_refuses_other_commands(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    raw = await Raw.open(_port(cluster, leader))
    await raw.call("SUBSCRIBE", "c")
    refused = await raw.call("GET", "k")
    assert refused.startswith(b"-ERR Can't execute 'get'")
    assert await raw.call("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert await raw.call("UNSUBSCRIBE") == b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"
    assert await raw.call("GET", "k") == b"$-1\r\n"  # out of subscribe mode
    await raw.call("SUBSCRIBE", "c")
    assert await raw.call("RESET") == b"+RESET\r\n"
    assert await raw.call("PING") == b"+PONG\r\n"
    await raw.close()


async def test_keyspace_notifications_on_every_node(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    follower = _followers(cluster, leader)[0]
    writer = cluster.client(leader)
    assert await writer.config_set("notify-keyspace-events", "KEA") is True
    reader = cluster.client(follower)

    async with asyncio.timeout(10):  # CONFIG GET answers from the follower's applied state
        while await reader.config_get("notify-keyspace-events") != {
            "notify-keyspace-events": "AKE"
        }:
            await asyncio.sleep(0.05)
    keyspace = cluster.client(follower).pubsub()
    await keyspace.psubscribe("__keyspace@0__:*")
    keyevent = cluster.client(leader).pubsub()
    await keyevent.psubscribe("__keyevent@0__:*")
    await writer.set("a", "1")
    await writer.rpush("list", "x")
    await writer.lpop("list")  # empties it: lpop, then del
    await writer.rename("a", "b")
    await writer.hset("h", "f", "v")
    await writer.sadd("s", "m")
    await writer.zadd("z", {"m": 1.0})
    await writer.expire("b", 100)
    await writer.delete("h")
    expected = [
        (b"a", b"set"),
        (b"list", b"rpush"),
        (b"list", b"lpop"),
        (b"list", b"del"),
        (b"a", b"rename_from"),
        (b"b", b"rename_to"),
        (b"h", b"hset"),
        (b"s", b"sadd"),
        (b"z", b"zadd"),
        (b"b", b"expire"),
        (b"h", b"del"),
    ]
    spaces = await _messages(keyspace, len(expected))
    assert [(m["channel"][len(b"__keyspace@0__:") :], m["data"]) for m in spaces] == expected
    events = await _messages(keyevent, len(expected))
    assert [(m["data"], m["channel"][len(b"__keyevent@0__:") :]) for m in events] == expected
    await writer.config_set("notify-keyspace-events", "")
    await writer.set("a", "2")
    await _no_more(keyspace)
    with pytest.raises(redis.exceptions.ResponseError):
        await writer.config_set("notify-keyspace-events", "Q")
    await keyspace.aclose()
    await keyevent.aclose()


def _revision_of(frame: bytes) -> int:
    """The last integer of a message frame (``PAXOS.SUBSCRIBE``'s revision)."""
    return int(frame.rstrip(b"\r\n").rsplit(b":", 1)[1])


async def test_resume_from_a_revision_on_another_node(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    first, second = _followers(cluster, leader)
    publisher = cluster.client(leader)
    raw = await Raw.open(_port(cluster, first))
    confirm = await raw.call("PAXOS.SUBSCRIBE", "feed")
    assert confirm.startswith(b"*4\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n")
    for i in range(3):
        await publisher.publish("feed", f"a{i}")
    seen = [await raw.reply() for _ in range(3)]
    assert [frame.split(b"\r\n")[6] for frame in seen] == [b"a0", b"a1", b"a2"]
    last = _revision_of(seen[-1])
    await raw.close()
    for i in range(3):  # published while nobody listens
        await publisher.publish("feed", f"b{i}")
        await publisher.publish("elsewhere", "x")
    resumed = await Raw.open(_port(cluster, second))
    frames = await resumed.call("PAXOS.SUBSCRIBE", "FROM", str(last), "feed")
    await publisher.publish("feed", "c0")
    tail = [await resumed.reply() for _ in range(4)]
    assert b"b0" in frames or b"b0" in tail[0]
    texts = [f.split(b"\r\n")[-3] for f in [frames, *tail] if b"message" in f]
    messages = [t for f in (frames, *tail) for t in _payloads(f)]
    assert messages == [b"b0", b"b1", b"b2", b"c0"], (texts, messages)
    revisions = [_revision_of(f) for f in tail]
    assert revisions == sorted(revisions) and revisions[0] > last
    await resumed.close()


def _payloads(data: bytes) -> list[bytes]:
    """The payloads of the message frames in ``data`` (RESP2 arrays)."""
    parts = data.split(b"\r\n")
    return [parts[i + 4] for i, part in enumerate(parts) if part == b"message"]


async def test_publish_inside_exec_and_scripts(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    follower = _followers(cluster, leader)[0]
    pubsub = cluster.client(follower, 3).pubsub()
    await pubsub.subscribe("ch")
    publisher = cluster.client(leader)
    async with publisher.pipeline(transaction=True) as pipe:
        pipe.publish("ch", "tx1").set("k", "v").publish("ch", "tx2")
        assert await pipe.execute() == [0, True, 0]  # no subscriber on the leader
    assert (
        await publisher.eval("return redis.call('PUBLISH', KEYS[1], ARGV[1])", 1, "ch", "lua") == 0
    )
    got = await _messages(pubsub, 3)
    assert [m["data"] for m in got] == [b"tx1", b"tx2", b"lua"]
    await pubsub.aclose()


async def test_messages_across_a_leader_change(cluster: RunningCluster) -> None:
    old_leader = await cluster.wait_leader()
    first, second = _followers(cluster, old_leader)
    steady = cluster.client(second).pubsub()  # stays subscribed throughout
    await steady.subscribe("feed")
    raw = await Raw.open(_port(cluster, first))
    await raw.call("PAXOS.SUBSCRIBE", "feed")
    for i in range(5):
        await cluster.client(old_leader).publish("feed", f"a{i}")
    seen = [await raw.reply() for _ in range(5)]
    last = _revision_of(seen[-1])
    await raw.close()
    await cluster.apps[old_leader].stop()
    async with asyncio.timeout(20):  # the stopped node may still think it leads
        while not (leaders := [i for i in (first, second) if cluster.apps[i].is_leader]):
            await asyncio.sleep(0.05)
    leader = leaders[0]
    publisher = cluster.client(leader)
    for i in range(5):
        async with asyncio.timeout(20):
            while True:  # the new leader may still be taking over
                try:
                    await publisher.publish("feed", f"b{i}")
                    break
                except redis.exceptions.ResponseError as error:
                    assert str(error).startswith("TRYAGAIN"), error
                    await asyncio.sleep(0.05)
    expected = [f"a{i}".encode() for i in range(5)] + [f"b{i}".encode() for i in range(5)]
    assert [m["data"] for m in await _messages(steady, 10)] == expected
    await _no_more(steady)
    resumed = await Raw.open(_port(cluster, second))
    await resumed.send("PAXOS.SUBSCRIBE", "FROM", str(last), "feed")
    replies = [await resumed.reply() for _ in range(6)]  # the confirmation, then b0..b4
    assert [p for r in replies for p in _payloads(r)] == expected[5:]
    await resumed.close()
    await steady.aclose()


async def test_roles_and_reset_signing_out(tmp_path: Path) -> None:
    from test_runtime_auth import USERS

    from pypaxos.runtime.app import NodeApp

    app = NodeApp(load_config(write_cluster(tmp_path, nodes=1, extra=USERS)), 1)
    await app.start()
    try:
        raw = await Raw.open(port_of(app.member.client))
        assert (await raw.call("SUBSCRIBE", "c")).startswith(b"-NOAUTH")
        assert await raw.call("AUTH", "reader", "just looking") == b"+OK\r\n"
        assert (await raw.call("PUBLISH", "c", "m")).startswith(b"-NOPERM")
        assert (await raw.call("SUBSCRIBE", "c")).startswith(b"*3\r\n$9\r\nsubscribe")
        assert await raw.call("RESET") == b"+RESET\r\n"
        assert (await raw.call("GET", "k")).startswith(b"-NOAUTH")  # signed out
        await raw.close()
    finally:
        await app.stop()


async def test_commands_pipelined_behind_subscribe_are_in_subscribe_mode(
    cluster: RunningCluster,
) -> None:
    leader = await cluster.wait_leader()
    raw = await Raw.open(_port(cluster, leader))
    raw.writer.write(encode_command("SUBSCRIBE", "c") + encode_command("GET", "k"))
    assert (await raw.reply()).startswith(b"*3\r\n$9\r\nsubscribe")
    assert (await raw.reply()).startswith(b"-ERR Can't execute 'get'")
    raw.writer.write(encode_command("UNSUBSCRIBE") + encode_command("GET", "k"))
    assert (await raw.reply()).startswith(b"*3\r\n$11\r\nunsubscribe")
    assert await raw.reply() == b"$-1\r\n"
    await raw.close()


async def test_messages_held_behind_a_blocked_command_are_bounded(
    cluster: RunningCluster,
) -> None:
    leader = await cluster.wait_leader()
    server = cluster.apps[leader].server
    assert server is not None
    server.output_bytes_max = 2_000
    raw = await Raw.open(_port(cluster, leader))
    await raw.call("HELLO", "3")
    await raw.call("SUBSCRIBE", "c")
    await raw.send("BLPOP", "empty", "0")  # blocks: messages queue behind its reply
    publisher = cluster.client(leader)
    held = 0
    while held < 3_000:  # until this subscriber is dropped, which the count shows
        if await publisher.publish("c", "x" * 200) == 0:
            break
        held += 200
    assert await publisher.publish("c", "after") == 0  # it was dropped
    assert await raw.reader.read() == b""  # closed by the server, nothing written
    await raw.close()
