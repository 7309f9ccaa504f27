"""``pypaxos cluster up``: start a local cluster and return once it has elected a leader.

A new data directory gets a ``cluster.toml`` planned from ``--nodes`` and ``--base-port``; a
directory that already has one is restarted as it is (its members and ports are part of its
data), so ``--nodes`` or ``--base-port`` that contradict it are refused rather than ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pypaxos.cli.usage import UsageError
from pypaxos.cluster.config import DEFAULT_BASE_PORT
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.runtime.config import CONFIG_NAME, DEFAULT_READS, READ_PATHS, ConfigError
from pypaxos.storage.file import FSYNC_MODES
from pypaxos.transport.certs import CertError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, help="number of nodes (default 3)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (./data)")
    parser.add_argument(
        "--base-port",
        type=int,
        help="first client port (default 7001); peers use +100, metrics +200",
    )
    parser.add_argument("--fsync", choices=FSYNC_MODES, help="default: always")
    parser.add_argument(
        "--no-thrifty",
        dest="thrifty",
        action="store_false",
        help="send each Accept to every follower, not only to a quorum's worth of them "
        "(for a new cluster; see docs/design.md, 'Thrifty leaders')",
    )
    parser.add_argument(
        "--reads",
        choices=READ_PATHS,
        help=f"how a new cluster serves GET, MGET and EXISTS: through the log, or answered by "
        f"the leader after a heartbeat round, or at once under a leader lease (default "
        f"{DEFAULT_READS}; docs/design.md, 'Reads')",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="for a new cluster: make a development CA and node certificates in DATA/tls and "
        "turn on TLS for the peer and client ports (see `pypaxos certs`)",
    )
    parser.add_argument(
        "--state-digest",
        action="store_true",
        help="for a new cluster: keep INFO's running state_digest, to compare replicas (memory "
        "per key and a hash per write; docs/operations.md, 'Comparing replicas')",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=30.0, help="how long to wait for a leader (30)"
    )


def open_or_create(args: argparse.Namespace) -> LocalCluster:
    path = args.data / CONFIG_NAME
    if not path.exists():
        try:
            return LocalCluster.create(
                args.data,
                args.nodes if args.nodes is not None else 3,
                args.base_port if args.base_port is not None else DEFAULT_BASE_PORT,
                args.fsync or "always",
                args.thrifty,
                args.tls,
                args.reads or DEFAULT_READS,
                args.state_digest,
            )
        except (ConfigError, CertError) as error:
            raise UsageError(str(error)) from error
    cluster = LocalCluster.open(args.data, args.fsync)
    members = cluster.spec.members
    if args.nodes is not None and args.nodes != len(members):
        raise UsageError(
            f"{path} has {len(members)} members, not {args.nodes}; use another --data "
            "for a different cluster"
        )
    if not args.thrifty and cluster.spec.thrifty:
        raise UsageError(f"{path} has thrifty = true; --no-thrifty applies to a new cluster only")
    if args.reads is not None and args.reads != cluster.spec.reads:
        raise UsageError(
            f"{path} has reads = {cluster.spec.reads!r}; --reads applies to a new cluster only "
            "(edit the file and restart the nodes to change it)"
        )
    if args.state_digest and not cluster.spec.state_digest:
        raise UsageError(
            f"{path} has no state_digest = true; --state-digest applies to a new cluster only "
            "(edit the file and restart the nodes to change it)"
        )
    if args.tls and cluster.spec.tls is None:
        raise UsageError(f"{path} has no [tls] table; add one with `pypaxos certs --config {path}`")
    first_port = int(members[0].client.rpartition(":")[2])
    if args.base_port is not None and args.base_port != first_port:
        raise UsageError(f"{path} uses base port {first_port}, not {args.base_port}")
    return cluster


def run(args: argparse.Namespace) -> int:
    try:
        cluster = open_or_create(args)
        leader = asyncio.run(cluster.up(args.timeout_s))
    except ClusterError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    data = cluster.spec.data_dir
    print(f"cluster up in {data}: {len(cluster.spec.members)} nodes, leader node {leader.id}")
    for member in cluster.spec.members:
        process = cluster.started[member.id]
        mark = "  (leader)" if member.id == leader.id else ""
        print(f"  node {member.id}  client {member.client}  pid {process.pid}{mark}")
    tls = cluster.spec.tls
    if cluster.spec.tls_enabled and tls is not None:
        client = f"--tls --cacert {tls.ca_file}"
        if tls.client_cert_file and tls.client_key_file:
            client += f" --cert {tls.client_cert_file} --key {tls.client_key_file}"
        print(f"TLS on; redis-cli {client}")
    print(f"logs in {data}/node-N/node.log; stop with: pypaxos cluster down --data {args.data}")
    return 0
