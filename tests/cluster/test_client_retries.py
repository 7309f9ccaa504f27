"""``pypaxos.client`` against scripted fake nodes: sessions, retries, leader discovery, errors.

The fake (``fake_resp_server``) applies a command and then loses the reply, stalls, or answers
TRYAGAIN, which is exactly where a careless client applies a write twice.  The real-node
versions of these checks are in test_cluster_client_real.py.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fake_resp_server import FakeNode

from pypaxos.client import (
    AsyncClient,
    Client,
    CommandError,
    OutcomeUnknownError,
    SessionExpiredError,
    UnavailableError,
)


@pytest_asyncio.fixture
async def nodes() -> AsyncIterator[list[FakeNode]]:
    made = [FakeNode(node_id=i + 1) for i in range(2)]
    for node in made:
        await node.start()
    yield made
    for node in made:
        await node.stop()


def sessions(node: FakeNode) -> list[tuple[bytes, bytes, bytes]]:
    return [(c[1], c[2], c[3]) for c in node.received if c[0] == b"PAXOS.REQ"]


@pytest.mark.asyncio
async def test_a_lost_reply_is_retried_with_the_same_pair_and_applied_once(
    nodes: list[FakeNode],
) -> None:
    node = nodes[0]
    async with AsyncClient([node.address], timeout_s=1.0, rng=random.Random(1)) as client:
        node.faults = ["drop"]
        assert await client.incr("counter") == 1
        assert await client.incr("counter") == 2
    pairs = sessions(node)
    cid = str(client.client_id).encode()
    assert pairs == [(cid, b"1", b"INCR"), (cid, b"1", b"INCR"), (cid, b"2", b"INCR")]
    assert node.applied == 2 and node.store[b"counter"] == b"2"


@pytest.mark.asyncio
async def test_tryagain_and_timeouts_reuse_the_pair(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    async with AsyncClient(
        [node.address], timeout_s=0.3, backoff_s=0.01, rng=random.Random(2)
    ) as client:
        node.faults = ["tryagain", "stall", "tryagain"]
        await client.set("k", "v")
        assert client.seq == 1
    assert {seq for _, seq, _ in sessions(node)} == {b"1"}
    assert len(sessions(node)) == 4 and node.applied == 1


@pytest.mark.asyncio
async def test_after_session_expired_the_client_goes_on_under_a_fresh_id(
    nodes: list[FakeNode],
) -> None:
    """The cluster refuses an expired id for good, so the client must not reuse it."""
    node = nodes[0]
    async with AsyncClient([node.address], timeout_s=1.0, rng=random.Random(3)) as client:
        old_id = client.client_id
        node.faults = ["expired"]
        with pytest.raises(SessionExpiredError):
            await client.incr("counter")
        assert client.client_id != old_id and client.seq == 0
        assert await client.incr("counter") == 1
    new_id = str(client.client_id).encode()
    assert sessions(node)[-1] == (new_id, b"1", b"INCR")


@pytest.mark.asyncio
async def test_client_id_comes_from_the_injected_random(nodes: list[FakeNode]) -> None:
    one = AsyncClient([nodes[0].address], rng=random.Random(5))
    two = AsyncClient([nodes[0].address], rng=random.Random(5))
    assert one.client_id == two.client_id
    assert 1 <= one.client_id < 2**63


@pytest.mark.asyncio
async def test_it_talks_to_the_leader_named_by_info(nodes: list[FakeNode]) -> None:
    follower, leader = nodes
    follower.leader_client = leader.address
    async with AsyncClient([follower.address, leader.address]) as client:
        await client.set("k", "v")
        assert client.connected_to == leader.address
    assert sessions(follower) == [] and leader.store == {b"k": b"v"}


@pytest.mark.asyncio
async def test_a_dead_leader_in_info_falls_back_to_the_node_that_answered(
    nodes: list[FakeNode],
) -> None:
    node = nodes[0]
    node.leader_client = f"127.0.0.1:{closed_port()}"
    async with AsyncClient([node.address], timeout_s=0.5) as client:
        await client.set("k", "v")
        assert client.connected_to == node.address


@pytest.mark.asyncio
async def test_no_answer_after_the_last_retry_is_outcome_unknown(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    node.faults = ["stall"] * 3
    async with AsyncClient([node.address], timeout_s=0.2, retries=2, backoff_s=0.01) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.set("k", "v")
        # The write did apply (once) on the server: "unknown" was the honest answer.
        assert node.applied == 1
        node.faults = []
        await client.set("k2", "v2")
        assert client.seq == 2


@pytest.mark.asyncio
async def test_only_definite_refusals_make_it_unavailable(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    async with AsyncClient([node.address], retries=2, backoff_s=0.01) as client:
        node.faults = ["tryagain"] * 3  # the request never left the node: not applied
        with pytest.raises(UnavailableError):
            await client.set("k", "v")
        node.faults = ["tryagain", "tryagain-unknown", "tryagain"]
        with pytest.raises(OutcomeUnknownError):
            await client.set("k", "v")
    assert node.applied == 0


@pytest.mark.asyncio
async def test_deleting_several_keys_is_one_session_request_per_key(
    nodes: list[FakeNode],
) -> None:
    node = nodes[0]
    node.store = {b"a": b"1", b"c": b"3"}
    async with AsyncClient([node.address]) as client:
        assert await client.delete("a", "b", "c") == 2
        assert client.seq == 3
    assert [command for _, _, command in sessions(node)] == [b"DEL"] * 3


@pytest.mark.asyncio
async def test_no_reachable_server_is_unavailable() -> None:
    async with AsyncClient([f"127.0.0.1:{closed_port()}"], retries=2, backoff_s=0.01) as client:
        with pytest.raises(UnavailableError):
            await client.set("k", "v")


@pytest.mark.asyncio
async def test_a_server_error_is_a_command_error(nodes: list[FakeNode]) -> None:
    async with AsyncClient([nodes[0].address]) as client:
        with pytest.raises(CommandError) as caught:
            await client.execute("NOPE")
        assert caught.value.reply.kind == "ERR"


@pytest.mark.asyncio
async def test_concurrent_calls_on_one_client_run_one_at_a_time(nodes: list[FakeNode]) -> None:
    async with AsyncClient([nodes[0].address]) as client:
        results = await asyncio.gather(*(client.incr("n") for _ in range(20)))
    assert sorted(results) == list(range(1, 21))
    assert [int(seq) for _, seq, _ in sessions(nodes[0])] == list(range(1, 21))


def test_the_blocking_client() -> None:
    """``Client`` from plain code, with the fake node served by a loop in another thread."""
    node = FakeNode()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(node.start(), loop).result(5)
    try:
        with Client([node.address]) as client:
            assert client.ping()
            client.set("a", "1")
            assert client.incr("a") == 2
            assert client.get("a") == b"2"
            assert client.mget("a", "missing") == [b"2", None]
            assert client.exists("a", "missing") == 1
            assert client.delete("a") == 1
    finally:
        asyncio.run_coroutine_threadsafe(node.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
