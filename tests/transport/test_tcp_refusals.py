"""What an acceptor tells a node it refuses, and what the node believes of it.

A Hello announcing another peer protocol version is refused, and both ends log both versions.
A node that proved who it is but is in no configuration the acceptor knows hears which
configuration left it out (``RemovalNotice``); the dialling node hands that on only when the
refusal is authenticated (the secret's proof, or TLS) and names its own cluster: forged,
replayed, foreign and unauthenticated refusals are logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

import msgspec
import pytest
import pytest_asyncio
from transport_helpers import CODEC, FAST, Inbox, eventually

from pypaxos.core.messages import Message, Prepare
from pypaxos.core.types import Ballot
from pypaxos.multi.membership import RemovalNotice
from pypaxos.transport.auth import Challenge, new_nonce, refusal_proof
from pypaxos.transport.certs import issue_cluster
from pypaxos.transport.codec import (
    HEADER,
    HEADER_BYTES,
    PROTOCOL_VERSION,
    Hello,
    Refusal,
    RefusalReason,
)
from pypaxos.transport.tcp import NoticeFor, TcpTransport
from pypaxos.transport.tls import TlsContexts, TlsFiles

CLUSTER = "c-refusals"
SECRET = bytes(range(32))
NOTICE = RemovalNotice(4, 6, 130)
LOGGER = "pypaxos.transport.tcp"

# On asyncio's loop and on uvloop's, the one a node runs (conftest.py).
EVENT_LOOPS = ("asyncio", "uvloop")


class Notices:
    """The notices a transport handed on, with the peer that sent each."""

    def __init__(self) -> None:
        self.got: list[tuple[int, RemovalNotice]] = []

    def __call__(self, peer_id: int, notice: RemovalNotice) -> None:
        self.got.append((peer_id, notice))


class Make(Protocol):
    def __call__(
        self,
        node_id: int,
        *,
        members: set[int],
        secret: bytes | None = ...,
        notice_for: NoticeFor | None = ...,
        protocol_version: int = ...,
        tls: TlsContexts | None = ...,
        cluster_id: str = ...,
    ) -> Awaitable[tuple[TcpTransport[Message], Inbox, Notices]]: ...


@pytest_asyncio.fixture
async def make() -> AsyncIterator[Make]:
    made: list[TcpTransport[Message]] = []

    async def build(
        node_id: int,
        *,
        members: set[int],
        secret: bytes | None = None,
        notice_for: NoticeFor | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        tls: TlsContexts | None = None,
        cluster_id: str = CLUSTER,
    ) -> tuple[TcpTransport[Message], Inbox, Notices]:
        inbox, notices = Inbox(), Notices()
        transport = TcpTransport(
            node_id,
            "127.0.0.1:0",
            {},
            CODEC,
            inbox.deliver,
            config=FAST,
            cluster_id=cluster_id,
            members=members,
            secret=secret,
            tls=tls,
            notice_for=notice_for,
            on_notice=notices,
            protocol_version=protocol_version,
        )
        made.append(transport)
        await transport.start()
        return transport, inbox, notices

    yield build
    for transport in made:
        await transport.close()


def _removed(node_id: int) -> RemovalNotice | None:
    return NOTICE if node_id == NOTICE.node_id else None


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


# -- the protocol version -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_peer_of_another_protocol_version_is_refused_and_both_ends_say_so(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    newer, _, _ = await make(1, members={1, 2}, protocol_version=PROTOCOL_VERSION + 1)
    node, inbox, _ = await make(2, members={1, 2})
    newer.set_peer(2, node.listen_address)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        newer.send(2, Prepare(1, Ballot(1, 1)))
        await eventually(lambda: newer.peer_stats(2).disconnects >= 1)
    assert inbox.messages == []
    theirs, ours = PROTOCOL_VERSION + 1, PROTOCOL_VERSION
    acceptor = f"node 1 speaks peer protocol version {theirs}, this node speaks {ours}"
    dialler = f"it speaks peer protocol version {ours}, this node speaks {theirs}"
    logged = _messages(caplog)
    assert any("node 2:" in m and acceptor in m for m in logged), logged
    assert any("node 1: node 2 at" in m and dialler in m for m in logged), logged
    errors = [r for r in caplog.records if dialler in r.getMessage()]
    assert errors and all(r.levelno == logging.ERROR for r in errors)


@pytest.mark.asyncio
async def test_a_peer_of_the_same_version_is_accepted(make: Make) -> None:
    a, _, _ = await make(1, members={1, 2})
    b, inbox, _ = await make(2, members={1, 2})
    a.set_peer(2, b.listen_address)
    a.send(2, Prepare(1, Ballot(1, 1)))
    await eventually(lambda: inbox.messages == [Prepare(1, Ballot(1, 1))])
    assert b.inbound_stats.protocol_errors == 0


async def _hello_and_answer(transport: TcpTransport[Message], hello: Hello) -> Refusal | None:
    """Dial by hand, send ``hello``; the refusal the acceptor answers, ``None`` if none."""
    host, port = transport.listen_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(CODEC.encode_hello(hello))
        async with asyncio.timeout(5):
            header = await reader.read(HEADER_BYTES)
            if not header:
                return None
            length, _ = HEADER.unpack(header)
            return CODEC.decode_refusal(await reader.readexactly(length - 1))
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_a_hello_from_before_versions_is_refused_as_version_1(make: Make) -> None:
    node, inbox, _ = await make(2, members={1, 2})
    old = msgspec.msgpack.encode({"type": "transport.Hello", "node_id": 1, "cluster_id": CLUSTER})
    assert CODEC.decode_hello(old).protocol == 1
    refusal = await _hello_and_answer(node, CODEC.decode_hello(old))
    assert refusal == Refusal(2, RefusalReason.VERSION.value, PROTOCOL_VERSION)
    assert refusal.notice is None and refusal.cluster_id is None  # a stranger learns no more
    assert inbox.messages == []


# -- removal notices --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_removed_node_hears_an_authenticated_notice(make: Make) -> None:
    peer, _, _ = await make(1, members={1, 2, 3}, secret=SECRET, notice_for=_removed)
    removed, _, notices = await make(4, members={1, 2, 3, 4}, secret=SECRET)
    removed.set_peer(1, peer.listen_address)
    removed.send(1, Prepare(4, Ballot(2, 4)))
    await eventually(lambda: notices.got != [])
    assert notices.got[0] == (1, NOTICE)


@pytest.mark.asyncio
async def test_a_notice_without_a_secret_or_tls_is_ignored(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    peer, _, _ = await make(1, members={1, 2, 3}, notice_for=_removed)
    removed, _, notices = await make(4, members={1, 2, 3, 4})
    removed.set_peer(1, peer.listen_address)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        removed.send(1, Prepare(4, Ballot(2, 4)))
        await eventually(lambda: removed.peer_stats(1).disconnects >= 1)
    assert notices.got == []
    assert any("ignored: the link is not authenticated" in m for m in _messages(caplog))


@pytest.mark.asyncio
async def test_a_member_hears_no_notice(make: Make) -> None:
    peer, inbox, _ = await make(1, members={1, 2, 3}, secret=SECRET, notice_for=_removed)
    member, _, notices = await make(2, members={1, 2, 3}, secret=SECRET)
    member.set_peer(1, peer.listen_address)
    member.send(1, Prepare(2, Ballot(2, 2)))
    await eventually(lambda: inbox.messages == [Prepare(2, Ballot(2, 2))])
    assert notices.got == []


@pytest.mark.asyncio
async def test_a_node_with_the_wrong_secret_learns_nothing(make: Make) -> None:
    peer, _, _ = await make(1, members={1, 2, 3}, secret=SECRET, notice_for=_removed)
    stranger, _, notices = await make(4, members={1, 4}, secret=b"s" * 32)
    stranger.set_peer(1, peer.listen_address)
    stranger.send(1, Prepare(4, Ballot(2, 4)))
    await eventually(lambda: peer.inbound_stats.protocol_errors >= 1)
    await eventually(lambda: stranger.peer_stats(1).disconnects >= 1)
    assert notices.got == []


ForgeRefusal = Callable[[Hello], Refusal]


async def _fake_acceptor(forge: ForgeRefusal) -> tuple[asyncio.Server, str]:
    """An acceptor that challenges, reads the Hello and answers ``forge(hello)``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        payload = msgspec.msgpack.encode(Challenge(new_nonce()))
        writer.write(HEADER.pack(len(payload) + 1, 1) + payload)
        length, _ = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
        hello = CODEC.decode_hello(await reader.readexactly(length - 1))
        writer.write(CODEC.encode_refusal(forge(hello)))
        await writer.drain()
        await reader.read()  # until the dialling node hangs up
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}"


def _signed(
    secret: bytes, cluster_id: str, notice: RemovalNotice, nonce: bytes | None = None
) -> ForgeRefusal:
    def forge(hello: Hello) -> Refusal:
        refusal = Refusal(1, RefusalReason.NOT_MEMBER.value, PROTOCOL_VERSION, cluster_id, notice)
        used = nonce if nonce is not None else hello.nonce
        assert used is not None
        body = CODEC.encode_refusal(refusal)
        proof = refusal_proof(secret, cluster_id, 1, hello.node_id, used, body)
        return msgspec.structs.replace(refusal, proof=proof)

    return forge


FORGERIES = {
    "genuine": (_signed(SECRET, CLUSTER, NOTICE), None),
    "wrong secret": (_signed(b"w" * 32, CLUSTER, NOTICE), "its proof does not match"),
    "replayed": (_signed(SECRET, CLUSTER, NOTICE, nonce=b"n" * 32), "its proof does not match"),
    "other cluster": (_signed(SECRET, "elsewhere", NOTICE), "it names another cluster"),
    "no proof": (
        lambda hello: Refusal(1, RefusalReason.NOT_MEMBER.value, PROTOCOL_VERSION, CLUSTER, NOTICE),
        "its proof does not match",
    ),
    "altered after signing": (
        lambda hello: msgspec.structs.replace(
            _signed(SECRET, CLUSTER, NOTICE)(hello), notice=RemovalNotice(4, 99, 1)
        ),
        "its proof does not match",
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(FORGERIES))
async def test_only_a_genuine_refusal_is_handed_on(
    case: str, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    forge, complaint = FORGERIES[case]
    server, address = await _fake_acceptor(forge)
    try:
        removed, _, notices = await make(4, members={1, 4}, secret=SECRET)
        removed.set_peer(1, address)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            removed.send(1, Prepare(4, Ballot(2, 4)))
            await eventually(lambda: removed.peer_stats(1).disconnects >= 1)
        if complaint is None:
            assert notices.got == [(1, NOTICE)]
        else:
            assert notices.got == []
            assert any(f"ignored: {complaint}" in m for m in _messages(caplog)), _messages(caplog)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_over_tls_the_certificate_authenticates_the_notice(
    make: Make, tmp_path: Path
) -> None:
    issue_cluster(tmp_path, [(i, ["127.0.0.1"]) for i in (1, 4)])

    def tls(node_id: int) -> TlsContexts:
        key = tmp_path / f"node-{node_id}"
        return TlsContexts(
            TlsFiles(tmp_path / "ca.crt", key.with_suffix(".crt"), key.with_suffix(".key"))
        )

    peer, _, _ = await make(1, members={1, 2, 3}, notice_for=_removed, tls=tls(1))
    removed, _, notices = await make(4, members={1, 4}, tls=tls(4))
    removed.set_peer(1, peer.listen_address)
    removed.send(1, Prepare(4, Ballot(2, 4)))
    await eventually(lambda: notices.got != [])
    assert notices.got[0] == (1, NOTICE)


@pytest.mark.asyncio
async def test_an_acceptor_that_answers_anything_else_is_left(make: Make) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(HEADER_BYTES)
        writer.write(CODEC.encode_hello(Hello(1, CLUSTER, protocol=PROTOCOL_VERSION)))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        node, _, notices = await make(4, members={1, 4})
        node.set_peer(1, f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        node.send(1, Prepare(4, Ballot(2, 4)))
        await eventually(lambda: node.peer_stats(1).disconnects >= 1)
        assert notices.got == []
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_a_node_refused_again_and_again_is_warned_about_once(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    node, _, _ = await make(2, members={1, 2})
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for _ in range(3):
            await _hello_and_answer(node, Hello(99, CLUSTER, protocol=PROTOCOL_VERSION))
        await _hello_and_answer(node, Hello(98, CLUSTER, protocol=PROTOCOL_VERSION))
        await eventually(lambda: node.inbound_stats.protocol_errors == 4)
    refusals = [r for r in caplog.records if "closing inbound connection" in r.getMessage()]
    warned = [r.getMessage() for r in refusals if r.levelno == logging.WARNING]
    assert len(refusals) == 4 and len(warned) == 2  # node 99 once, node 98 once
    assert any("node 99 is not a member" in m for m in warned)
    assert any("node 98 is not a member" in m for m in warned)
