"""Membership changes on real nodes (``runtime.members_admin``): ``PAXOS.MEMBER`` through the
client, a learner joining and catching up, promotion, removal of the leader, the address book
and the transport following the replicated configuration, refusals as precise errors, and the
data-directory rules (an empty directory of a started cluster, a removed node)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from runtime_helpers import RunningCluster, retry, write_cluster

from pypaxos.client import AsyncClient, CommandError, MembershipRefusedError
from pypaxos.cluster.members import join, recorded
from pypaxos.multi.membership import AddLearner, Configuration, MembershipState, Replace
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.auth import hash_password
from pypaxos.runtime.config import ClusterConfig, load_config
from pypaxos.runtime.identity import RemovedMemberError, WipedMemberError
from pypaxos.runtime.identity import read as read_identity
from pypaxos.runtime.members_admin import (
    MemberBook,
    decode_address,
    encode_address,
    parse_change,
)

GROWN = "initial_members = [1, 2, 3]"


def _config(tmp_path: Path, nodes: int = 4) -> ClusterConfig:
    return load_config(write_cluster(tmp_path, nodes=nodes, extra=GROWN))


async def _start(config: ClusterConfig, ids: tuple[int, ...] = (1, 2, 3)) -> RunningCluster:
    apps = {i: NodeApp(config, i, request_timeout_s=3.0) for i in ids}
    for app in apps.values():
        await app.start()
    running = RunningCluster(apps)
    await running.wait_leader()
    return running


def _client(config: ClusterConfig, ids: tuple[int, ...] = (1, 2, 3)) -> AsyncClient:
    addresses = [config.member(i).client for i in ids]
    return AsyncClient(addresses, timeout_s=3.0, retries=30, backoff_max_s=0.2)


async def _until_changed(action: object, timeout_s: float = 20.0) -> int:
    """Run a change, again while the previous one is not in force or the learner is behind."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await action()  # type: ignore[operator, no-any-return]
            except MembershipRefusedError as refused:
                if refused.reason not in ("change-in-flight", "learner-behind"):
                    raise
            await asyncio.sleep(0.1)


async def _writes(client: AsyncClient, first: int, count: int) -> None:
    for i in range(first, first + count):
        await client.set(f"k{i}", f"v{i}")


@pytest.mark.asyncio
async def test_a_learner_joins_catches_up_is_promoted_and_the_removed_leader_hands_over(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    running = await _start(config)
    client = _client(config)
    try:
        info = await client.member_list()
        assert (info.epoch, info.voters, info.learners) == (0, (1, 2, 3), ())
        assert info.initial_members == (1, 2, 3)
        await _writes(client, 0, 50)
        four = config.member(4)
        epoch = await client.member_add(4, four.peer, four.client)
        assert epoch == 1
        info = await client.member_list()
        assert info.learners == (4,) and info.member(4) is not None
        assert (info.member(4).peer, info.member(4).client) == (four.peer, four.client)  # type: ignore[union-attr]
        joiner = NodeApp(config, 4, request_timeout_s=3.0, joined=recorded(info))
        running.apps[4] = joiner
        await joiner.start()
        await _writes(client, 50, 50)
        epoch = await _until_changed(lambda: client.member_promote(4))
        assert epoch == 2
        await _writes(client, 100, 20)
        async with asyncio.timeout(20):
            while True:
                info = await client.member_list()
                if info.voters == (1, 2, 3, 4) and not info.pending:
                    break
                await _writes(client, 200, 1)
        for node_id, app in running.apps.items():
            assert app.transport is not None and app.book is not None
            assert set(app.transport.peer_ids) == {1, 2, 3, 4} - {node_id}
        assert joiner.info("paxos").count("member_role:voter") == 1
        async with AsyncClient([four.client], follow_leader=False, timeout_s=3) as direct:
            assert await direct.get("k5") == b"v5"  # it has the state from before it joined
        leader = running.leader()
        assert leader is not None
        epoch = await _until_changed(lambda: client.member_remove(leader))
        assert epoch == 3
        async with asyncio.timeout(20):
            while (
                running.apps[leader].removed is False or not running.apps[leader].stopped.is_set()
            ):
                await asyncio.sleep(0.05)
        others = tuple(i for i in (1, 2, 3, 4) if i != leader)
        async with asyncio.timeout(20):
            while running.leader() in (None, leader):
                await asyncio.sleep(0.05)
        after = _client(config, others)
        try:
            await _writes(after, 300, 10)
            assert await after.get("k305") == b"v305"
            info = await after.member_list()
            assert set(info.voters) == set(others) and info.member(leader) is None
        finally:
            await after.aclose()
        identity = read_identity(config.node_dir(leader))
        assert identity is not None and identity.removed
        with pytest.raises(RemovedMemberError):
            await NodeApp(config, leader).start()
        for node_id in others:
            transport = running.apps[node_id].transport
            assert transport is not None and leader not in transport.peer_ids
    finally:
        await client.aclose()
        await running.close()


@pytest.mark.asyncio
async def test_refusals_are_precise_errors(tmp_path: Path) -> None:
    config = _config(tmp_path)
    running = await _start(config)
    client = _client(config)
    try:
        with pytest.raises(MembershipRefusedError) as caught:
            await client.member_add(2, "127.0.0.1:1", "127.0.0.1:2")
        assert caught.value.reason == "already-member"
        with pytest.raises(MembershipRefusedError) as caught:
            await client.member_promote(9)
        assert caught.value.reason == "not-a-learner"
        with pytest.raises(MembershipRefusedError) as caught:
            await client.member_remove(9)
        assert caught.value.reason == "unknown-member"
        with pytest.raises(CommandError) as bad:
            await client.execute("PAXOS.MEMBER", "ADD", "5", "nowhere", "127.0.0.1:2")
        assert "peer address" in str(bad.value)
        with pytest.raises(CommandError):
            await client.execute("PAXOS.MEMBER", "FROB")
        leader = running.leader()
        follower = next(i for i in (1, 2, 3) if i != leader)
        redis = running.client(follower)
        with pytest.raises(Exception, match="not the leader: node") as moved:
            await redis.execute_command("PAXOS.MEMBER", "REMOVE", "9")
        assert config.member(leader).client in str(moved.value)  # type: ignore[arg-type]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.execute_command("PAXOS.MEMBER", "LIST")
            with pytest.raises(Exception, match="not allowed inside a transaction"):
                await pipe.execute()
        four = config.member(4)
        await client.member_add(4, four.peer, four.client)
        with pytest.raises(MembershipRefusedError) as caught:
            await client.member_promote(4)  # never started: it cannot have caught up
        assert caught.value.reason in ("learner-behind", "change-in-flight")
    finally:
        await client.aclose()
        await running.close()


@pytest.mark.asyncio
async def test_an_empty_directory_of_a_started_cluster_does_not_vote(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, nodes=3, extra="bootstrapped = true"))
    with pytest.raises(WipedMemberError) as caught:
        await NodeApp(config, 1).start()
    assert "pypaxos member remove 1" in str(caught.value)
    assert not (config.node_dir(1) / "identity.json").exists()
    app = NodeApp(config, 1, allow_empty_voter=True)  # the explicit, unsafe override
    await app.start()
    await app.stop()
    again = NodeApp(config, 1)  # not empty any more: an ordinary restart
    await again.start()
    await again.stop()


@pytest.mark.asyncio
async def test_a_new_member_without_join_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(Exception, match="--join"):
        await NodeApp(config, 4).start()


@pytest.mark.asyncio
async def test_the_membership_survives_restarts_through_snapshots(tmp_path: Path) -> None:
    extra = f"{GROWN}\n[limits]\nsnapshot_every_slots = 16\nlog_window_slots = 64\n"
    config = load_config(write_cluster(tmp_path, nodes=4, extra=extra))
    running = await _start(config)
    client = _client(config)
    try:
        four = config.member(4)
        await client.member_add(4, four.peer, four.client)
        await _writes(client, 0, 120)  # past several snapshots
        for node_id in (1, 2, 3):  # the snapshots are written by forked children, in time
            driver = running.apps[node_id].driver
            assert driver is not None
            async with asyncio.timeout(30):
                while driver.node.replica.snapshot_slot == 0:
                    await asyncio.sleep(0.05)
        for node_id in (1, 2, 3):
            await running.apps[node_id].stop()
        restarted = {i: NodeApp(config, i, request_timeout_s=3.0) for i in (1, 2, 3)}
        running.apps.update(restarted)
        for app in restarted.values():
            await app.start()
            assert app.driver is not None and app.driver.node.replica.snapshot_slot > 0
            assert app.driver.node.members().latest.learners == (4,)
        await running.wait_leader()
        info = await retry(client.member_list)
        assert info.member(4) is not None and info.member(4).peer == four.peer  # type: ignore[union-attr]
    finally:
        await client.aclose()
        await running.close()


@pytest.mark.asyncio
async def test_only_an_admin_changes_the_membership(tmp_path: Path) -> None:
    users = f"""
[[users]]
name = "admin"
role = "admin"
password_hash = "{hash_password("root pw")}"

[[users]]
name = "writer"
role = "read-write"
password_hash = "{hash_password("write pw")}"
"""
    config = load_config(write_cluster(tmp_path, nodes=1, extra=users))
    app = NodeApp(config, 1)
    await app.start()
    address = [config.member(1).client]
    try:
        async with AsyncClient(address, credentials=("writer", "write pw"), retries=2) as writer:
            await writer.set("k", "v")  # the credentials work
            with pytest.raises(CommandError) as refused:
                await writer.member_list()
            assert refused.value.reply.kind == "NOPERM"
        async with AsyncClient(address, credentials=("admin", "root pw"), retries=20) as admin:
            info = await admin.member_list()
            assert info.voters == (1,)
            assert await admin.member_add(2, "127.0.0.1:1", "127.0.0.1:2") == 1
        async with AsyncClient(address, credentials=("admin", "wrong"), retries=2) as wrong:
            with pytest.raises(CommandError) as denied:
                await wrong.member_list()
            assert denied.value.reply.kind == "WRONGPASS"
    finally:
        await app.stop()


@pytest.mark.asyncio
async def test_a_first_voter_that_lost_its_data_rejoins_under_its_own_id(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, nodes=3, extra="bootstrapped = true"))
    apps = {i: NodeApp(config, i, request_timeout_s=3.0, allow_empty_voter=True) for i in (1, 2, 3)}
    for app in apps.values():
        await app.start()  # the cluster's first start (the file says it has started)
    running = RunningCluster(apps)
    client = _client(config)
    try:
        leader = await running.wait_leader()
        victim = next(i for i in (1, 2, 3) if i != leader)
        await _writes(client, 0, 40)
        await running.apps[victim].stop()
        shutil.rmtree(config.node_dir(victim))
        with pytest.raises(WipedMemberError):
            await NodeApp(config, victim).start()
        await _until_changed(lambda: client.member_remove(victim))
        survivors = tuple(i for i in (1, 2, 3) if i != victim)
        async with _client(config, survivors) as others:
            joined = await join(config, victim, [config.member(i).client for i in survivors])
            reborn = NodeApp(config, victim, request_timeout_s=3.0, joined=joined)
            running.apps[victim] = reborn
            await reborn.start()
            assert reborn.driver is not None
            assert victim not in reborn.driver.node.members().latest.voters  # a learner first
            await _writes(others, 40, 40)
            await _until_changed(lambda: others.member_promote(victim))
            async with asyncio.timeout(20):
                while victim not in reborn.driver.node.members().latest.voters:
                    await _writes(others, 100, 1)
        async with AsyncClient([config.member(victim).client], follow_leader=False) as direct:
            assert await direct.get("k3") == b"v3"  # the state from before it lost its data
    finally:
        await client.aclose()
        await running.close()


def test_address_records_are_checked_before_use() -> None:
    good = encode_address("127.0.0.1:7101", "127.0.0.1:7001")
    decoded = decode_address(good)
    assert decoded is not None and decoded.peer == "127.0.0.1:7101"
    for bad in (b"", b"\xc1", encode_address("no-port", "127.0.0.1:1"), b"\x92\x01\x02"):
        assert decode_address(bad) is None
    assert parse_change((b"ADD", b"4", b"127.0.0.1:1", b"127.0.0.1:2")) == AddLearner(
        4, encode_address("127.0.0.1:1", "127.0.0.1:2")
    )
    assert "node id" in str(parse_change((b"REMOVE", b"-3")))
    assert "node id" in str(parse_change((b"PROMOTE", b"99999999999")))
    assert parse_change((b"REPLACE", b"1", b"4")) == Replace(1, 4)


def test_the_identity_keeps_the_configuration_in_force_not_a_pending_one(tmp_path: Path) -> None:
    """A joiner restarts from its record (``NodeApp._joined_membership``): a promotion decided
    but not yet in force must not make it a voter there, or it would count a quorum of the new
    voters over slots the old ones still hold."""
    config = _config(tmp_path)
    book = MemberBook(config, 4, None)
    learner_in = Configuration(1, (1, 2, 3), (4,))
    promoted = Configuration(2, (1, 2, 3, 4), ())
    pending = MembershipState(learner_in, promoted, pending_from=40)
    assert book.view(pending).voters == (1, 2, 3, 4)  # what LIST and INFO show: the latest
    kept = book.in_force(pending)
    assert (kept.epoch, kept.voters, kept.recorded().epoch) == (1, (1, 2, 3), 1)
    assert [m.voter for m in kept.recorded().members if m.id == 4] == [False]
    in_force = book.in_force(MembershipState(promoted, None, pending_from=40))
    assert (in_force.epoch, in_force.voters) == (2, (1, 2, 3, 4))
