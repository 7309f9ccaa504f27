"""Mutual TLS on the peer port: only a certificate from the cluster's CA that names the node
its Hello claims gets a message through, in either direction, with or without a secret."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from transport_helpers import CODEC, MakeTransport, connect_all, eventually

from pypaxos.core.messages import Prepare
from pypaxos.core.types import Ballot
from pypaxos.transport.certs import issue_cluster
from pypaxos.transport.codec import PROTOCOL_VERSION, Hello
from pypaxos.transport.tcp import TcpTransport
from pypaxos.transport.tls import TlsContexts, TlsFiles, client_context, node_ids_named

CLUSTER = "c-tls"


# Every test here on asyncio's loop and on uvloop's (the one a node runs): their TLS code
# differs (conftest.py: pytest_asyncio_loop_factories).
EVENT_LOOPS = ("asyncio", "uvloop")


HOSTS = ["127.0.0.1"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    issue_cluster(directory, [(i, HOSTS) for i in (1, 2, 3)])
    return directory


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates for the same node ids from another CA."""
    directory = tmp_path_factory.mktemp("other")
    issue_cluster(directory, [(i, HOSTS) for i in (1, 2, 3)])
    return directory


def contexts(directory: Path, node_id: int, ca_dir: Path | None = None) -> TlsContexts:
    ca = (ca_dir or directory) / "ca.crt"
    return TlsContexts(
        TlsFiles(ca, directory / f"node-{node_id}.crt", directory / f"node-{node_id}.key")
    )


async def _send_hello(
    transport: TcpTransport[object], context: ssl.SSLContext, hello: Hello
) -> tuple[bool, frozenset[int]]:
    """Dial ``transport`` over TLS, send ``hello`` and a message; True if it hung up (or the
    handshake failed), and the node ids its certificate named."""
    host, port = transport.listen_address.rsplit(":", 1)
    try:
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
    except (ssl.SSLError, ConnectionError):
        return True, frozenset()
    named = node_ids_named(writer.get_extra_info("peercert"))
    try:
        writer.write(CODEC.encode_hello(hello) + CODEC.encode_frame(Prepare(3, Ballot(1, 3))))
        async with asyncio.timeout(5):
            while await reader.read(4096):
                pass
        return True, named
    except (ssl.SSLError, ConnectionError):
        return True, named
    except TimeoutError:
        return False, named
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_members_with_certificates_exchange_messages_over_tls_1_3(
    make_transport: MakeTransport, certs: Path
) -> None:
    a, inbox_a = await make_transport(1, cluster_id=CLUSTER, tls=contexts(certs, 1))
    b, inbox_b = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2))
    connect_all([a, b])
    a.send(2, Prepare(1, Ballot(3, 1)))
    b.send(1, Prepare(2, Ballot(4, 2)))
    await eventually(lambda: inbox_b.messages == [Prepare(1, Ballot(3, 1))])
    await eventually(lambda: inbox_a.messages == [Prepare(2, Ballot(4, 2))])
    writer = a._peers[2].writer
    assert writer is not None
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"


@pytest.mark.asyncio
async def test_tls_and_a_secret_together(make_transport: MakeTransport, certs: Path) -> None:
    secret = bytes(range(32))
    a, _ = await make_transport(1, cluster_id=CLUSTER, tls=contexts(certs, 1), secret=secret)
    b, inbox = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2), secret=secret)
    connect_all([a, b])
    a.send(2, Prepare(1, Ballot(3, 1)))
    await eventually(lambda: inbox.messages == [Prepare(1, Ballot(3, 1))])


@pytest.mark.asyncio
async def test_a_peer_whose_certificate_names_another_node_is_refused(
    make_transport: MakeTransport, certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, inbox = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2))
    # Node 1's certificate and key, claiming to be node 3 (a member).
    stolen = contexts(certs, 1).peer_client
    with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
        hung_up, _ = await _send_hello(b, stolen, Hello(3, CLUSTER, protocol=PROTOCOL_VERSION))
    assert hung_up and inbox.messages == []
    assert b.inbound_stats.protocol_errors == 1
    assert any(
        "HandshakeRejected" in r.getMessage()
        and "claims node 3; its certificate names node 1" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.asyncio
async def test_the_same_connection_with_a_matching_hello_gets_through(
    make_transport: MakeTransport, certs: Path
) -> None:
    """The control for the test above: the hand-made dial itself is not what fails."""
    b, inbox = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2))
    hung_up, named = await _send_hello(
        b, contexts(certs, 3).peer_client, Hello(3, CLUSTER, protocol=PROTOCOL_VERSION)
    )
    assert not hung_up and named == {2}
    assert inbox.messages == [Prepare(3, Ballot(1, 3))]


def _tls_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "HandshakeRejected: TLS: " in r.getMessage()]


@pytest.mark.asyncio
async def test_a_peer_without_a_certificate_is_refused(
    make_transport: MakeTransport, certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, inbox = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2))
    anonymous = client_context(certs / "ca.crt", check_hostname=False)
    with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
        hung_up, _ = await _send_hello(b, anonymous, Hello(3, CLUSTER, protocol=PROTOCOL_VERSION))
        await eventually(lambda: b.inbound_stats.protocol_errors == 1)
    assert hung_up and inbox.messages == []
    assert len(_tls_refusals(caplog)) == 1


@pytest.mark.asyncio
async def test_a_peer_speaking_plain_tcp_is_refused(
    make_transport: MakeTransport, certs: Path
) -> None:
    b, inbox = await make_transport(2, cluster_id=CLUSTER, tls=contexts(certs, 2))
    plain, _ = await make_transport(3, cluster_id=CLUSTER)
    plain.set_peer(2, b.listen_address)
    plain.send(2, Prepare(3, Ballot(1, 3)))
    await eventually(lambda: b.inbound_stats.protocol_errors >= 1)
    assert inbox.messages == []


@pytest.mark.asyncio
async def test_a_certificate_from_another_ca_is_refused_both_ways(
    make_transport: MakeTransport,
    certs: Path,
    other_ca: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, inbox_a = await make_transport(1, cluster_id=CLUSTER, tls=contexts(certs, 1))
    # Node 3 trusts our CA but shows a certificate from another one: a refuses it.
    mixed = contexts(other_ca, 3, ca_dir=certs)
    with caplog.at_level(logging.WARNING, logger="pypaxos.transport.tcp"):
        hung_up, _ = await _send_hello(
            a, mixed.peer_client, Hello(3, CLUSTER, protocol=PROTOCOL_VERSION)
        )
        await eventually(lambda: a.inbound_stats.protocol_errors == 1)
    assert hung_up and inbox_a.messages == []
    assert len(_tls_refusals(caplog)) == 1
    # A node of the other CA dialling a: it does not trust a's certificate, sends nothing.
    c, _ = await make_transport(3, cluster_id=CLUSTER, tls=contexts(other_ca, 3))
    c.set_peer(1, a.listen_address)
    c.send(1, Prepare(3, Ballot(1, 3)))
    await eventually(lambda: c.peer_stats(1).connect_failures >= 1)
    assert c.peer_stats(1).connects == 0 and inbox_a.messages == []


@pytest.mark.asyncio
async def test_a_dialled_node_with_another_nodes_certificate_is_refused(
    make_transport: MakeTransport, certs: Path
) -> None:
    """An impostor at node 2's address, with node 3's certificate: node 1 sends it nothing."""
    impostor, inbox = await make_transport(3, cluster_id=CLUSTER, tls=contexts(certs, 3))
    a, _ = await make_transport(1, cluster_id=CLUSTER, tls=contexts(certs, 1))
    a.set_peer(2, impostor.listen_address)
    a.send(2, Prepare(1, Ballot(3, 1)))
    await eventually(lambda: a.peer_stats(2).connect_failures >= 1)
    assert a.peer_stats(2).connects == 0 and inbox.messages == []


@pytest.mark.asyncio
async def test_reload_serves_the_new_certificate_to_new_connections(
    make_transport: MakeTransport, tmp_path: Path
) -> None:
    issue_cluster(tmp_path, [(1, HOSTS), (2, HOSTS)])
    a_tls = contexts(tmp_path, 1)
    a, _ = await make_transport(1, cluster_id=CLUSTER, tls=a_tls)
    dialler = contexts(tmp_path, 2).peer_client

    async def served_serial() -> int:
        host, port = a.listen_address.rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port), ssl=dialler)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).serial_number

    before = await served_serial()
    issue_cluster(tmp_path, [(1, HOSTS)], renew=True, client=False)
    assert await served_serial() == before  # not reloaded yet
    a_tls.reload()
    after = await served_serial()
    assert after != before
    on_disk = x509.load_pem_x509_certificate((tmp_path / "node-1.crt").read_bytes())
    assert after == on_disk.serial_number
