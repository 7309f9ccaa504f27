"""The client port: Redis protocol (RESP2) connections served by the replicated store.

Each connection is an ``asyncio.Protocol`` (cheaper per byte than streams, and pipelining falls
out naturally).  ``data_received`` parses every complete command (``RespParser``), turns each
into a plan (``commands.plan``) and reserves a reply slot for it in a FIFO; key-value commands
go to the ``Router`` as encoded ``kv.Request`` s, and replies are written as soon as the slot
at the head of the FIFO is filled, so a pipelining client gets its answers in order however the
log interleaves its commands with other clients'.  All commands that arrive together reach
the driver in the same batch, and the leader packs them into as few slots as it can.

Sessions.  ``PAXOS.REQ client_id seq CMD ...`` runs ``CMD`` as exactly that request.  A plain
command runs in the connection's own session: a random 63-bit ``client_id`` drawn when the
connection opens, and the next ``seq``.  The state machine needs a session per request for its
exactly-once table; one per connection keeps that table as small as the number of clients.  If
the session is unknown to the state machine (its first request never got through, or it idled
past the TTL), the command was not applied: the connection draws a new session and runs it
once more.  A plain command whose outcome is unknown (timeout, or ``Stale`` because a resent
copy raced a later command) is answered ``-TRYAGAIN``.

Protocol: RESP2, and RESP3 after ``HELLO 3`` (redis-py 8 sends it by default).  The replies of
this store differ between the two only in how null is spelled (``$-1`` or ``_``) and in
``HELLO``'s own map, so a connection just remembers its version.

Errors follow ``docs/runtime-contract.md``: ``-ERR`` for bad commands (the connection stays
open), ``-TRYAGAIN``/``-BUSY`` for the cluster's transient states, and on bytes that are not
RESP an ``-ERR Protocol error`` after the replies already due, then the connection closes.

Flow control: a connection with ``pending_replies_max`` replies outstanding, or whose socket
buffer is full (``pause_writing``), stops being read until it drains.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

from pypaxos.kv import Request, Result, SessionExpired, Stale, encode_request
from pypaxos.runtime.commands import NULL_RESP2, NULL_RESP3, Hello, Immediate, Info, Ops, plan
from pypaxos.runtime.resp import (
    RespParser,
    RespProtocolError,
    encode_bulk,
    encode_error,
    encode_integer,
)
from pypaxos.runtime.router import Failure, Outcome, Router
from pypaxos.transport.tcp import parse_address

log = logging.getLogger(__name__)

TRYAGAIN_NO_LEADER = encode_error("TRYAGAIN no leader")
TRYAGAIN_UNKNOWN = encode_error("TRYAGAIN no leader: the request timed out, its outcome is unknown")
BUSY = encode_error("BUSY proposal queue full")
BULK_BYTES_MAX = 4 * 1024 * 1024  # above the value limit, so a big value gets a clear error

InfoSource = Callable[[str | None], str]


def new_client_id() -> int:
    """A random id in [2**62, 2**63): positive, 63-bit, and unlikely to meet a chosen one."""
    return secrets.randbits(62) | (1 << 62)


class _Slot:
    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


class RespServer:
    """Listens on the client address and owns the open connections."""

    def __init__(
        self,
        router: Router,
        info: InfoSource,
        address: str,
        *,
        pending_replies_max: int = 4096,
    ) -> None:
        self.router = router
        self.info = info
        self.host, self.port = parse_address(address)
        self.pending_replies_max = pending_replies_max
        self.connections: set[RespConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RespConnection(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        self.stop_accepting()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class RespConnection(asyncio.Protocol):
    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.router = server.router
        self.parser = RespParser(bulk_bytes_max=BULK_BYTES_MAX)
        self.transport: asyncio.Transport | None = None
        self.slots: deque[_Slot] = deque()
        self.closing = False  # no more commands; close once the queued replies are written
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.flush_scheduled = False
        self.client_id = new_client_id()
        self.seq = 0
        self.protocol = 2
        self.peer = "unknown"

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if peername:
            self.peer = f"{peername[0]}:{peername[1]}"
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.slots.clear()
        self.server.connections.discard(self)
        if exc is not None:
            log.warning("client %s: connection lost: %s", self.peer, exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            commands = self.parser.feed(data)
        except RespProtocolError as error:
            self._protocol_error(error)
            return
        for args in commands:
            self._command(args)
            if self.closing:
                return
        if self.parser.error is not None:
            self._protocol_error(self.parser.error)
            return
        self._update_reading()

    def eof_received(self) -> bool | None:
        # The client half-closed: answer what it sent, then close.
        self.closing = True
        self._flush()
        return True

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- commands ----------------------------------------------------------------------------

    def _command(self, args: list[bytes]) -> None:
        planned = plan(args)
        if isinstance(planned, Immediate):
            self._reply_now(planned.reply)
            if planned.close:
                self.closing = True
                self._flush()
        elif isinstance(planned, Info):
            self._reply_now(encode_bulk(self.server.info(planned.section).encode()))
        elif isinstance(planned, Hello):
            if planned.protocol is not None:
                self.protocol = planned.protocol
            self._reply_now(self._hello_reply())
        else:
            slot = _Slot()
            self.slots.append(slot)
            _Call(self, slot, planned).start()

    def _protocol_error(self, error: RespProtocolError) -> None:
        log.warning("client %s: protocol error, closing: %s", self.peer, error)
        self._reply_now(encode_error(f"ERR Protocol error: {error}"))
        self.closing = True
        self._flush()

    def _reply_now(self, data: bytes) -> None:
        if not self.slots and self.transport is not None and not self.closed:
            self.transport.write(data)
        else:
            self.slots.append(_Slot(data))

    def fill(self, slot: _Slot, data: bytes) -> None:
        """Answer ``slot``; the write happens once the current batch of answers is done."""
        if self.closed:
            return
        slot.data = data
        if not self.flush_scheduled and self.slots and self.slots[0] is slot:
            # The driver answers a whole batch in one go: one write per connection per batch
            # instead of one per reply (a pipelining client gets its 16 answers in one packet).
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        slots = self.slots
        out: list[bytes] = []
        while slots and slots[0].data is not None:
            data = slots.popleft().data
            assert data is not None
            out.append(data)
        transport = self.transport
        if transport is None or self.closed:
            return
        if out:
            transport.write(b"".join(out))
        if self.closing and not slots:
            transport.close()
            self.closed = True
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        pause = self.write_paused or len(self.slots) >= self.server.pending_replies_max
        if pause and not self.read_paused:
            self.read_paused = True
            transport.pause_reading()
        elif not pause and self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    @property
    def null(self) -> bytes:
        return NULL_RESP3 if self.protocol == 3 else NULL_RESP2

    def _hello_reply(self) -> bytes:
        fields: list[tuple[bytes, bytes]] = [
            (b"server", encode_bulk(b"pypaxos")),
            (b"version", encode_bulk(b"0.1.0")),
            (b"proto", encode_integer(self.protocol)),
            (b"id", encode_integer(self.client_id)),
            (b"mode", encode_bulk(b"standalone")),
            (b"role", encode_bulk(b"master")),
            (b"modules", b"*0\r\n"),
        ]
        head = b"%%%d\r\n" % len(fields) if self.protocol == 3 else b"*%d\r\n" % (2 * len(fields))
        return head + b"".join(encode_bulk(key) + value for key, value in fields)

    def next_session(self, rotate_from: int | None = None) -> tuple[int, int]:
        """The plain session's next ``(client_id, seq)``; a fresh session if asked to rotate."""
        if rotate_from is not None and rotate_from == self.client_id:
            self.client_id, self.seq = new_client_id(), 0
        self.seq += 1
        return self.client_id, self.seq


class _Call:
    """One planned command in flight: its log requests and the results gathered so far."""

    __slots__ = ("conn", "ops", "remaining", "replied", "results", "slot")

    def __init__(self, conn: RespConnection, slot: _Slot, ops: Ops) -> None:
        self.conn = conn
        self.slot = slot
        self.ops = ops
        self.results: list[Result | None] = [None] * len(ops.ops)
        self.remaining = len(ops.ops)
        self.replied = False

    def start(self) -> None:
        for index in range(len(self.ops.ops)):
            self._submit(index, retry=False)

    def _submit(self, index: int, *, retry: bool, rotate_from: int | None = None) -> None:
        session = self.ops.session
        plain = session is None
        if session is None:
            session = self.conn.next_session(rotate_from)
        client_id, seq = session
        request = encode_request(Request(client_id, seq, self.ops.ops[index]))

        def done(outcome: Outcome) -> None:
            self._done(index, outcome, plain=plain, retry=retry, client_id=client_id)

        self.conn.router.submit(request, done)

    def _done(
        self, index: int, outcome: Outcome, *, plain: bool, retry: bool, client_id: int
    ) -> None:
        if self.replied:
            return
        if isinstance(outcome, Failure):
            self._reply(_failure_reply(outcome))
            return
        if plain and isinstance(outcome, SessionExpired) and not retry:
            # Not applied: the session never started or was forgotten.  Start a new one.
            self._submit(index, retry=True, rotate_from=client_id)
            return
        if plain and isinstance(outcome, Stale):
            self._reply(TRYAGAIN_UNKNOWN)  # a resent copy raced a later command: unknown
            return
        self.results[index] = outcome
        self.remaining -= 1
        if self.remaining == 0:
            results: Sequence[Result] = [r for r in self.results if r is not None]
            self._reply(self.ops.combine(results, self.conn.null))

    def _reply(self, data: bytes) -> None:
        self.replied = True
        self.conn.fill(self.slot, data)


def _failure_reply(failure: Failure) -> bytes:
    if failure is Failure.BUSY:
        return BUSY
    if failure is Failure.NO_LEADER:
        return TRYAGAIN_NO_LEADER
    return TRYAGAIN_UNKNOWN
