"""The status of a cluster reached by its nodes' client addresses, from any machine.

``cluster status --endpoints`` uses this where no local data directory exists (nodes on other
machines, in containers): each address is asked ``INFO`` (over TLS and with ``AUTH`` when the
cluster asks for them), and a node that does not answer is ``down`` with an unknown id.
"""

from __future__ import annotations

import asyncio
from ssl import SSLContext

from pypaxos.client.aio import fetch_info
from pypaxos.cluster.local import INFO_TIMEOUT_S, NodeStatus, leader_commit_index, node_status
from pypaxos.transport.tcp import parse_address


def parse_endpoints(text: str) -> list[str]:
    """``HOST:PORT,HOST:PORT,...`` as a list; ``ValueError`` naming the bad entry."""
    endpoints = [part.strip() for part in text.split(",") if part.strip()]
    if not endpoints:
        raise ValueError("no endpoints given (HOST:PORT,...)")
    for endpoint in endpoints:
        parse_address(endpoint)  # raises ValueError with the address in its message
    return endpoints


async def endpoint_statuses(
    endpoints: list[str],
    *,
    timeout_s: float = INFO_TIMEOUT_S,
    tls: SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
) -> list[NodeStatus]:
    """Each endpoint's status, asked concurrently, in the order given."""
    infos = await asyncio.gather(
        *(fetch_info(endpoint, timeout_s, tls, credentials) for endpoint in endpoints),
        return_exceptions=True,
    )
    leader_commit = leader_commit_index(infos)
    return [
        node_status(info, endpoint, leader_commit)
        if isinstance(info, dict)
        else NodeStatus(None, None, "down", endpoint, None, None, None, None)
        for endpoint, info in zip(endpoints, infos, strict=True)
    ]
