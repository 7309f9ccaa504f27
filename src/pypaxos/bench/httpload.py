"""A closed-loop HTTP/1.1 ``POST`` load generator, built like ``loadgen``: for etcd's gateway.

``clients`` keep-alive connections each have one request outstanding (HTTP/1.1 has no
pipelining worth the name); a response is timed in ``data_received``, the moment its last byte
reaches the process, and the next request is written from that same callback.  The same
shape as the Redis-protocol ``loadgen``, so the two systems' one-client latencies carry the
same (small) client overhead and can be compared.

A response is read by its ``Content-Length``, or chunk by chunk with ``Transfer-Encoding:
chunked``; status 200 counts as a success, any other status, a connection lost with a request
outstanding, or one still unanswered ``drain_s`` after the end, as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from pypaxos.bench.loadgen import constant_factory
from pypaxos.bench.stats import percentile

HEADERS_BYTES_MAX = 64 * 1024


class HttpResponseError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client can read."""


@dataclass(slots=True)
class HttpLoadResult:
    ok: int = 0
    errors: int = 0
    latencies_us: array[float] = field(default_factory=lambda: array("d"))
    statuses: dict[int, int] = field(default_factory=dict)

    def as_json(self, duration_s: float) -> dict[str, object]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "throughput": self.ok / duration_s,
            "p50_us": percentile(self.latencies_us, 0.5),
            "p99_us": percentile(self.latencies_us, 0.99),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }


class ResponseReader:
    """Cuts a byte stream into HTTP/1.1 responses; ``feed`` returns the status codes of those
    completed.  Bodies are skipped (a load generator needs only the status)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._status: int | None = None
        self._body_left = 0  # bytes of a Content-Length body still to skip
        self._chunked = False

    def feed(self, data: bytes) -> list[int]:
        self._buffer += data
        done: list[int] = []
        while True:
            status = self._next()
            if status is None:
                return done
            done.append(status)

    def _next(self) -> int | None:
        buffer = self._buffer
        if self._status is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > HEADERS_BYTES_MAX:
                    raise HttpResponseError("response headers over 64 KiB")
                return None
            lines = bytes(buffer[:end]).split(b"\r\n")
            del buffer[: end + 4]
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise HttpResponseError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            self._status = int(parts[1])
            self._body_left, self._chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name, value = name.strip().lower(), value.strip()
                if name == b"content-length":
                    if not value.isdigit():
                        raise HttpResponseError(f"bad Content-Length {value[:40]!r}")
                    self._body_left = int(value)
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self._chunked = True
        if self._chunked:
            return self._skip_chunks()
        if len(buffer) < self._body_left:
            self._body_left -= len(buffer)
            buffer.clear()
            return None
        del buffer[: self._body_left]
        return self._finish()

    def _skip_chunks(self) -> int | None:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                return None
            size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpResponseError(f"bad chunk size {size_text[:40]!r}") from None
            if size == 0:  # the last chunk, then (no trailers from etcd) the final CRLF
                if len(buffer) < end + 4:
                    return None
                del buffer[: end + 4]
                return self._finish()
            if len(buffer) < end + 2 + size + 2:
                return None
            del buffer[: end + 2 + size + 2]

    def _finish(self) -> int:
        status = self._status
        assert status is not None
        self._status = None
        return status


class _Worker(asyncio.Protocol):
    def __init__(
        self, make_request: Callable[[int], bytes], result: HttpLoadResult, stop_at: float
    ) -> None:
        self.make_request = make_request
        self.result = result
        self.stop_at = stop_at
        self.reader = ResponseReader()
        self.index = 0
        self.sent_at: float | None = None
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self) -> None:
        assert self.transport is not None
        request = self.make_request(self.index)
        self.index += 1
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        try:
            statuses = self.reader.feed(data)
        except HttpResponseError:
            assert self.transport is not None
            self.transport.close()  # connection_lost counts the request outstanding
            return
        result = self.result
        for status in statuses:
            began, self.sent_at = self.sent_at, None
            if began is None:
                continue  # a response to no request (a server bug): ignored
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != 200:
                result.errors += 1
            elif arrived <= self.stop_at:
                result.ok += 1
                result.latencies_us.append((arrived - began) * 1e6)
        if self.sent_at is None:
            if arrived < self.stop_at:
                self.send()
            elif not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent_at is not None:
            self.result.errors += 1
            self.sent_at = None
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)


async def run_post_load(
    host: str,
    port: int,
    make_body: Callable[[int, int], bytes],
    *,
    path: str,
    clients: int,
    duration_s: float,
    drain_s: float = 10.0,
    connect_timeout_s: float = 5.0,
) -> HttpLoadResult:
    """``clients`` connections POST ``make_body(client, index)`` to ``path`` back to back."""
    loop = asyncio.get_running_loop()
    result = HttpLoadResult()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    def maker(client: int) -> Callable[[int], bytes]:
        def make_request(index: int) -> bytes:
            body = make_body(client, index)
            return b"%s%d\r\n\r\n%s" % (head, len(body), body)

        return make_request

    workers = [_Worker(maker(n), result, 0.0) for n in range(clients)]
    await asyncio.gather(
        *(
            asyncio.wait_for(
                loop.create_connection(constant_factory(w), host, port), connect_timeout_s
            )
            for w in workers
        )
    )
    stop_at = time.perf_counter() + duration_s
    for w in workers:
        w.stop_at = stop_at
        w.send()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(asyncio.shield(w.done) for w in workers)), duration_s + drain_s
        )
    for w in workers:
        if w.sent_at is not None:  # never answered: unknown outcome, an error
            result.errors += 1
            w.sent_at = None
        if w.transport is not None:
            w.transport.close()
    return result
