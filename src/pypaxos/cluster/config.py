"""A local cluster's layout: ``plan(nodes, base_port)`` picks the members' addresses.

The ports come in three blocks so they are easy to read in a process list: client ports
``base, base+1, ...``, peer ports ``base+100, ...`` and metrics ports ``base+200, ...`` (7001,
7101, 7201 for node 1 by default).  The result is an ordinary ``runtime.config.ClusterConfig``
whose file lives in the data directory itself with ``data_dir = "."``, so a data directory is
self-contained: ``pypaxos cluster up`` on it again restarts the same cluster on its old data.
Each new cluster gets a random peer secret (``peer.secret``, owner-only) that its nodes prove
they know before a peer listens to them (``transport.auth``).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pypaxos.runtime.config import (
    CONFIG_NAME,
    ClusterConfig,
    ConfigError,
    Member,
    new_config,
)
from pypaxos.storage.file import FSYNC_MODES, FsyncMode
from pypaxos.transport.auth import write_secret

DEFAULT_BASE_PORT = 7001
PEER_PORT_OFFSET = 100
METRICS_PORT_OFFSET = 200
NODES_MAX = 99  # the port blocks are 100 wide
HOST = "127.0.0.1"
PEER_SECRET_NAME = "peer.secret"


def plan(
    data_dir: Path,
    nodes: int,
    base_port: int = DEFAULT_BASE_PORT,
    fsync: FsyncMode = "always",
    thrifty: bool = True,
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
        path, cluster_id, members, fsync=fsync, thrifty=thrifty, peer_secret_file=secret
    )


def create_secret(config: ClusterConfig) -> None:
    """Write the new cluster's peer secret (owner-only), unless it already has one."""
    if config.peer_secret_file is not None and not config.peer_secret_file.exists():
        write_secret(config.peer_secret_file)
