"""Joining a running cluster: what ``pypaxos node --join`` does before the node starts.

A new member is described in its own ``cluster.toml`` like any other (a ``[[members]]`` entry
with its addresses), with ``initial_members`` naming the cluster's first voters so that it is
not one of them.  ``join`` asks the running cluster (any node's client port; the client follows
the leader) for its membership, adds the node as a learner with its advertised addresses
unless it is one already (an operator may have run ``pypaxos member add`` first), and returns
the membership it was added to: the node records it (``identity.json``) and starts as a
learner with an empty data directory, catching up by snapshot and log.  Promote it once it is
caught up (``pypaxos member promote``).

A first voter that lost its data rejoins the same way, under its own id, once it was removed:
the node starts from the configuration it was added to (``NodeApp._joined_membership``), never
from the first one that lists it as a voter.  Refused (``JoinError``, nothing changed): a
cluster whose first configuration differs from the file's, a node the cluster has as a voter
(a voter that lost its data must be removed first), or a learner of that id with other
addresses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Collection
from ssl import SSLContext

from pypaxos.client import AsyncClient, MembershipInfo, MembershipRefusedError
from pypaxos.cluster import config as config_layout
from pypaxos.cluster import processes
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.runtime.config import ClusterConfig, Member, write_config
from pypaxos.runtime.identity import RecordedMember, RecordedMembership
from pypaxos.transport.certs import CertError, issue_cluster

JOIN_TIMEOUT_S = 5.0
JOIN_RETRIES = 20


class JoinError(Exception):
    """The node cannot join the cluster as asked; the message says why and what to do."""


async def join(
    config: ClusterConfig,
    node_id: int,
    endpoints: list[str],
    *,
    tls: SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
) -> RecordedMembership:
    """Add node ``node_id`` (its addresses from ``config``) to the cluster at ``endpoints`` as
    a learner, if it is not one already; the membership it is a learner of."""
    me = config.member(node_id)
    client = AsyncClient(
        endpoints,
        ssl=tls,
        credentials=credentials,
        timeout_s=JOIN_TIMEOUT_S,
        retries=JOIN_RETRIES,
    )
    async with client:
        info = await client.member_list()
        if info.initial_members != config.genesis_voters:
            raise JoinError(
                f"the cluster's first voters are {list(info.initial_members)}, this file's "
                f"{list(config.genesis_voters)}: set initial_members to the cluster's"
            )
        existing = info.member(node_id)
        if existing is None:
            await client.member_add(node_id, me.peer, me.client)
            info = await client.member_list()
        elif existing.role == "voter":
            raise JoinError(
                f"node {node_id} is a voter of the cluster: if it lost its data, remove it "
                f"first (`pypaxos member remove {node_id}`), or give the new node another id"
            )
        elif existing.peer and (existing.peer, existing.client) != (me.peer, me.client):
            raise JoinError(
                f"node {node_id} is a learner at peer {existing.peer}, client "
                f"{existing.client}, not {me.peer}, {me.client}: remove it and join again"
            )
    if info.member(node_id) is None:
        raise JoinError(f"node {node_id} was added but the cluster's membership lacks it")
    return recorded(info)


def recorded(info: MembershipInfo) -> RecordedMembership:
    members = tuple(RecordedMember(m.id, m.role == "voter", m.peer, m.client) for m in info.members)
    return RecordedMembership(info.epoch, members)


# -- growing and shrinking a local cluster (``pypaxos cluster add`` / ``cluster remove``) ---------

CHANGE_TIMEOUT_S = 60.0
CHANGE_RETRY_S = 0.2
STOP_TIMEOUT_S = 15.0


def local_client(cluster: LocalCluster, exclude: Collection[int] = ()) -> AsyncClient:
    """A client of the local cluster's members (TLS with the file's client certificate)."""
    addresses = [m.client for m in cluster.spec.members if m.id not in exclude]
    return AsyncClient(
        addresses, ssl=cluster.client_tls(), timeout_s=JOIN_TIMEOUT_S, retries=JOIN_RETRIES
    )


async def retry_change(change: Callable[[], Awaitable[int]], timeout_s: float) -> int:
    """``change()`` again while the cluster answers that the previous change is not in force
    yet or the learner is still behind (both pass by themselves)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await change()
        except MembershipRefusedError as refused:
            if refused.reason not in ("change-in-flight", "learner-behind"):
                raise
            if time.monotonic() > deadline:
                raise ClusterError(f"gave up after {timeout_s:g}s: {refused.detail}") from None
        await asyncio.sleep(CHANGE_RETRY_S)


async def add_local_node(cluster: LocalCluster, *, promote: bool = True) -> Member:
    """Grow the local cluster by one node: plan its addresses (the next id, on the file's port
    blocks), issue its certificate when the peer port speaks TLS, list it in ``cluster.toml``
    (with ``initial_members``), add it as a learner, start it with ``--join`` and, once it has
    caught up, promote it (unless ``promote`` is false: it stays a learner)."""
    spec = cluster.spec
    async with local_client(cluster) as client:
        info = await client.member_list()
    used_dirs = [p.name.removeprefix("node-") for p in spec.data_dir.glob("node-*")]
    taken = {*spec.member_ids, *spec.genesis_voters, *(m.id for m in info.members)}
    taken |= {int(i) for i in used_dirs if i.isdigit()}  # a removed node's directory stays
    node_id = max(taken) + 1
    base = min(int(m.client.rpartition(":")[2]) - m.id + 1 for m in spec.members)
    if node_id > config_layout.NODES_MAX:
        raise ClusterError(f"node ids stop at {config_layout.NODES_MAX} (the port blocks)")
    member = Member(
        id=node_id,
        client=f"{config_layout.HOST}:{base + node_id - 1}",
        peer=f"{config_layout.HOST}:{base + config_layout.PEER_PORT_OFFSET + node_id - 1}",
        metrics=f"{config_layout.HOST}:{base + config_layout.METRICS_PORT_OFFSET + node_id - 1}",
    )
    for host, port in member.ports():
        if processes.port_in_use(host, port):
            raise ClusterError(f"port {host}:{port} for node {node_id} is in use")
    grown = dataclasses.replace(
        spec, members=(*spec.members, member), initial_members=spec.genesis_voters
    )
    if spec.tls is not None:
        directory = spec.tls.ca_file.parent
        hosts = [(node_id, [config_layout.HOST])]
        try:
            issue_cluster(directory, hosts, client=False, renew=True)
        except CertError as error:
            raise ClusterError(f"cannot issue node {node_id}'s certificate: {error}") from None
    write_config(grown)
    cluster.spec = grown
    async with local_client(cluster, exclude=(node_id,)) as client:
        await retry_change(
            lambda: client.member_add(node_id, member.peer, member.client), CHANGE_TIMEOUT_S
        )
    endpoints = ",".join(m.client for m in spec.members)
    process = cluster.start_node(node_id, extra=["--join", endpoints])
    if promote:
        async with local_client(cluster, exclude=(node_id,)) as client:
            try:
                await retry_change(lambda: client.member_promote(node_id), CHANGE_TIMEOUT_S)
            except ClusterError:
                if process.poll() is not None:
                    raise ClusterError(cluster.exited_message(process)) from None
                raise
    return member


async def remove_local_node(cluster: LocalCluster, node_id: int) -> None:
    """Shrink the local cluster: remove node ``node_id`` from the membership, wait for it to
    stop (it does by itself; terminated after ``STOP_TIMEOUT_S``), and take it out of
    ``cluster.toml`` (``initial_members`` keeps the first voters; its directory stays, marked
    removed)."""
    spec = cluster.spec
    spec.member(node_id)
    async with local_client(cluster, exclude=(node_id,)) as client:
        await retry_change(lambda: client.member_remove(node_id), CHANGE_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while processes.node_pids(spec, node_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    processes.stop_pids(processes.node_pids(spec, node_id), timeout_s=5.0)
    process = cluster.started.pop(node_id, None)
    if process is not None:
        process.wait()
    processes.remove_stale_pid_files(spec, node_id)
    shrunk = dataclasses.replace(
        spec,
        members=tuple(m for m in spec.members if m.id != node_id),
        initial_members=spec.genesis_voters,
    )
    write_config(shrunk)
    cluster.spec = shrunk
