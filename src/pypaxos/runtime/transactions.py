"""One connection's ``MULTI``/``EXEC`` queue and ``WATCH`` flag (Redis 7.0's replies).

Between ``MULTI`` and ``EXEC`` the connection plans each command as usual and answers
``QUEUED``; nothing is sent.  ``EXEC`` sends every queued command as *one* log entry,
``kv.Exec`` (exactly-once in the connection's session like any request), which the state
machine runs atomically; its ``kv.Replies`` are split back into each command's own reply.

Errors, as in Redis: a command Redis refuses before queueing (unknown, wrong number of
arguments, not permitted, too large a transaction) is answered at once and makes ``EXEC``
answer ``EXECABORT``; any other error (a syntax error Redis finds when it runs the command, a
type error at execution) is that command's reply inside ``EXEC``'s array, and the others run.
``MULTI`` inside ``MULTI`` and ``WATCH`` inside ``MULTI`` are refused without aborting.

Replies pypaxos computes itself (``PING``, ``ECHO``, ``INFO``, ``CLIENT``...) are computed when
the command is queued, not at ``EXEC``; ``AUTH`` and ``HELLO`` are refused inside ``MULTI``.

``WATCH`` goes through the log (``kv.Watch``, ``kv.transactions`` has the design); this side
only remembers whether the connection is watching: ``EXEC`` asks the state machine to check
the watch then (``Exec.watching``), ``UNWATCH``/``DISCARD``/``EXEC`` end it locally, and the next
``WATCH`` tells the state machine to drop what was left (``Watch.reset``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pypaxos.kv import Command, Result
from pypaxos.kv.commands import Aborted, Exec, Replies, Select, Watch
from pypaxos.runtime.commands import refused_before_running
from pypaxos.runtime.plans import OK, Ops, TxCommand
from pypaxos.runtime.replies import NULL_ARRAY_RESP2, NULL_RESP3, Combine, result_error
from pypaxos.transport.resp import encode_error, encode_simple

QUEUED = encode_simple("QUEUED")
EXECABORT = encode_error("EXECABORT Transaction discarded because of previous errors.")
NESTED_MULTI = encode_error("ERR MULTI calls can not be nested")
EXEC_WITHOUT_MULTI = encode_error("ERR EXEC without MULTI")
DISCARD_WITHOUT_MULTI = encode_error("ERR DISCARD without MULTI")
WATCH_IN_MULTI = encode_error("ERR WATCH inside MULTI is not allowed")
NOT_IN_MULTI = encode_error("ERR Command not allowed inside a transaction")
MULTI_COMMANDS_MAX = 100_000
MULTI_BYTES_MAX = 8 * 1024 * 1024  # the queued arguments (one log entry: under a frame's size)
TOO_LARGE = encode_error(
    f"ERR transaction too large (at most {MULTI_COMMANDS_MAX} commands, {MULTI_BYTES_MAX} bytes)"
)


class Transaction:
    """The connection's queue (``None``: not in ``MULTI``) and whether it is watching."""

    __slots__ = ("failed", "queue", "queued_bytes", "selected", "watching")

    def __init__(self) -> None:
        self.queue: list[Ops | bytes] | None = None  # a command's plan, or its reply already
        self.failed = False
        self.queued_bytes = 0
        self.watching = False
        self.selected: int | None = None  # the database the last queued SELECT switches to

    @property
    def active(self) -> bool:
        return self.queue is not None

    def command(self, planned: TxCommand) -> bytes | Ops:
        """``MULTI``/``EXEC``/``DISCARD``/``WATCH``/``UNWATCH``: the reply now, or the
        ``Ops`` to send through the log (``EXEC``, ``WATCH``)."""
        name = planned.name
        if name == b"MULTI":
            if self.queue is not None:
                return NESTED_MULTI
            self.queue, self.failed, self.queued_bytes = [], False, 0
            self.selected = None
            return OK
        if name == b"WATCH":
            if self.queue is not None:
                return WATCH_IN_MULTI
            reset = not self.watching
            self.watching = True
            return Ops((Watch(planned.keys, reset),), _combine_watch)
        if name == b"UNWATCH":
            self.watching = False
            return OK
        queue, failed, watching = self.queue, self.failed, self.watching
        if queue is None:
            return EXEC_WITHOUT_MULTI if name == b"EXEC" else DISCARD_WITHOUT_MULTI
        self.queue, self.failed, self.watching = None, False, False
        self.selected = None
        if name == b"DISCARD":
            return OK
        if failed:
            return EXECABORT
        ops: list[Command] = []
        for entry in queue:
            if isinstance(entry, Ops):
                ops += entry.ops
        return Ops((Exec(tuple(ops), watching),), _exec_reply(tuple(queue)))

    def add(self, args: list[bytes], planned: Ops | bytes) -> bytes:
        """Queue command ``args`` (its plan, or its reply if it has one already): the reply to
        send now (``QUEUED``, or the error that will make ``EXEC`` abort)."""
        assert self.queue is not None
        if isinstance(planned, bytes) and refused_before_running(args, planned):
            self.failed = True
            return planned
        self.queued_bytes += sum(map(len, args))
        if len(self.queue) >= MULTI_COMMANDS_MAX or self.queued_bytes > MULTI_BYTES_MAX:
            self.failed = True
            return TOO_LARGE
        self.queue.append(planned)
        return QUEUED

    def select(self, args: list[bytes], db: int) -> bytes:
        """Queue ``SELECT db``: the commands queued after it run in ``db`` (``kv.Select``, in
        the transaction's log entry), and the connection stays there after ``EXEC``."""
        reply = self.add(args, Ops((Select(db),), _combine_watch))
        if reply == QUEUED:
            self.selected = db
        return reply

    def refuse(self, reply: bytes) -> bytes:
        """A command refused before queueing (not permitted): ``EXEC`` will abort."""
        self.failed = True
        return reply


def _combine_watch(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return result_error(result) or OK


def _exec_reply(queue: tuple[Ops | bytes, ...]) -> Combine:
    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        if isinstance(result, Aborted):
            return null if null == NULL_RESP3 else NULL_ARRAY_RESP2
        if not isinstance(result, Replies):
            refused = result_error(result)
            return refused or encode_error(f"ERR internal error: {type(result).__name__}")
        items = result.items
        parts = [b"*%d\r\n" % len(queue)]
        position = 0
        for entry in queue:
            if isinstance(entry, bytes):
                parts.append(entry)
                continue
            count = len(entry.ops)
            parts.append(entry.combine(items[position : position + count], null))
            position += count
        return b"".join(parts)

    return combine
