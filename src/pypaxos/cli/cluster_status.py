"""``pypaxos cluster status``: every node's role, ballot, commit index and lag, from ``INFO``.

``--json`` prints one object, ``{"nodes": [{"id", "pid", "role", "client", "ballot",
"commit_index", "lag"}, ...]}``, for scripts and tests; a node that does not answer has role
``down`` and ``null`` for what only it could say (``pid`` is its pid file's, if that process is
alive).  Exit 0 when the status could be read, 1 when there is no cluster in the directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus

ROLE_STYLES = {"leader": "bold green", "follower": "cyan", "candidate": "yellow", "down": "red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (./data)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def table(nodes: list[NodeStatus]) -> Table:
    view = Table(title="pypaxos cluster")
    for heading in ("node", "pid", "role", "ballot", "commit index", "lag", "client"):
        view.add_column(heading, justify="right" if heading in ("lag", "commit index") else "left")
    for node in nodes:
        style = ROLE_STYLES.get(node.role, "")
        view.add_row(
            str(node.id),
            "-" if node.pid is None else str(node.pid),
            f"[{style}]{node.role}[/]" if style else node.role,
            node.ballot or "-",
            "-" if node.commit_index is None else str(node.commit_index),
            "-" if node.lag is None else str(node.lag),
            node.client,
        )
    return view


def run(args: argparse.Namespace) -> int:
    try:
        nodes = LocalCluster.open(args.data).status()
    except ClusterError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"nodes": [node.as_json() for node in nodes]}))
    else:
        Console().print(table(nodes))
    return 0
