"""Clients for a running pypaxos cluster (``pypaxos node``), over the Redis protocol.

``AsyncClient`` (asyncio) and ``Client`` (blocking) find the leader, retry safely and apply each
write exactly once through ``PAXOS.REQ`` sessions; see ``pypaxos.client.aio`` for how, and
``pypaxos.client.errors`` for what each failure lets the caller conclude.  Stock Redis clients
(redis-py, redis-cli) work too, without the exactly-once guarantee on retries.  ``Lock`` and
``Election`` (``pypaxos.client.recipes``) are leases with fencing tokens.

    from pypaxos.client import Client
    with Client(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]) as db:
        db.set("greeting", "hello")
        assert db.get("greeting") == b"hello"
"""

from pypaxos.client.aio import AsyncClient, fetch_info, format_address, parse_address
from pypaxos.client.errors import (
    ClientError,
    ClientProtocolError,
    CommandError,
    MembershipRefusedError,
    OutcomeUnknownError,
    SessionExpiredError,
    UnavailableError,
)
from pypaxos.client.members import MemberInfo, MembershipInfo
from pypaxos.client.recipes import (
    Election,
    FencedResource,
    Holder,
    Lock,
    LockTimeoutError,
    StaleTokenError,
)
from pypaxos.client.replies import ErrorReply, Reply, ReplyParser, Simple, parse_info
from pypaxos.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "ClientProtocolError",
    "CommandError",
    "Election",
    "ErrorReply",
    "FencedResource",
    "Holder",
    "Lock",
    "LockTimeoutError",
    "MemberInfo",
    "MembershipInfo",
    "MembershipRefusedError",
    "OutcomeUnknownError",
    "Reply",
    "ReplyParser",
    "SessionExpiredError",
    "Simple",
    "StaleTokenError",
    "UnavailableError",
    "fetch_info",
    "format_address",
    "parse_address",
    "parse_info",
]
