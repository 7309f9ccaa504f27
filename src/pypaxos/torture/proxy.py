"""A fault-injecting TCP proxy between nodes: loss, delay, duplication, reordering, partitions.

One proxy process stands in front of one node's peer port, with one listening port per other
node (the port says who is sending), and forwards to the node's real peer port.  A route whose
source is ``ANY_SOURCE`` serves every sender (a node added at run time is dialled at one
address by all): the sender is the ``node_id`` of the connection's ``Hello``.  It knows only
the transport's framing: the ``Hello`` passes at once, and every later frame is a unit of
fault (dropped, delayed, held back, sent twice), because a Paxos message lost, late, repeated
or out of order is what the protocol must survive (Paxos Made Simple, section 2.1).  Memory is
bounded by ``queue_bytes_max`` per connection.  In network-namespace mode it adds only delay,
duplication and reordering.  Run as ``python -m pypaxos.torture.proxy --routes JSON --control
SOCKET``; the control socket takes the whole fault state (``Faults``) as one JSON line.

More: docs/testing.md, 'The proxy'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import random
import signal
import struct
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from pypaxos.transport.codec import HEADER_BYTES, Hello

ANY_SOURCE = 0  # a route for every sender: the Hello names it
LENGTH = struct.Struct(">I")
FRAME_BYTES_MAX = 64 * 1024 * 1024  # past this the stream is not ours: close it
QUEUE_BYTES_MAX = 16 * 1024 * 1024
READ_BYTES = 256 * 1024
REORDER_EXTRA_MS = (5.0, 60.0)  # a reordered frame waits this much more than its delay
DUP_EXTRA_MS = (0.0, 30.0)


@dataclass(frozen=True)
class Faults:
    """The proxy's whole fault state; ``blocked`` are sender node ids whose frames are dropped."""

    blocked: frozenset[int] = frozenset()
    loss: float = 0.0
    delay_ms: tuple[float, float] = (0.0, 0.0)
    dup: float = 0.0
    reorder: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocked"] = sorted(self.blocked)
        data["delay_ms"] = list(self.delay_ms)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        low, high = data.get("delay_ms", (0.0, 0.0))
        return cls(
            blocked=frozenset(int(n) for n in data.get("blocked", ())),
            loss=float(data.get("loss", 0.0)),
            delay_ms=(float(low), float(high)),
            dup=float(data.get("dup", 0.0)),
            reorder=float(data.get("reorder", 0.0)),
        )

    @property
    def idle(self) -> bool:
        return self == Faults()


@dataclass
class Stats:
    frames: int = 0
    dropped: int = 0
    delayed: int = 0
    duplicated: int = 0
    reordered: int = 0
    overflow: int = 0
    connections: int = 0


@dataclass(frozen=True)
class Route:
    source: int  # the sending node's id, or ANY_SOURCE
    listen: tuple[str, int]
    target: tuple[str, int]


@dataclass(order=True)
class _Held:
    due: float
    order: int
    frame: bytes = field(compare=False)


class _Pipe:
    """One proxied connection: read frames from the sender, write them (faulted) upstream."""

    def __init__(self, proxy: FaultProxy, source: int, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.source = source
        self.writer = writer
        self.held: list[_Held] = []
        self.held_bytes = 0
        self.order = 0
        self.wake = asyncio.Event()
        self.closed = False

    def push(self, frame: bytes, due: float) -> None:
        if self.held_bytes + len(frame) > QUEUE_BYTES_MAX:
            self.proxy.stats.overflow += 1
            return
        self.order += 1
        heapq.heappush(self.held, _Held(due, self.order, frame))
        self.held_bytes += len(frame)
        self.wake.set()

    def offer(self, frame: bytes) -> None:
        """Apply the current faults to one frame."""
        proxy, faults, rng = self.proxy, self.proxy.faults, self.proxy.rng
        proxy.stats.frames += 1
        now = asyncio.get_running_loop().time()
        if self.source in faults.blocked or (faults.loss and rng.random() < faults.loss):
            proxy.stats.dropped += 1
            return
        low, high = faults.delay_ms
        delay_ms = rng.uniform(low, high) if high > 0 else 0.0
        if delay_ms:
            proxy.stats.delayed += 1
        if faults.reorder and rng.random() < faults.reorder:
            proxy.stats.reordered += 1
            delay_ms += rng.uniform(*REORDER_EXTRA_MS)
        self.push(frame, now + delay_ms / 1000)
        if faults.dup and rng.random() < faults.dup:
            proxy.stats.duplicated += 1
            self.push(frame, now + (delay_ms + rng.uniform(*DUP_EXTRA_MS)) / 1000)

    async def drain_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not self.held:
                self.wake.clear()
                await self.wake.wait()
                continue
            wait_s = self.held[0].due - loop.time()
            if wait_s > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait_s)
                continue
            chunks: list[bytes] = []
            now = loop.time()
            while self.held and self.held[0].due <= now:
                item = heapq.heappop(self.held)
                self.held_bytes -= len(item.frame)
                chunks.append(item.frame)
            self.writer.write(b"".join(chunks))
            await self.writer.drain()


class FaultProxy:
    def __init__(self, routes: list[Route], rng: random.Random) -> None:
        self.routes = routes
        self.rng = rng
        self.faults = Faults()
        self.stats = Stats()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for route in self.routes:
            server = await asyncio.start_server(
                self._handler(route), route.listen[0], route.listen[1], reuse_address=True
            )
            self._servers.append(server)

    def _handler(
        self, route: Route
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._spawn(self._serve(route, reader, writer))

        return accept

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*route.target), 2.0
            )
        except (OSError, TimeoutError):
            writer.close()  # the node is down: the sender redials with backoff
            return
        pipe = _Pipe(self, route.source, up_writer)
        drain = asyncio.get_running_loop().create_task(pipe.drain_forever())
        # The node's bytes back (its handshake challenge, transport.auth), until it hangs up.
        eof = asyncio.get_running_loop().create_task(_copy_back(up_reader, writer))
        pump = asyncio.get_running_loop().create_task(self._pump(reader, pipe))
        try:
            await asyncio.wait((drain, eof, pump), return_when=asyncio.FIRST_COMPLETED)
        finally:
            pipe.closed = True
            for task in (drain, eof, pump):
                task.cancel()
            await asyncio.gather(drain, eof, pump, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def _pump(self, reader: asyncio.StreamReader, pipe: _Pipe) -> None:
        buffer = bytearray()
        first = True
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                return
            buffer += data
            while len(buffer) >= LENGTH.size:
                (length,) = LENGTH.unpack_from(buffer)
                if length > FRAME_BYTES_MAX:
                    return
                end = LENGTH.size + length
                if len(buffer) < end:
                    break
                frame = bytes(buffer[:end])
                del buffer[:end]
                if first:  # the Hello: at once, untouched
                    first = False
                    if pipe.source == ANY_SOURCE:
                        pipe.source = _hello_sender(frame)
                    pipe.push(frame, 0.0)
                else:
                    pipe.offer(frame)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _hello_sender(frame: bytes) -> int:
    """The sending node's id from a ``Hello`` frame (``ANY_SOURCE`` if it is not one: the
    node refuses such a connection itself)."""
    try:
        return msgspec.msgpack.decode(frame[HEADER_BYTES:], type=Hello).node_id
    except msgspec.DecodeError:
        return ANY_SOURCE


async def _copy_back(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Pass what the node sends to the dialling node, untouched, until the node hangs up."""
    while data := await reader.read(READ_BYTES):
        writer.write(data)
        await writer.drain()


async def _control(proxy: FaultProxy, path: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                if not request.get("stats"):
                    proxy.set_faults(Faults.from_json(request))
                reply = {"ok": True, "faults": proxy.faults.to_json(), **asdict(proxy.stats)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return await asyncio.start_unix_server(handle, path)


async def serve(routes: list[Route], control: str, seed: int) -> None:
    proxy = FaultProxy(routes, random.Random(seed))
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await _control(proxy, control)  # the socket appearing means "ready"
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)
        await proxy.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pypaxos.torture.proxy")
    parser.add_argument("--routes", required=True, help='JSON [[source, "h:p", "h:p"], ...]')
    parser.add_argument("--control", required=True, help="Unix socket path for fault control")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    routes = [Route(int(s), _address(a), _address(b)) for s, a, b in json.loads(args.routes)]
    try:
        asyncio.run(serve(routes, args.control, args.seed))
    except OSError as error:
        print(f"proxy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
