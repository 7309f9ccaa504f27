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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from pypaxos.bench.stats import percentile
from pypaxos.client.replies import ErrorReply, ReplyParser
from pypaxos.transport.resp import encode_command

COMMANDS = ("set", "get")
_P = TypeVar("_P", bound=asyncio.Protocol)


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


class _Worker(asyncio.Protocol):
    """One connection of the closed loop, driven from the loop's callbacks.

    A reply is timed in ``data_received``, the moment its bytes reach this process, and the
    next request is written from there too: no task wakes up between a reply and the request
    that replaces it, so the figures carry as little of the client's own overhead as the
    event loop allows (a task per connection reading with ``await`` costs one more loop step
    per reply on both sides of the measurement)."""

    def __init__(self, spec: LoadSpec, worker: int, result: LoadResult, stop_at: float) -> None:
        self.spec = spec
        self.worker = worker
        self.result = result
        self.stop_at = stop_at
        self.parser = ReplyParser()
        self.value = b"v" * spec.value_bytes
        self.sent_at: collections.deque[float] = collections.deque()
        self.index = 0
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, count: int) -> None:
        assert self.transport is not None
        spec, worker, index, value = self.spec, self.worker, self.index, self.value
        wire = b"".join(_request(spec, worker, index + i, value) for i in range(count))
        self.index += count
        if self.lost:  # the server hung up before the first request went out
            self.result.errors += count
            self.result.error_kinds["connection closed"] += count
            return
        now = time.perf_counter()
        self.transport.write(wire)
        self.sent_at.extend([now] * count)

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        result, sent_at = self.result, self.sent_at
        replies = self.parser.feed(data)
        for reply in replies:
            if not sent_at:
                break  # more replies than requests (a server bug): the extras are ignored
            began = sent_at.popleft()
            if isinstance(reply, ErrorReply):
                result.errors += 1
                result.error_kinds[str(reply).split(" ")[0]] += 1
            elif arrived <= self.stop_at:
                result.ok += 1
                result.latencies_us.append((arrived - began) * 1e6)
            else:
                result.late += 1
        if replies and arrived < self.stop_at:
            self.send(len(replies))
        elif not sent_at:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.sent_at:
            self.result.errors += len(self.sent_at)
            self.result.error_kinds["connection closed"] += len(self.sent_at)
            self.sent_at.clear()
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    async def run(self) -> None:
        """Send the first requests, then wait for the last reply (or the drain deadline)."""
        assert self.transport is not None
        self.send(self.spec.pipeline)
        try:
            timeout_s = max(self.stop_at + self.spec.drain_s - time.perf_counter(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.done), timeout_s)
            if self.sent_at:  # still outstanding after the drain: unknown outcome, failed
                self.result.errors += len(self.sent_at)
                self.result.error_kinds["no reply"] += len(self.sent_at)
                self.sent_at.clear()
        finally:
            self.transport.close()


def constant_factory(protocol: _P) -> Callable[[], _P]:
    """A protocol factory for ``create_connection`` that hands over an existing protocol."""
    return lambda: protocol


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run one closed-loop load as ``spec`` says; connections are opened before the clock."""
    loop = asyncio.get_running_loop()
    result = LoadResult()
    workers = [_Worker(spec, worker, result, 0.0) for worker in range(spec.clients)]
    await asyncio.gather(
        *(
            asyncio.wait_for(
                loop.create_connection(constant_factory(w), spec.host, spec.port),
                spec.connect_timeout_s,
            )
            for w in workers
        )
    )
    stop_at = time.perf_counter() + spec.duration_s
    for w in workers:
        w.stop_at = stop_at
    await asyncio.gather(*(w.run() for w in workers))
    result.elapsed_s = spec.duration_s
    return result
