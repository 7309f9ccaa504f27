"""``pypaxos snapshot save FILE [--data DIR | --endpoints HOST:PORT,...] [--tls-ca FILE]
[--user NAME]``: a consistent backup of a running cluster's key-value state.

The leader (found by ``INFO``) is asked ``PAXOS.BACKUP BEGIN``: it passes a linearizable read
barrier, so every write acknowledged before the command is in the backup, and forks a copy
of its state at the applied index it stands at (``runtime.backup``).  The chunks are then
fetched one by one (``PAXOS.BACKUP CHUNK``) into ``FILE``, written durably and checked end to
end (``runtime.backup_file``).  A leader change or a backup already running on the node is
retried for ``--timeout`` seconds.  The password for ``--user`` comes from
``$PYPAXOS_PASSWORD``.  Exit 0 when saved, 1 when it could not be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import time
from pathlib import Path

from pypaxos.cli.remote import add_cluster_options, credentials, endpoints_and_tls
from pypaxos.cli.usage import UsageError
from pypaxos.client.aio import NodeConnection, fetch_info
from pypaxos.client.errors import CommandError
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.runtime.backup_file import FORMAT_VERSION, BackupHeader, BackupWriter

INFO_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.5
BEGIN_FIELDS = 7


class SaveError(Exception):
    """The backup could not be taken (the reason is the message)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the backup file to write")
    add_cluster_options(parser, "the nodes' client addresses (not --data)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to keep trying to begin (30)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    endpoints, tls = _targets(args)
    started = time.perf_counter()
    try:
        header, size = asyncio.run(save(args.file, endpoints, tls, credentials(args), args.timeout))
    except (SaveError, OSError) as error:
        print(f"pypaxos: error: snapshot save: {error}", file=sys.stderr)
        return 1
    took_s = time.perf_counter() - started
    if args.json:
        print(json.dumps({**_header_json(header), "file": str(args.file), "bytes": size}))
    else:
        print(
            f"saved {args.file}: cluster {header.cluster_id}, slot {header.slot}, "
            f"{header.keys} keys, digest {header.state_digest}, {size} bytes "
            f"from node {header.node_id} in {took_s:.2f}s"
        )
    return 0


def _header_json(header: BackupHeader) -> dict[str, object]:
    return {
        "cluster_id": header.cluster_id,
        "slot": header.slot,
        "keys": header.keys,
        "state_digest": header.state_digest,
        "node_id": header.node_id,
        "chunks": header.chunk_count,
    }


def _targets(args: argparse.Namespace) -> tuple[list[str], ssl.SSLContext | None]:
    if args.endpoints:
        return endpoints_and_tls(args)
    try:
        cluster = LocalCluster.open(args.data)
        return [m.client for m in cluster.spec.members], cluster.client_tls()
    except ClusterError as error:
        raise UsageError(str(error)) from None


async def save(
    path: Path,
    endpoints: list[str],
    tls: ssl.SSLContext | None,
    credentials: tuple[str, str] | None,
    timeout_s: float,
) -> tuple[BackupHeader, int]:
    """Take the backup from the cluster's leader into ``path``; its header and size."""
    deadline = time.monotonic() + timeout_s
    last = "no node answered"
    while True:
        leader = await _find_leader(endpoints, tls, credentials)
        if leader is not None:
            connection = await NodeConnection.open(leader, tls, credentials)
            try:
                try:
                    reply = await connection.command(b"PAXOS.BACKUP", b"BEGIN")
                except CommandError as error:
                    text = str(error)
                    if not text.startswith(("TRYAGAIN", "BUSY")):
                        raise SaveError(f"{leader} refused: {text}") from None
                    last = f"{leader}: {text}"
                else:
                    return await _fetch(connection, path, reply)
            finally:
                await connection.close()
        else:
            last = "no node says it leads"
        if time.monotonic() > deadline:
            raise SaveError(f"could not begin within {timeout_s:g}s ({last})")
        await asyncio.sleep(RETRY_PAUSE_S)


async def _find_leader(
    endpoints: list[str], tls: ssl.SSLContext | None, credentials: tuple[str, str] | None
) -> str | None:
    infos = await asyncio.gather(
        *(fetch_info(e, INFO_TIMEOUT_S, tls, credentials) for e in endpoints),
        return_exceptions=True,
    )
    for endpoint, info in zip(endpoints, infos, strict=True):
        if isinstance(info, CommandError):
            raise SaveError(f"{endpoint} refused: {info}")
        if isinstance(info, dict) and info.get("paxos_role") == "leader":
            return endpoint
    return None


async def _fetch(connection: NodeConnection, path: Path, begun: object) -> tuple[BackupHeader, int]:
    if not (
        isinstance(begun, list)
        and len(begun) == BEGIN_FIELDS
        and all(isinstance(v, bytes) for v in begun)
    ):
        raise SaveError(f"unexpected answer to PAXOS.BACKUP BEGIN: {begun!r}")
    token, slot, count, digest, cluster_id, node_id, keys = (v.decode() for v in begun)
    header = BackupHeader(
        format=FORMAT_VERSION,
        cluster_id=cluster_id,
        node_id=int(node_id),
        slot=int(slot),
        chunk_count=int(count),
        state_digest=digest,
        keys=int(keys),
        created_unix_ms=time.time_ns() // 1_000_000,
    )
    try:
        with BackupWriter(path, header) as writer:
            for seq in range(header.chunk_count):
                chunk = await connection.command(b"PAXOS.BACKUP", b"CHUNK", token, b"%d" % seq)
                if not isinstance(chunk, bytes):
                    raise SaveError(f"chunk {seq} came as {type(chunk).__name__}")
                writer.add(chunk)
            size = writer.finish()
    except CommandError as error:
        raise SaveError(f"fetching the backup: {error}") from None
    finally:
        with contextlib.suppress(CommandError, OSError):  # else the node drops it when idle
            await connection.command(b"PAXOS.BACKUP", b"END", token)
    return header, size
