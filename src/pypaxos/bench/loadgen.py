"""A closed-loop Redis-protocol load generator that records the latency of every request.

``clients`` connections each keep ``pipeline`` requests outstanding: as soon as replies arrive
the connection sends as many new requests (in one write), so the server always has
``clients * pipeline`` requests in hand and the offered load adapts to what it can serve
(closed loop: a slower server gets fewer requests per second, never a growing queue).

A request's latency is from the moment its bytes were handed to the socket to the moment its
reply was parsed.  Replies that arrive within ``duration_s`` count; after it no new request is
sent and the ones still outstanding are drained (up to ``drain_s``): they do not count towards
throughput or latency, but an error among them is still a failed request.  An error reply
(``-ERR``, ``-TRYAGAIN``, ``-BUSY``) or a connection lost with requests outstanding counts as
failed requests; nothing is retried.

Keys are ``key:N`` for N in ``[0, keyspace)``, visited in a different order per connection;
values are ``value_bytes`` bytes, as ``redis-benchmark -d``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from pypaxos.bench.stats import percentile
from pypaxos.client.replies import ErrorReply, ReplyParser
from pypaxos.runtime.resp import encode_command

READ_BYTES = 256 * 1024
COMMANDS = ("set", "get")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    host: str
    port: int
    clients: int = 16
    pipeline: int = 1
    duration_s: float = 5.0
    command: str = "set"
    value_bytes: int = 128
    keyspace: int = 100_000
    drain_s: float = 10.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, not {self.command!r}")
        if self.clients < 1 or self.pipeline < 1 or self.duration_s <= 0:
            raise ValueError("clients and pipeline must be >= 1 and duration_s > 0")


@dataclass(slots=True)
class LoadResult:
    """What one load run saw; ``latencies_us`` holds one entry per counted reply."""

    ok: int = 0
    errors: int = 0
    late: int = 0  # good replies that arrived after duration_s (not counted as ok)
    elapsed_s: float = 0.0
    latencies_us: array[float] = field(default_factory=lambda: array("d"))
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_us(self, q: float) -> float:
        return percentile(self.latencies_us, q)

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "late": self.late,
            "elapsed_s": self.elapsed_s,
            "throughput": self.throughput,
            "p50_us": self.latency_us(0.50),
            "p90_us": self.latency_us(0.90),
            "p99_us": self.latency_us(0.99),
            "p999_us": self.latency_us(0.999),
            "max_us": max(self.latencies_us, default=float("nan")),
            "error_kinds": dict(self.error_kinds),
        }


def _request(spec: LoadSpec, worker: int, index: int, value: bytes) -> bytes:
    # A stride coprime with common keyspace sizes spreads a connection's keys; offsets differ.
    key = b"key:%d" % ((worker * 7919 + index * 104729) % spec.keyspace)
    if spec.command == "set":
        return encode_command(b"SET", key, value)
    return encode_command(b"GET", key)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _worker(
    spec: LoadSpec, worker: int, connection: Connection, result: LoadResult, stop_at: float
) -> None:
    reader, writer = connection
    parser = ReplyParser()
    value = b"v" * spec.value_bytes
    sent_at: collections.deque[float] = collections.deque()
    index = 0
    clock = time.perf_counter

    def send(count: int) -> None:
        nonlocal index
        wire = b"".join(_request(spec, worker, index + i, value) for i in range(count))
        index += count
        now = clock()
        writer.write(wire)
        sent_at.extend([now] * count)

    try:
        send(spec.pipeline)
        drain_deadline = stop_at + spec.drain_s
        while sent_at:
            now = clock()
            if now >= drain_deadline:
                break
            try:
                data = await asyncio.wait_for(reader.read(READ_BYTES), drain_deadline - now)
            except TimeoutError:
                break
            except OSError:
                data = b""
            if not data:
                result.errors += len(sent_at)
                result.error_kinds["connection closed"] += len(sent_at)
                sent_at.clear()
                break
            arrived = clock()
            replies = parser.feed(data)
            for reply in replies:
                began = sent_at.popleft()
                if isinstance(reply, ErrorReply):
                    result.errors += 1
                    result.error_kinds[str(reply).split(" ")[0]] += 1
                elif arrived <= stop_at:
                    result.ok += 1
                    result.latencies_us.append((arrived - began) * 1e6)
                else:
                    result.late += 1
            if replies and arrived < stop_at:
                send(len(replies))
                await writer.drain()
        if sent_at:  # still outstanding after the drain: unknown outcome, count as failed
            result.errors += len(sent_at)
            result.error_kinds["no reply"] += len(sent_at)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run one closed-loop load as ``spec`` says; connections are opened before the clock."""
    connections = await asyncio.gather(
        *(
            asyncio.wait_for(asyncio.open_connection(spec.host, spec.port), spec.connect_timeout_s)
            for _ in range(spec.clients)
        )
    )
    result = LoadResult()
    stop_at = time.perf_counter() + spec.duration_s
    await asyncio.gather(
        *(
            _worker(spec, worker, connection, result, stop_at)
            for worker, connection in enumerate(connections)
        )
    )
    result.elapsed_s = spec.duration_s
    return result
