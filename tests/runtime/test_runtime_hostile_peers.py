"""The forgeries of the trust issue, sent to a real 3-node cluster's peer ports.

Without a secret, a process that knows the cluster id can still only speak as a member, and
every number it sends is checked; with a secret (as ``pypaxos cluster up`` writes one), it
cannot speak at all.  Either way the cluster keeps serving and its data stays as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from runtime_helpers import port_of, retry, write_cluster

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi.messages import Decided, Heartbeat, Message, Prepare, SnapshotChunk
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config
from pypaxos.runtime.wire import CODEC
from pypaxos.transport.auth import write_secret
from pypaxos.transport.codec import PROTOCOL_VERSION, Hello

pytestmark = pytest.mark.asyncio


async def _start(tmp_path: Path, *, secret: bool) -> dict[int, NodeApp]:
    extra = ""
    if secret:
        write_secret(tmp_path / "peer.secret")
        extra = 'peer_secret_file = "peer.secret"'
    config = load_config(write_cluster(tmp_path, extra=extra))
    apps = {m.id: NodeApp(config, m.id, request_timeout_s=3.0) for m in config.members}
    for app in apps.values():
        await app.start()
    return apps


@pytest_asyncio.fixture(params=[False, True], ids=["no secret", "secret"])
async def apps(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[int, NodeApp]]:
    running = await _start(tmp_path, secret=request.param)
    try:
        yield running
    finally:
        for app in running.values():
            await app.stop()


async def _send(address: str, hello: Hello, messages: list[Message]) -> None:
    host, port = address.rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(CODEC.encode_hello(hello) + CODEC.encode_frames(messages))
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()


async def test_forged_peers_change_nothing(apps: dict[int, NodeApp]) -> None:
    config = apps[1].config
    client = aioredis.Redis(host="127.0.0.1", port=port_of(config.members[0].client))
    try:
        assert await retry(lambda: client.set("k", "before"))
        leader = next(i for i, app in apps.items() if app.is_leader)
        follower = next(i for i in apps if i != leader)
        forged_store = KVStateMachine()
        for node_id, app in apps.items():
            address = app.member.peer
            applied = app.driver.node.status.applied_index if app.driver else 0
            await _send(
                address,
                Hello(99, config.cluster_id, protocol=PROTOCOL_VERSION),
                [
                    SnapshotChunk(99, applied + 1, 0, 1, forged_store.snapshot()),
                    Heartbeat(99, Ballot(9, 99), 0),
                ],
            )
            await _send(
                address,
                Hello(
                    leader if node_id != leader else follower,
                    config.cluster_id,
                    protocol=PROTOCOL_VERSION,
                ),
                [
                    Prepare(leader, Ballot(2**64 - 1, leader), 0),
                    Decided(leader, 1, ((),), 1),
                ],
            )
        await asyncio.sleep(0.5)
        assert all(app.failed is None and not app.stopped.is_set() for app in apps.values())
        assert await retry(lambda: client.get("k")) == b"before"
        assert await retry(lambda: client.set("k", "after"))
        assert await retry(lambda: client.get("k")) == b"after"
        assert all(a.driver and a.driver.node.status.ballot.round < 2**62 for a in apps.values())
        refused = sum(a.driver.node.refused_messages for a in apps.values() if a.driver)
        if apps[1].peer_secret is None:  # the forgeries got in as far as the nodes, who refused
            assert refused >= 1
        else:  # the handshake stopped them all
            assert refused == 0
    finally:
        await client.aclose()
