"""``pypaxos.client``'s ``Lock`` and ``Election`` against a real 3-node cluster (in process).

Fencing tokens grow with every acquisition, a second holder waits or times out, a lease left
to expire is taken over with a higher token and the stale holder is refused by the resource,
an election's observers see the leader and its successor after a resignation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from runtime_helpers import RunningCluster, write_cluster

from pypaxos.client import AsyncClient
from pypaxos.client.recipes import (
    Election,
    FencedResource,
    Lock,
    LockTimeoutError,
    StaleTokenError,
)
from pypaxos.runtime.config import load_config

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await RunningCluster.start(load_config(write_cluster(tmp_path)))
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


def addresses(cluster: RunningCluster) -> list[str]:
    return [app.member.client for app in cluster.apps.values()]


async def test_tokens_grow_with_every_acquisition_and_a_rival_waits(
    cluster: RunningCluster,
) -> None:
    async with AsyncClient(addresses(cluster)) as one, AsyncClient(addresses(cluster)) as two:
        first, rival = Lock(one, "job", ttl_ms=5_000), Lock(two, "job", ttl_ms=5_000)
        token = await first.acquire(timeout_s=5)
        assert await rival.try_acquire() is None
        with pytest.raises(LockTimeoutError):
            await rival.acquire(timeout_s=0.2)
        holder = await rival.holder()
        assert holder is not None and holder.owner == first.owner and holder.token == token
        waiting = asyncio.create_task(rival.acquire(timeout_s=5))
        await asyncio.sleep(0.1)
        assert await first.release()
        second = await waiting
        assert second > token
        assert await rival.release()
        assert not await rival.release()  # not held any more
        assert await first.acquire(timeout_s=5) > second
        await first.release()


async def test_an_expired_lease_is_taken_over_and_the_stale_holder_is_fenced(
    cluster: RunningCluster,
) -> None:
    async with AsyncClient(addresses(cluster)) as one, AsyncClient(addresses(cluster)) as two:
        paused = Lock(one, "res", ttl_ms=300, keep_alive=False)  # a holder that stops renewing
        other = Lock(two, "res", ttl_ms=5_000)
        resource = FencedResource()
        old = await paused.acquire(timeout_s=5)
        resource.check(old)
        new = await other.acquire(timeout_s=10)  # after the log's clock passed the TTL
        assert new > old
        resource.check(new)
        with pytest.raises(StaleTokenError) as refused:
            resource.check(old)  # the paused holder wakes up and acts: refused
        assert refused.value.highest == new
        assert not await paused.renew() and paused.lost.is_set()
        await other.release()


async def test_keep_alive_holds_the_lease_past_its_ttl(cluster: RunningCluster) -> None:
    async with AsyncClient(addresses(cluster)) as one, AsyncClient(addresses(cluster)) as two:
        held = Lock(one, "kept", ttl_ms=300)
        token = await held.acquire(timeout_s=5)
        await asyncio.sleep(1.0)  # three TTLs, renewed every 100 ms
        assert await Lock(two, "kept").try_acquire() is None
        assert held.token == token and not held.lost.is_set()
        await held.release()


async def test_election_campaign_observe_resign(cluster: RunningCluster) -> None:
    async with AsyncClient(addresses(cluster)) as one, AsyncClient(addresses(cluster)) as two:
        first, second = Election(one, "leader", ttl_ms=5_000), Election(two, "leader")
        term = await first.campaign("node-a", timeout_s=5)
        leader = await second.leader()
        assert leader is not None and (leader.value, leader.token) == ("node-a", term)
        assert await first.is_leader() and not await second.is_leader()
        waiting = asyncio.create_task(second.campaign("node b", timeout_s=5))
        watching = asyncio.create_task(first.observe())
        await asyncio.sleep(0.1)
        assert await first.resign()
        next_term = await waiting
        seen = await asyncio.wait_for(watching, 5)
        assert next_term > term and seen.value == "node b" and seen.token == next_term
        assert await second.resign()
        assert await first.leader() is None
