"""Helpers shared by the transport tests (imported by module name: tests have no packages)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Protocol

from pypaxos.core.messages import Message
from pypaxos.transport.codec import Codec
from pypaxos.transport.tcp import TcpConfig, TcpTransport
from pypaxos.transport.tls import TlsContexts

CODEC = Codec[Message](Message)

# Quick retries so that reconnect tests finish fast.
FAST = TcpConfig(reconnect_delay_initial_s=0.01, reconnect_delay_max_s=0.1)


class Inbox:
    """Collects delivered messages in arrival order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, msg: Message) -> None:
        self.messages.append(msg)

    def from_sender(self, sender: int) -> list[Message]:
        return [m for m in self.messages if m.sender == sender]


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` on the loop until it holds; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


def free_port() -> int:
    """A port nothing listens on right now (bound and released; fine on loopback in tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MakeTransport(Protocol):
    def __call__(
        self,
        node_id: int,
        *,
        listen: str = ...,
        peers: Mapping[int, str] | None = ...,
        config: TcpConfig = ...,
        cluster_id: str | None = ...,
        members: Collection[int] | None = ...,
        secret: bytes | None = ...,
        tls: TlsContexts | None = ...,
    ) -> Awaitable[tuple[TcpTransport[Message], Inbox]]: ...


def connect_all(transports: list[TcpTransport[Message]]) -> None:
    """Tell every transport every other's actual listening address."""
    for t in transports:
        for other in transports:
            if other is not t:
                t.set_peer(other.node_id, other.listen_address)
