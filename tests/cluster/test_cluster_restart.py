"""A whole cluster stopped (SIGTERM) or crashed (SIGKILL, fsync always) and started again on its
data directory keeps every acknowledged write."""

from __future__ import annotations

import signal

import pytest
from conftest import Clusters

from pypaxos.client import AsyncClient
from pypaxos.cluster import LocalCluster

pytestmark = pytest.mark.asyncio


async def write(cluster: LocalCluster, prefix: str, count: int) -> dict[str, str]:
    written = {f"{prefix}:{i}": f"{prefix}-value-{i}" for i in range(count)}
    async with AsyncClient(cluster.spec.client_addresses) as client:
        for key, value in written.items():
            await client.set(key, value)
        assert await client.incr(f"{prefix}:counter") == 1
    return written


async def read(cluster: LocalCluster, keys: list[str]) -> list[str | None]:
    async with AsyncClient(cluster.spec.client_addresses, timeout_s=5.0) as client:
        values = await client.mget(*keys)
    return [None if v is None else v.decode() for v in values]


async def test_the_whole_cluster_restarts_with_its_data(clusters: Clusters) -> None:
    cluster = clusters.make(3, fsync="always")
    await cluster.up(timeout_s=30)
    first = await write(cluster, "first", 100)

    cluster.down()  # SIGTERM: a clean stop
    assert cluster.running() == {}
    again = LocalCluster.open(cluster.spec.data_dir)  # as `pypaxos cluster up` would
    clusters.made.append(again)
    await again.up(timeout_s=30)
    assert await read(again, sorted(first)) == [first[k] for k in sorted(first)]
    second = await write(again, "second", 100)

    for member in again.spec.members:  # a crash of every node at once
        again.kill(member.id, signal.SIGKILL)
    assert again.running() == {}
    await again.up(timeout_s=30)
    both = {**first, **second}
    assert await read(again, sorted(both)) == [both[k] for k in sorted(both)]
    async with AsyncClient(again.spec.client_addresses) as client:
        assert await client.incr("first:counter") == 2
