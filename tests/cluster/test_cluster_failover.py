"""SIGKILL of the leader under load: writes resume, nothing acknowledged is lost, and the killed
node, started again with ``python -m pypaxos node``, catches up and serves in quorums again."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from conftest import Clusters

from pypaxos.client import AsyncClient, ClientError, OutcomeUnknownError, fetch_info
from pypaxos.cluster import LocalCluster
from pypaxos.cluster.processes import node_command

pytestmark = pytest.mark.asyncio

WRITERS = 4


class Load:
    """Writers of unique keys; ``acked`` holds exactly the writes the cluster acknowledged."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.acked: dict[str, str] = {}
        self.unknown: dict[str, str] = {}
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def writer(self, index: int) -> None:
        client = AsyncClient(self.addresses, timeout_s=1.0, retries=15, rng=random.Random(index))
        async with client:
            n = 0
            while not self.stop.is_set():
                n += 1
                key, value = f"w{index}:{n}", f"value-{index}-{n}"
                try:
                    await client.set(key, value)
                except OutcomeUnknownError:
                    self.unknown[key] = value
                except ClientError as error:
                    self.errors.append(f"{key}: {error!r}")
                else:
                    self.acked[key] = value


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def read_all(address: str, keys: list[str]) -> dict[str, bytes | None]:
    """Read ``keys`` through the node at ``address`` only (no hop to the leader by the client)."""
    found: dict[str, bytes | None] = {}
    async with AsyncClient([address], timeout_s=5.0, follow_leader=False) as client:
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            found.update(zip(chunk, await client.mget(*chunk), strict=True))
    return found


async def info_int(address: str, field: str) -> int:
    try:
        return int((await fetch_info(address, 1.0)).get(field, "-1") or -1)
    except (OSError, TimeoutError):
        return -1


async def test_leader_sigkill_under_load_loses_nothing_and_the_node_catches_up(
    clusters: Clusters,
) -> None:
    cluster: LocalCluster = clusters.make(3)
    leader = await cluster.up(timeout_s=30)
    load = Load(cluster.spec.client_addresses)
    writers = [asyncio.create_task(load.writer(i)) for i in range(WRITERS)]
    try:
        await until(lambda: len(load.acked) >= 150, 30, "150 writes before the kill")
        cluster.kill(leader.id, signal.SIGKILL)
        before_kill = len(load.acked)
        new_leader = await cluster.wait_for_leader(15, exclude={leader.id})
        await until(lambda: len(load.acked) >= before_kill + 150, 30, "writes to resume")
    finally:
        load.stop.set()
        await asyncio.gather(*writers)
    assert load.errors == []

    survivor = next(m for m in cluster.spec.members if m.id not in (leader.id, new_leader.id))
    keys = sorted(load.acked)
    found = await read_all(survivor.client, keys)
    lost = [k for k in keys if found[k] != load.acked[k].encode()]
    assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    unknown = await read_all(survivor.client, sorted(load.unknown))
    assert all(unknown[k] in (None, v.encode()) for k, v in load.unknown.items())

    # The killed node comes back with the contract's command line and catches up.
    target = await info_int(new_leader.client, "commit_index")
    killed = cluster.spec.member(leader.id)
    with cluster.spec.log_file(leader.id).open("ab") as log:
        restarted = subprocess.Popen(
            node_command(cluster.spec, leader.id),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    clusters.track(restarted.pid)
    deadline = time.monotonic() + 30
    while await info_int(killed.client, "applied_index") < target:
        assert restarted.poll() is None, f"restarted node exited {restarted.returncode}"
        assert time.monotonic() < deadline, "the restarted node did not catch up"
        await asyncio.sleep(0.1)
    assert sys.executable in restarted.args

    # With the survivor stopped, every quorum needs the restarted node: writes still commit.
    cluster.kill(survivor.id, signal.SIGTERM)
    async with AsyncClient([killed.client, new_leader.client], timeout_s=2.0) as client:
        await client.set("after-restart", "yes")
        assert await client.get("after-restart") == b"yes"
        assert await client.get(keys[-1]) == load.acked[keys[-1]].encode()
    restarted.terminate()
    assert restarted.wait(timeout=15) == 0
