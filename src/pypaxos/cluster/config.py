"""A local cluster's layout: ``plan(nodes, base_port)`` picks the members' addresses.

The ports come in three blocks so they are easy to read in a process list: client ports
``base, base+1, ...``, peer ports ``base+100, ...`` and metrics ports ``base+200, ...`` (7001,
7101, 7201 for node 1 by default).  The result is an ordinary ``runtime.config.ClusterConfig``
whose file lives in the data directory itself with ``data_dir = "."``, so a data directory is
self-contained: ``pypaxos cluster up`` on it again restarts the same cluster on its old data.
Each new cluster gets a random peer secret (``peer.secret``, owner-only) that its nodes prove
they know before a peer listens to them (``transport.auth``).  With ``tls`` a new cluster also
gets a development CA and a certificate per member in ``tls/`` (``create_certs``), and its
file a ``[tls]`` table that turns TLS on for the peer and client ports.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from pypaxos.runtime.config import (
    CONFIG_NAME,
    DEFAULT_READS,
    ClusterConfig,
    ConfigError,
    Member,
    ReadPath,
    new_config,
)
from pypaxos.runtime.tls import TlsConfig
from pypaxos.storage.file import FSYNC_MODES, FsyncMode
from pypaxos.transport.auth import write_secret
from pypaxos.transport.certs import (
    CA_CERT_NAME,
    CERT_DAYS,
    CLIENT_NAME,
    NodeCert,
    issue_cluster,
)
from pypaxos.transport.tcp import parse_address

DEFAULT_BASE_PORT = 7001
PEER_PORT_OFFSET = 100
METRICS_PORT_OFFSET = 200
NODES_MAX = 99  # the port blocks are 100 wide
HOST = "127.0.0.1"
PEER_SECRET_NAME = "peer.secret"
TLS_DIR_NAME = "tls"


def plan(
    data_dir: Path,
    nodes: int,
    base_port: int = DEFAULT_BASE_PORT,
    fsync: FsyncMode = "always",
    thrifty: bool = True,
    tls: bool = False,
    reads: ReadPath = DEFAULT_READS,
    state_digest: bool = False,
) -> ClusterConfig:
    """A fresh cluster of ``nodes`` members on 127.0.0.1 whose config lives in ``data_dir``.

    Raises ``ConfigError`` (with the command-line option as its key) for impossible values.
    """
    if not 1 <= nodes <= NODES_MAX:
        raise ConfigError(None, "--nodes", f"must be between 1 and {NODES_MAX}, not {nodes}")
    if base_port < 1024 or base_port + METRICS_PORT_OFFSET + nodes > 65535:
        raise ConfigError(None, "--base-port", f"{base_port} leaves no room for {nodes} nodes")
    if fsync not in FSYNC_MODES:
        raise ConfigError(None, "--fsync", f"must be one of {', '.join(FSYNC_MODES)}")
    members = tuple(
        Member(
            id=i,
            client=f"{HOST}:{base_port + i - 1}",
            peer=f"{HOST}:{base_port + PEER_PORT_OFFSET + i - 1}",
            metrics=f"{HOST}:{base_port + METRICS_PORT_OFFSET + i - 1}",
        )
        for i in range(1, nodes + 1)
    )
    # Unique per cluster: a node refuses peers of another cluster that reuse its ports.
    cluster_id = f"pypaxos-local-{secrets.token_hex(4)}"
    path = data_dir.resolve() / CONFIG_NAME
    secret = path.parent / PEER_SECRET_NAME
    return new_config(
        path,
        cluster_id,
        members,
        fsync=fsync,
        thrifty=thrifty,
        reads=reads,
        state_digest=state_digest,
        peer_secret_file=secret,
        tls=tls_settings(path.parent / TLS_DIR_NAME) if tls else None,
    )


def tls_settings(directory: Path) -> TlsConfig:
    """The ``[tls]`` table for the files ``create_certs`` writes in ``directory``: TLS on the
    peer and client ports (client certificates required), the tools' certificate named."""
    return TlsConfig(
        ca_file=directory / CA_CERT_NAME,
        cert_file=directory / "node-{id}.crt",
        key_file=directory / "node-{id}.key",
        client_cert_file=directory / f"{CLIENT_NAME}.crt",
        client_key_file=directory / f"{CLIENT_NAME}.key",
    )


def member_hosts(config: ClusterConfig) -> list[tuple[int, Sequence[str]]]:
    """Each member's id and the hosts of its addresses, which its certificate names."""
    return [
        (member.id, list(dict.fromkeys(parse_address(a)[0] for a in addresses(member))))
        for member in config.members
    ]


def addresses(member: Member) -> list[str]:
    return [member.peer, member.client] + ([member.metrics] if member.metrics else [])


def create_certs(
    config: ClusterConfig, directory: Path, *, days: int = CERT_DAYS, renew: bool = False
) -> list[NodeCert]:
    """A CA (unless ``directory`` has one) and every member's certificate, in ``directory``;
    ``CertError`` if they exist and not ``renew``."""
    return issue_cluster(directory, member_hosts(config), days=days, renew=renew)


def create_secret(config: ClusterConfig) -> None:
    """Write the new cluster's peer secret (owner-only), unless it already has one."""
    if config.peer_secret_file is not None and not config.peer_secret_file.exists():
        write_secret(config.peer_secret_file)
