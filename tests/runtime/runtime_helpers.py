"""Shared helpers for the runtime tests: free loopback ports, cluster files, retries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TryAgainError

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import ClusterConfig
from pypaxos.runtime.wire import WireMessage

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (bound to port 0 together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_toml(
    nodes: int = 3,
    *,
    fsync: str = "never",
    metrics: bool = False,
    tick_ms: int = 10,
    extra: str = "",
) -> str:
    ports = free_ports(nodes * 3)
    lines = [
        'cluster_id = "pypaxos-test"',
        'data_dir = "data"',
        f'fsync = "{fsync}"',
        f"tick_ms = {tick_ms}",
        extra,
    ]
    for i in range(nodes):
        lines += [
            "[[members]]",
            f"id = {i + 1}",
            f'peer = "127.0.0.1:{ports[3 * i]}"',
            f'client = "127.0.0.1:{ports[3 * i + 1]}"',
        ]
        if metrics:
            lines.append(f'metrics = "127.0.0.1:{ports[3 * i + 2]}"')
    return "\n".join(lines) + "\n"


def write_cluster(tmp_path: Path, nodes: int = 3, **options: object) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(cluster_toml(nodes, **options))  # type: ignore[arg-type]
    return path


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


async def retry(action: Callable[[], Awaitable[T]], *, timeout_s: float = 10.0) -> T:
    """Run ``action`` until it does not fail with ``-TRYAGAIN`` or a connection error."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await action()
            except (TryAgainError, RedisConnectionError, OSError):
                pass
            await asyncio.sleep(0.05)


class RunningCluster:
    """Real ``NodeApp`` s of one configuration in this event loop, and the redis-py clients
    made for them; ``close`` stops both."""

    def __init__(self, apps: dict[int, NodeApp]) -> None:
        self.apps = apps
        self.clients: list[aioredis.Redis] = []

    @classmethod
    async def start(
        cls, config: ClusterConfig, request_timeout_s: float = 3.0, allow_empty_voter: bool = False
    ) -> RunningCluster:
        apps = {
            m.id: NodeApp(
                config,
                m.id,
                request_timeout_s=request_timeout_s,
                allow_empty_voter=allow_empty_voter,
            )
            for m in config.members
        }
        for app in apps.values():
            await app.start()
        return cls(apps)

    def client(self, node_id: int, protocol: int = 2) -> aioredis.Redis:
        port = port_of(self.apps[node_id].member.client)
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10, protocol=protocol)
        self.clients.append(client)
        return client

    def leader(self) -> int | None:
        leaders = [i for i, app in self.apps.items() if app.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_leader(self, timeout_s: float = 10.0) -> int:
        async with asyncio.timeout(timeout_s):
            while (leader := self.leader()) is None:
                await asyncio.sleep(0.02)
        return leader

    def applied(self, node_id: int) -> int:
        driver = self.apps[node_id].driver
        assert driver is not None
        return driver.node.applied_index

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps.values():
            await app.stop()


class Recorder:
    """A driver's sender that keeps what it was asked to send, for tests of one node."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, WireMessage]] = []

    def send(self, to: int, msg: WireMessage) -> None:
        self.sent.append((to, msg))
