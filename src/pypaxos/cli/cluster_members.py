"""``pypaxos cluster add`` and ``pypaxos cluster remove ID``: grow or shrink a local cluster.

``add`` plans the next node on the data directory's port blocks, lists it in
``cluster.toml``, starts it with ``pypaxos node --join`` (it joins as a learner and catches up
from a snapshot and the log) and promotes it to voter once it has caught up (``--learner``
leaves it a learner).  ``remove ID`` removes the node from the membership (the leader too:
another takes over), waits for it to stop and takes it out of ``cluster.toml``; its directory
stays, marked removed.  Both run while the cluster serves clients.  The same steps by hand,
for nodes elsewhere: docs/operations.md, "Membership".  Exit 0 on success, 1 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pypaxos.client import ClientError, MembershipRefusedError
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.cluster.members import add_local_node, remove_local_node


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (./data)")
    if parser.prog.endswith(" remove"):
        parser.add_argument("id", type=int, help="the node to remove")
    else:
        parser.add_argument(
            "--learner", action="store_true", help="leave the new node a learner (no promote)"
        )


def run(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.open(args.data)
        if hasattr(args, "id"):
            asyncio.run(remove_local_node(cluster, args.id))
            print(f"node {args.id} removed; cluster.toml updated")
        else:
            member = asyncio.run(add_local_node(cluster, promote=not args.learner))
            role = "learner" if args.learner else "voter"
            print(f"node {member.id} added as a {role}: client {member.client}")
    except MembershipRefusedError as error:
        print(f"pypaxos: refused ({error.reason}): {error.detail}", file=sys.stderr)
        return 1
    except (ClusterError, ClientError) as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    return 0
