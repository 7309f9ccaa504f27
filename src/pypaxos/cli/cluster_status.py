"""``pypaxos cluster status``: every node's role, ballot, commit index and lag, from ``INFO``.

The members come from the local data directory's ``cluster.toml`` (``--data``), or, for nodes
on other machines or in containers, from ``--endpoints HOST:PORT,...`` (their client
addresses), with ``--tls-ca`` for TLS client ports and ``--user`` (password from the
``PYPAXOS_PASSWORD`` environment variable) for clusters with ``[[users]]``.

``--json`` prints one object, ``{"nodes": [{"id", "pid", "role", "client", "ballot",
"commit_index", "lag", "state_digest", "digest_slot"}, ...]}``, for scripts and tests (the
digest of the replicated state at applied index ``digest_slot``: nodes at one slot must show
one digest; the table marks a node whose digest differs from another's at its slot with ``!``);
a node that does not answer has role
``down`` and ``null`` for what only it could say (``pid`` is its pid file's, if that process is
alive).  Exit 0 when the status could be read, 1 when there is no cluster in the directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from rich.console import Console
from rich.table import Table

from pypaxos.cli.remote import add_cluster_options, credentials, endpoints_and_tls
from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus
from pypaxos.cluster.remote import endpoint_statuses

ROLE_STYLES = {"leader": "bold green", "follower": "cyan", "candidate": "yellow", "down": "red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_cluster_options(
        parser, "ask these client addresses instead of reading --data (nodes on other machines)"
    )


def table(nodes: list[NodeStatus]) -> Table:
    view = Table(title="pypaxos cluster")
    for heading in ("node", "pid", "role", "ballot", "commit index", "lag", "client", "digest"):
        view.add_column(heading, justify="right" if heading in ("lag", "commit index") else "left")
    split = digests_disagree(nodes)
    for node in nodes:
        style = ROLE_STYLES.get(node.role, "")
        view.add_row(
            "-" if node.id is None else str(node.id),
            "-" if node.pid is None else str(node.pid),
            f"[{style}]{node.role}[/]" if style else node.role,
            node.ballot or "-",
            "-" if node.commit_index is None else str(node.commit_index),
            "-" if node.lag is None else str(node.lag),
            node.client,
            _digest_cell(node, split),
        )
    return view


DIGEST_SHOWN_CHARS = 8


def digests_disagree(nodes: list[NodeStatus]) -> set[int]:
    """The slots at which two nodes show different state digests (a divergence)."""
    by_slot: dict[int, set[str]] = {}
    for node in nodes:
        if node.state_digest is not None and node.digest_slot is not None:
            by_slot.setdefault(node.digest_slot, set()).add(node.state_digest)
    return {slot for slot, digests in by_slot.items() if len(digests) > 1}


def _digest_cell(node: NodeStatus, split: set[int]) -> str:
    if node.state_digest is None or node.digest_slot is None:
        return "-"
    shown = f"{node.state_digest[:DIGEST_SHOWN_CHARS]}@{node.digest_slot}"
    return f"[bold red]{shown} ![/]" if node.digest_slot in split else shown


def run(args: argparse.Namespace) -> int:
    try:
        nodes = _remote(args) if args.endpoints else LocalCluster.open(args.data).status()
    except ClusterError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"nodes": [node.as_json() for node in nodes]}))
    else:
        Console().print(table(nodes))
    return 0


def _remote(args: argparse.Namespace) -> list[NodeStatus]:
    endpoints, tls = endpoints_and_tls(args)
    return asyncio.run(endpoint_statuses(endpoints, tls=tls, credentials=credentials(args)))
