"""Who may talk to a node: members only, and with a cluster secret only those who prove it."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
from transport_helpers import CODEC, MakeTransport, connect_all, eventually

from pypaxos.core.messages import Prepare
from pypaxos.core.types import Ballot
from pypaxos.transport.auth import (
    Challenge,
    SecretError,
    hello_proof,
    read_secret,
    write_secret,
)
from pypaxos.transport.codec import HEADER, HEADER_BYTES, PROTOCOL_VERSION, Hello
from pypaxos.transport.tcp import TcpTransport

CLUSTER = "c-1"
SECRET = bytes(range(32))


async def _rejected(
    transport: TcpTransport[Any], hello: Hello | None, *, answer_challenge: bool = False
) -> tuple[bool, bytes | None]:
    """Dial ``transport`` by hand; send ``hello`` (or a proof-bearing one built from the
    challenge); True if it hung up.  Also returns the challenge nonce it sent, if any."""
    host, port = transport.listen_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    nonce = None
    try:
        if answer_challenge:
            length, _ = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
            payload = await reader.readexactly(length - 1)
            nonce = msgspec.msgpack.decode(payload, type=Challenge).nonce
            proof = hello_proof(SECRET, CLUSTER, 7, 2, nonce)
            hello = Hello(7, CLUSTER, proof, PROTOCOL_VERSION)
        assert hello is not None
        writer.write(CODEC.encode_hello(hello) + CODEC.encode_frame(Prepare(7, Ballot(1, 7))))
        async with asyncio.timeout(5):
            while data := await reader.read(4096):
                del data  # the challenge, when there is one; then EOF if rejected
        return True, nonce
    except TimeoutError:
        return False, nonce
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_a_node_that_is_not_a_member_is_refused(
    make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    node, inbox = await make_transport(2, cluster_id=CLUSTER, members={1, 2, 3})
    with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
        hung_up, _ = await _rejected(node, Hello(99, CLUSTER, protocol=PROTOCOL_VERSION))
    assert hung_up and inbox.messages == []
    assert any("node 99 is not a member" in r.getMessage() for r in caplog.records)
    assert not any(CLUSTER in r.getMessage() for r in caplog.records)  # never logs the id


@pytest.mark.asyncio
async def test_members_with_the_secret_exchange_messages(make_transport: MakeTransport) -> None:
    a, _ = await make_transport(1, cluster_id=CLUSTER, members={1, 2}, secret=SECRET)
    b, inbox_b = await make_transport(2, cluster_id=CLUSTER, members={1, 2}, secret=SECRET)
    connect_all([a, b])
    a.send(2, Prepare(1, Ballot(3, 1)))
    await eventually(lambda: inbox_b.messages == [Prepare(1, Ballot(3, 1))])


@pytest.mark.asyncio
async def test_a_member_with_another_secret_is_refused(make_transport: MakeTransport) -> None:
    a, _ = await make_transport(1, cluster_id=CLUSTER, members={1, 2}, secret=b"x" * 32)
    b, inbox_b = await make_transport(2, cluster_id=CLUSTER, members={1, 2}, secret=SECRET)
    connect_all([a, b])
    a.send(2, Prepare(1, Ballot(3, 1)))
    await asyncio.sleep(0.5)
    assert inbox_b.messages == []
    assert b.inbound_stats.protocol_errors >= 1


@pytest.mark.asyncio
async def test_a_hello_without_proof_or_replayed_is_refused(
    make_transport: MakeTransport,
) -> None:
    node, inbox = await make_transport(2, cluster_id=CLUSTER, members={2, 7}, secret=SECRET)
    hung_up, _ = await _rejected(node, Hello(7, CLUSTER, protocol=PROTOCOL_VERSION))
    assert hung_up
    # A proof made for one connection's challenge is worthless on the next one.
    hung_up, nonce = await _rejected(node, None, answer_challenge=True)
    assert not hung_up and nonce is not None
    await eventually(lambda: len(inbox.messages) == 1)
    replay = Hello(7, CLUSTER, hello_proof(SECRET, CLUSTER, 7, 2, nonce), PROTOCOL_VERSION)
    hung_up, _ = await _rejected(node, replay)
    assert hung_up and len(inbox.messages) == 1


def test_a_secret_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "peer.secret"
    secret = write_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(path) == secret
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="readable by others"):
        read_secret(path)
    os.chmod(path, 0o600)
    path.write_text("ab" * 8)
    with pytest.raises(SecretError, match="at least 32"):
        read_secret(path)


@pytest.mark.asyncio
async def test_a_node_removed_from_the_members_is_cut_off_and_not_dialled(
    make_transport: MakeTransport,
) -> None:
    a, inbox_a = await make_transport(1, cluster_id=CLUSTER, members={1, 2}, secret=SECRET)
    b, _ = await make_transport(2, cluster_id=CLUSTER, members={1, 2}, secret=SECRET)
    connect_all([a, b])
    b.send(1, Prepare(2, Ballot(3, 2)))
    await eventually(lambda: inbox_a.messages == [Prepare(2, Ballot(3, 2))])
    a.set_members({1, 3})  # a reconfiguration left node 2 out
    a.remove_peer(2)
    assert a.peer_ids == ()
    async with asyncio.timeout(10):  # its connection was closed; it redials and is refused
        while a.inbound_stats.protocol_errors < 2:
            b.send(1, Prepare(2, Ballot(4, 2)))
            await asyncio.sleep(0.05)
    assert inbox_a.messages == [Prepare(2, Ballot(3, 2))]
    a.set_members({1, 2})  # added back: accepted again, with the secret as before
    async with asyncio.timeout(10):
        while len(inbox_a.messages) == 1:
            b.send(1, Prepare(2, Ballot(5, 2)))  # the queue may have dropped into the refusals
            await asyncio.sleep(0.1)
    assert inbox_a.messages[-1] in (Prepare(2, Ballot(4, 2)), Prepare(2, Ballot(5, 2)))
