"""``pypaxos cluster down``: stop every node of the cluster in a data directory.

Each node gets SIGTERM (it finishes what is durable and exits 0), then SIGKILL if it is still
there after ``--timeout-s``; pid files of processes that are gone are removed.  Stopping a
cluster that is not running is not an error: exit 0 either way, so scripts can always call it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pypaxos.cluster.local import ClusterError, LocalCluster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (./data)")
    parser.add_argument(
        "--timeout-s", type=float, default=10.0, help="SIGKILL after this many seconds (10)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.open(args.data)
    except ClusterError as error:
        print(f"nothing to stop: {error}", file=sys.stderr)
        return 0
    stopped = cluster.down(args.timeout_s)
    if not stopped:
        print(f"no node of {cluster.spec.data_dir} was running")
    for node_id, pids in sorted(stopped.items()):
        print(f"stopped node {node_id} (pid {', '.join(map(str, pids))})")
    return 0
