"""Differential test: the same pub/sub session sent to a real redis-server and to a node of a
3-node cluster (publisher and subscriber on the same node, so ``PUBLISH``'s per-node count is
Redis's count); the replies must be equal byte for byte, in RESP2 (subscribe mode, its errors,
``PING``'s form) and in RESP3 (pushes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from runtime_helpers import RunningCluster, port_of, write_cluster
from test_runtime_pubsub import Raw
from test_runtime_redis_diff import REDIS_SERVER, redis_port  # noqa: F401  (the fixture)

from pypaxos.runtime.config import load_config

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

Step = tuple[str, tuple[str, ...], int]
"""(who sends it: "sub" or "pub", the command, how many frames the subscriber then reads)."""

RESP2_SESSION: list[Step] = [
    ("sub", ("SUBSCRIBE",), 1),
    ("sub", ("UNSUBSCRIBE",), 1),
    ("sub", ("PUNSUBSCRIBE",), 1),
    ("sub", ("SUBSCRIBE", "a", "b", "a"), 3),
    ("sub", ("PSUBSCRIBE", "p*", "[xy]?"), 2),
    ("pub", ("PUBLISH", "a", "hello"), 1),
    ("sub", ("GET", "k"), 1),
    ("sub", ("SET", "k", "v"), 1),
    ("sub", ("PUBLISH", "a", "x"), 1),
    ("sub", ("PING",), 1),
    ("sub", ("PING", "there"), 1),
    ("pub", ("PUBLISH", "pq", "pattern"), 1),
    ("pub", ("PUBLISH", "xz", "both"), 1),
    ("pub", ("PUBSUB", "NUMSUB", "a", "b", "c"), 0),
    ("pub", ("PUBSUB", "NUMPAT"), 0),
    ("pub", ("PUBSUB", "CHANNELS", "b"), 0),
    ("pub", ("PUBSUB", "NOPE"), 0),
    ("sub", ("UNSUBSCRIBE", "a", "zz"), 2),
    ("sub", ("PUNSUBSCRIBE",), 2),
    ("sub", ("UNSUBSCRIBE",), 1),
    ("sub", ("UNSUBSCRIBE",), 1),
    ("sub", ("PING",), 1),
    ("sub", ("SUBSCRIBE", "c"), 1),
    ("sub", ("RESET",), 1),
    ("sub", ("GET", "k"), 1),
    ("pub", ("PUBLISH", "c", "nobody"), 0),
    ("pub", ("PUBLISH", "c"), 0),
]

RESP3_SESSION: list[Step] = [
    ("sub", ("SUBSCRIBE", "a"), 1),
    ("sub", ("GET", "k"), 1),
    ("pub", ("PUBLISH", "a", "pushed"), 1),
    ("sub", ("PING",), 1),
    ("sub", ("PSUBSCRIBE", "a*"), 1),
    ("pub", ("PUBLISH", "ab", "p"), 1),
    ("pub", ("PUBLISH", "a", "two"), 2),
    ("sub", ("UNSUBSCRIBE",), 1),
    ("sub", ("PUNSUBSCRIBE", "a*"), 1),
    ("sub", ("UNSUBSCRIBE",), 1),
]


async def _run(port: int, session: list[Step], protocol: int) -> list[bytes]:
    """The replies of each step, and the frames the subscriber reads after it."""
    sub, pub = await Raw.open(port), await Raw.open(port)
    if protocol == 3:
        await sub.call("HELLO", "3")  # its map names the server: not compared
    out: list[bytes] = []
    for who, command, frames in session:
        if who == "pub":
            out.append(await pub.call(*command))
        else:
            await sub.send(*command)
        out += [await sub.reply() for _ in range(frames)]
    await sub.close()
    await pub.close()
    return out


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await RunningCluster.start(load_config(write_cluster(tmp_path)))
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


@pytest.mark.parametrize(("session", "protocol"), [(RESP2_SESSION, 2), (RESP3_SESSION, 3)])
async def test_same_pubsub_replies_as_redis(
    cluster: RunningCluster,
    redis_port: int,  # noqa: F811
    session: list[Step],
    protocol: int,
) -> None:
    leader = await cluster.wait_leader()
    follower = next(i for i in cluster.apps if i != leader)
    ours = await _run(port_of(cluster.apps[follower].member.client), session, protocol)
    theirs = await _run(redis_port, session, protocol)
    for step, (mine, real) in enumerate(zip(ours, theirs, strict=True)):
        assert mine == real, (step, mine, real)
