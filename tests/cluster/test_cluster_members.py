"""Growing and shrinking a local cluster of real processes under write load
(``cluster.members``: ``pypaxos cluster add`` / ``cluster remove``): 3 -> 5 -> 3 with the
leader removed on the way, no acknowledged write lost; a node whose directory was deleted
refuses to vote and is replaced by a new member."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import Clusters

from pypaxos.client import AsyncClient, ClientError
from pypaxos.cluster import LocalCluster, processes
from pypaxos.cluster.members import add_local_node, remove_local_node
from pypaxos.runtime.config import write_config
from pypaxos.storage.file import SNAPSHOT_NAME


class Load:
    """Writers that keep setting keys through any node; what was acknowledged is kept."""

    def __init__(self, cluster: LocalCluster, writers: int = 3) -> None:
        self.addresses = [m.client for m in cluster.spec.members]
        self.acknowledged: dict[str, str] = {}
        self.failed = 0
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(self._writer(w)) for w in range(writers)]

    async def _writer(self, writer: int) -> None:
        async with AsyncClient(self.addresses, timeout_s=3.0, retries=20) as client:
            i = 0
            while not self.stop.is_set():
                key, value = f"w{writer}:{i}", f"value-{writer}-{i}"
                try:
                    await client.set(key, value)
                except ClientError:
                    self.failed += 1  # not acknowledged: may or may not be there
                else:
                    self.acknowledged[key] = value
                i += 1

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def _check(cluster: LocalCluster, written: dict[str, str]) -> None:
    keys = sorted(written)
    async with AsyncClient(cluster.spec.client_addresses, timeout_s=5.0, retries=20) as client:
        values = []
        for start in range(0, len(keys), 200):
            values += await client.mget(*keys[start : start + 200])
    lost = [k for k, v in zip(keys, values, strict=True) if v != written[k].encode()]
    assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"


async def _voters(cluster: LocalCluster, expected: set[int] | None = None) -> tuple[int, ...]:
    """The voters, as the leader reports them (a follower's view may lag), waiting up to 20 s
    for ``expected``."""
    async with AsyncClient(cluster.spec.client_addresses, timeout_s=3.0, retries=20) as client:
        async with asyncio.timeout(20):
            while True:
                info = await client.member_list()
                leading = any(m.leader and m.lag_slots == 0 for m in info.members)
                if leading and (expected is None or set(info.voters) == expected):
                    return info.voters
                await client.aclose()  # look for the leader afresh
                await asyncio.sleep(0.1)


def _make(clusters: Clusters, snapshots: bool = True) -> LocalCluster:
    """A new 3-node cluster; ``snapshots=False``: none is taken in a test's run, so a restart
    rebuilds every node from its log alone."""
    base = processes.find_free_base_port(7)
    cluster = LocalCluster.create(clusters.root / "data", 3, base, "always")
    if not snapshots:
        never = {"snapshot_every_slots": 10**6, "log_window_slots": 10**6 + 64}
        cluster.spec = dataclasses.replace(cluster.spec, protocol=cluster.spec.protocol | never)
        write_config(cluster.spec)
    clusters.made.append(cluster)
    return cluster


@pytest.mark.asyncio
@pytest.mark.parametrize("snapshots", [True, False], ids=["snapshots", "no-snapshot"])
async def test_grow_to_five_and_shrink_to_three_under_load(
    clusters: Clusters, snapshots: bool
) -> None:
    """Acknowledged writes survive the changes and a restart of the three that remain; without
    any snapshot, the values the remaining nodes learned but did not vote for come from their
    logs alone (``LearnedRecord``)."""
    cluster = _make(clusters, snapshots)
    leader = await cluster.up(timeout_s=30)
    assert cluster.spec.bootstrapped  # written once the cluster started
    load = Load(cluster)
    await asyncio.sleep(0.5)
    four = await add_local_node(cluster)
    five = await add_local_node(cluster)
    assert (four.id, five.id) == (4, 5)
    assert await _voters(cluster, {1, 2, 3, 4, 5}) == (1, 2, 3, 4, 5)
    await asyncio.sleep(0.5)
    await remove_local_node(cluster, leader.id if leader.id is not None else 1)
    removed_leader = leader.id
    other = next(i for i in (2, 3) if i != removed_leader)
    await remove_local_node(cluster, other)
    await asyncio.sleep(0.5)
    await load.finish()
    expected = {1, 2, 3, 4, 5} - {removed_leader, other}
    remaining = await _voters(cluster, expected)
    assert len(remaining) == 3 and removed_leader not in remaining and other not in remaining
    assert sorted(m.id for m in cluster.spec.members) == sorted(remaining)
    assert len(load.acknowledged) > 50
    await _check(cluster, load.acknowledged)
    cluster.down()  # the grown-and-shrunk cluster restarts from its file
    if not snapshots:  # the variant is only worth its time if no node had saved one
        assert not any((cluster.spec.node_dir(i) / SNAPSHOT_NAME).exists() for i in remaining)
    again = LocalCluster.open(cluster.spec.data_dir)
    clusters.made.append(again)
    await again.up(timeout_s=30)
    await _check(again, load.acknowledged)


@pytest.mark.asyncio
async def test_a_node_whose_directory_was_deleted_is_refused_then_replaced(
    clusters: Clusters,
) -> None:
    cluster = _make(clusters)
    leader = await cluster.up(timeout_s=30)
    load = Load(cluster, writers=2)
    await asyncio.sleep(0.5)
    victim = next(i for i in (1, 2, 3) if i != leader.id)
    cluster.kill(victim, signal.SIGKILL)
    shutil.rmtree(cluster.spec.node_dir(victim))
    command = processes.node_command(cluster.spec, victim)
    refused = subprocess.run(command, capture_output=True, timeout=60)
    assert refused.returncode == 1
    assert b"is empty" in refused.stderr and b"pypaxos member remove" in refused.stderr
    await remove_local_node(cluster, victim)
    new = await add_local_node(cluster)
    await load.finish()
    expected = {1, 2, 3, new.id} - {victim}
    assert set(await _voters(cluster, expected)) == expected
    await _check(cluster, load.acknowledged)


def test_the_cli_grows_and_shrinks(clusters: Clusters) -> None:
    base = processes.find_free_base_port(5)
    data = clusters.root / "cli"
    pypaxos = [sys.executable, "-m", "pypaxos"]
    up = ["cluster", "up", "--data", str(data), "--nodes", "3", "--base-port", str(base)]
    assert subprocess.run([*pypaxos, *up], capture_output=True, timeout=90).returncode == 0
    cluster = clusters.adopt(data)
    added = subprocess.run(
        [*pypaxos, "cluster", "add", "--data", str(data)], capture_output=True, timeout=90
    )
    assert added.returncode == 0, added.stderr
    assert b"node 4 added as a voter" in added.stdout
    listed = subprocess.run(
        [*pypaxos, "member", "list", "--data", str(data), "--json"],
        capture_output=True,
        timeout=60,
    )
    assert listed.returncode == 0 and b'"role": "voter"' in listed.stdout
    refused = subprocess.run(
        [*pypaxos, "member", "promote", "9", "--data", str(data)], capture_output=True, timeout=60
    )
    assert refused.returncode == 1 and b"refused (not-a-learner)" in refused.stderr
    removed = subprocess.run(
        [*pypaxos, "cluster", "remove", "4", "--data", str(data)], capture_output=True, timeout=90
    )
    assert removed.returncode == 0, removed.stderr
    clusters.made.append(LocalCluster.open(data))
    assert [m.id for m in LocalCluster.open(data).spec.members] == [1, 2, 3]
    assert cluster.spec.data_dir == data.resolve()


@pytest.mark.asyncio
async def test_a_tls_cluster_grows_with_a_certificate_for_the_new_node(
    clusters: Clusters,
) -> None:
    base = processes.find_free_base_port(5)
    cluster = LocalCluster.create(clusters.root / "tls", 3, base, "always", tls=True)
    clusters.made.append(cluster)
    await cluster.up(timeout_s=30)
    member = await add_local_node(cluster)  # mutual TLS on the peer port: its own certificate
    assert cluster.spec.tls is not None
    assert (cluster.spec.tls.ca_file.parent / f"node-{member.id}.crt").exists()
    tls = cluster.client_tls()
    async with AsyncClient([member.client], ssl=tls, follow_leader=False, timeout_s=5) as direct:
        async with asyncio.timeout(20):  # its own view: it applies its promotion a bit later
            while member.id not in (await direct.member_list()).voters:  # over TLS
                await asyncio.sleep(0.1)
        await direct.set("through-4", "yes")  # forwarded to the leader over mutual TLS
        assert await direct.get("through-4") == b"yes"
