"""``pypaxos member list|add|promote|remove|replace``: change a running cluster's membership.

The cluster is reached at its nodes' client addresses: the local data directory's
``cluster.toml`` (``--data``, with its TLS client certificate when the client port speaks TLS),
or ``--endpoints HOST:PORT,...`` with ``--tls-ca`` and ``--user`` (password from
``PYPAXOS_PASSWORD``; an ``admin`` user when the cluster has ``[[users]]``), as for
``pypaxos cluster status``.  The command goes to the leader (``PAXOS.MEMBER``,
``runtime.members_admin``).

* ``list [--json]``: every member's id, role (voter or learner), peer and client addresses,
  and whether it has caught up with the leader;
* ``add ID --peer HOST:PORT --client HOST:PORT``: add a learner (then start it with
  ``pypaxos node --join``, which also adds it when it is not yet a member);
* ``promote ID``: make a caught-up learner a voter (refused, ``learner-behind``, until it is);
* ``remove ID``: remove a voter or learner (the leader too: another takes over; the removed
  node stops by itself);
* ``replace OLD NEW``: promote the caught-up learner ``NEW`` and remove the voter ``OLD`` at
  once.

A change prints the new configuration's epoch.  Exit 0 on success, 1 when the cluster refused
the change (the reason is printed, e.g. ``change-in-flight``: the previous change is not in
force yet, try again) or could not be reached, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pypaxos.cli.remote import add_cluster_options, credentials, endpoints_and_tls
from pypaxos.cli.usage import UsageError
from pypaxos.client import AsyncClient, ClientError, MembershipInfo, MembershipRefusedError
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.transport.tcp import parse_address

TIMEOUT_S = 5.0
RETRIES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show the members", description="show the members")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add = actions.add_parser(
        "add", help="add a learner", description="add a learner (then: pypaxos node --join)"
    )
    add.add_argument("id", type=int, help="the new member's node id")
    add.add_argument("--peer", required=True, metavar="HOST:PORT", help="its peer address")
    add.add_argument("--client", required=True, metavar="HOST:PORT", help="its client address")
    promote = actions.add_parser(
        "promote", help="make a caught-up learner a voter", description="promote a learner"
    )
    promote.add_argument("id", type=int, help="the learner's node id")
    remove = actions.add_parser(
        "remove", help="remove a member", description="remove a voter or a learner"
    )
    remove.add_argument("id", type=int, help="the member's node id")
    replace = actions.add_parser(
        "replace",
        help="promote a learner and remove a voter in one change",
        description="promote the caught-up learner NEW and remove the voter OLD at once",
    )
    replace.add_argument("old", type=int, help="the voter to remove")
    replace.add_argument("new", type=int, help="the caught-up learner to promote")
    for sub in (listing, add, promote, remove, replace):
        _add_cluster_options(sub)


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser, "the nodes' client addresses, instead of reading --data")


def run(args: argparse.Namespace) -> int:
    if args.action == "add":
        for what in ("peer", "client"):
            try:
                parse_address(getattr(args, what))
            except ValueError as error:
                raise UsageError(f"--{what}: {error}") from None
    try:
        client = _client(args)
    except ClusterError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_run(client, args))
    except MembershipRefusedError as error:
        print(f"pypaxos: refused ({error.reason}): {error.detail}", file=sys.stderr)
        return 1
    except ClientError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1


async def _run(client: AsyncClient, args: argparse.Namespace) -> int:
    async with client:
        if args.action == "list":
            info = await client.member_list()
            if args.json:
                print(json.dumps(info.as_json()))
            else:
                print(describe(info))
            return 0
        if args.action == "add":
            epoch = await client.member_add(args.id, args.peer, args.client)
            done = f"node {args.id} added as a learner"
        elif args.action == "promote":
            epoch = await client.member_promote(args.id)
            done = f"node {args.id} promoted to voter"
        elif args.action == "remove":
            epoch = await client.member_remove(args.id)
            done = f"node {args.id} removed"
        else:
            epoch = await client.member_replace(args.old, args.new)
            done = f"node {args.old} replaced by node {args.new}"
    print(f"{done} (configuration epoch {epoch})")
    return 0


def describe(info: MembershipInfo) -> str:
    lines = [
        f"configuration epoch {info.epoch}"
        + (f" (pending: {info.pending})" if info.pending else "")
    ]
    for member in info.members:
        caught = {True: "caught up", False: "behind", None: "progress unknown"}[member.caught_up]
        lag = "" if member.lag_slots is None else f", {member.lag_slots} slots behind"
        leader = "  (leader)" if member.leader else ""
        lines.append(
            f"  node {member.id}  {member.role:<7}  peer {member.peer or '?'}  "
            f"client {member.client or '?'}  {caught}{lag}{leader}"
        )
    return "\n".join(lines)


def _client(args: argparse.Namespace) -> AsyncClient:
    if args.endpoints is None:
        cluster = LocalCluster.open(args.data)
        addresses = cluster.spec.client_addresses
        return AsyncClient(
            addresses, ssl=cluster.client_tls(), timeout_s=TIMEOUT_S, retries=RETRIES
        )
    endpoints, tls = endpoints_and_tls(args)
    return AsyncClient(
        endpoints, ssl=tls, credentials=credentials(args), timeout_s=TIMEOUT_S, retries=RETRIES
    )
