"""The blocking commands: ``BLPOP``, ``BRPOP``, ``BLMOVE``, ``BRPOPLPUSH``, ``BZPOPMIN``,
``BZPOPMAX``.

A blocking command is planned as a ``Blocking``: the non-blocking attempt (``kv.LPopFirst``,
``kv.LMove`` or ``kv.ZPopFirst``: one log command, so linearizable and atomic like any write),
the keys to watch, and the timeout.  The connection sends the attempt at once; if it finds
nothing to take, the client waits on the node it is connected to (``BlockedClients``).  After
each batch this node applies, the waiting clients, oldest first, look at the node's own state
(``query_local``); as many as the items now at their keys (lists, or sorted sets for
``BZPOP*``) send their attempt again through the log, where each either takes an item (the
client is answered) or finds it taken by someone else first (the client waits on).  So a
client is answered by the node it waits on, as soon as an entry applied there serves it; the
attempt that answers it is itself a log command, so two waiters never take the same item.

As in Redis, a blocked connection runs nothing else until it is answered: the commands it
pipelined behind the blocking one are held (``RespConnection.held``; the connection keeps
reading, up to its reply bound, so that a client going away is noticed) and run afterwards.  On
timeout the client gets Redis's null array (``*-1``; RESP3's null), ``BLMOVE`` too.  A
connection that closes, or half-closes, while blocked is answered as timed out and forgotten
(``release``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pypaxos.kv import (
    Array,
    Command,
    Integer,
    RequestBatch,
    Result,
    Results,
    Value,
    encode_request,
)
from pypaxos.kv.collection_ops import LLen, LMove, LPopFirst, ZCard, ZPopFirst
from pypaxos.kv.commands import InDb
from pypaxos.runtime.collection_args import SYNTAX
from pypaxos.runtime.collection_commands import mpop_args
from pypaxos.runtime.collection_replies import reply_bulk, reply_mpop
from pypaxos.runtime.replies import NULL_RESP3, Combine, result_error, unexpected
from pypaxos.transport.resp import encode_array, encode_bulk, encode_error

TIMEOUT_S_MAX = 10.0**9
"""The longest timeout accepted (about 31 years; Redis's bound is its clock's range)."""

NOT_SERVED = b""
"""What an attempt's combine answers when there was nothing to take (never a RESP reply)."""


@dataclass(frozen=True, slots=True)
class Blocking:
    """A blocking command's plan: its attempt, the keys it waits on, its timeout."""

    ops: tuple[Command, ...]
    combine: Combine  # the attempt's results to the reply, or NOT_SERVED
    keys: tuple[bytes, ...]
    timeout_s: float  # 0: wait for ever
    wanted: bytes = b"list"  # the type at one of the keys that may serve it (``TYPE``'s name)


def _timeout(raw: bytes) -> float | bytes:
    try:
        seconds = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return encode_error("ERR timeout is not a float or out of range")
    if math.isnan(seconds) or math.isinf(seconds) or seconds > TIMEOUT_S_MAX:
        return encode_error("ERR timeout is not a float or out of range")
    if seconds < 0:
        return encode_error("ERR timeout is negative")
    return seconds


def _pop_reply(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value:
        return NOT_SERVED
    if type(result) is Array:
        return encode_array(result.items)  # [key, item]
    return result_error(result) or unexpected(result)


def _move_reply(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value and result.value is None:
        return NOT_SERVED
    return reply_bulk(results, null)


def _zpop_reply(results: Sequence[Result], null: bytes) -> bytes:
    """``[key, member, score]``: the score a bulk string in RESP2, a double in RESP3."""
    (result,) = results
    if type(result) is Value:
        return NOT_SERVED
    if type(result) is Array:
        key, member, score = result.items
        spelled = b",%s\r\n" % score if null == NULL_RESP3 else encode_bulk(score)
        return b"*3\r\n" + encode_bulk(key) + encode_bulk(member) + spelled
    return result_error(result) or unexpected(result)


def _arity(args: list[bytes]) -> bytes:
    name = args[0].decode(errors="replace").lower()
    return encode_error(f"ERR wrong number of arguments for '{name}' command")


def _bpop(left: bool) -> Callable[[list[bytes]], Blocking | bytes]:
    def plan(args: list[bytes]) -> Blocking | bytes:
        if len(args) < 3:
            return _arity(args)
        timeout = _timeout(args[-1])
        if isinstance(timeout, bytes):
            return timeout
        keys = tuple(args[1:-1])
        return Blocking((LPopFirst(keys, left),), _pop_reply, keys, timeout)

    return plan


def _bzpop(highest: bool) -> Callable[[list[bytes]], Blocking | bytes]:
    def plan(args: list[bytes]) -> Blocking | bytes:
        if len(args) < 3:
            return _arity(args)
        timeout = _timeout(args[-1])
        if isinstance(timeout, bytes):
            return timeout
        keys = tuple(args[1:-1])
        return Blocking((ZPopFirst(keys, highest),), _zpop_reply, keys, timeout, b"zset")

    return plan


def _bmpop(scored: bool) -> Callable[[list[bytes]], Blocking | bytes]:
    """``BLMPOP``/``BZMPOP timeout numkeys key... side [COUNT n]``."""

    def plan(args: list[bytes]) -> Blocking | bytes:
        if len(args) < 5:
            return _arity(args)
        timeout = _timeout(args[1])
        if isinstance(timeout, bytes):
            return timeout
        parsed = mpop_args(args, 2, (b"MIN", b"MAX") if scored else (b"LEFT", b"RIGHT"))
        if isinstance(parsed, bytes):
            return parsed
        keys, side, count = parsed
        reply = reply_mpop(scored)

        def combine(results: Sequence[Result], null: bytes) -> bytes:
            (result,) = results
            return NOT_SERVED if type(result) is Value else reply(results, null)

        op: Command = ZPopFirst(keys, side, count) if scored else LPopFirst(keys, side, count)
        return Blocking((op,), combine, keys, timeout, b"zset" if scored else b"list")

    return plan


_SIDES = {b"LEFT": True, b"RIGHT": False}


def _blmove(args: list[bytes]) -> Blocking | bytes:
    if len(args) != 6:
        return _arity(args)
    source_side, destination_side = _SIDES.get(args[3].upper()), _SIDES.get(args[4].upper())
    if source_side is None or destination_side is None:
        return SYNTAX
    timeout = _timeout(args[5])
    if isinstance(timeout, bytes):
        return timeout
    op = LMove(args[1], args[2], source_side, destination_side)
    return Blocking((op,), _move_reply, (args[1],), timeout)


def _brpoplpush(args: list[bytes]) -> Blocking | bytes:
    if len(args) != 4:
        return _arity(args)
    return _blmove([b"BLMOVE", args[1], args[2], b"RIGHT", b"LEFT", args[3]])


BLOCKING_PLANNERS: dict[bytes, Callable[[list[bytes]], Blocking | bytes]] = {
    b"BLPOP": _bpop(left=True),
    b"BRPOP": _bpop(left=False),
    b"BLMOVE": _blmove,
    b"BRPOPLPUSH": _brpoplpush,
    b"BZPOPMIN": _bzpop(highest=False),
    b"BZPOPMAX": _bzpop(highest=True),
    b"BLMPOP": _bmpop(scored=False),
    b"BZMPOP": _bmpop(scored=True),
}


def timeout_reply(null: bytes) -> bytes:
    """What a blocking list command answers on timeout, ``BLMOVE`` too: Redis's null array."""
    return NULL_ARRAY_RESP2 if null != NULL_RESP3 else NULL_RESP3


NULL_ARRAY_RESP2 = b"*-1\r\n"


def attempt_once(planned: Blocking) -> Combine:
    """How a blocking command queued in ``MULTI`` answers its one attempt: the timeout's null
    when nothing was there to take (Redis runs it as if the timeout had passed)."""
    attempt = planned.combine

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        reply = attempt(results, null)
        return timeout_reply(null) if reply == NOT_SERVED else reply

    return combine


# --- the clients waiting on this node ---------------------------------------------------------


class BlockedConnection(Protocol):
    """What ``BlockedClients`` needs of a connection (``server.RespConnection``)."""

    @property
    def closed(self) -> bool: ...

    @property
    def null(self) -> bytes: ...

    @property
    def db(self) -> int: ...  # its database (SELECT): constant while it is blocked

    def run_ops(
        self, ops: tuple[Command, ...], combine: Combine, on_reply: Callable[[bytes], None]
    ) -> None: ...

    def unblock(self, reply: bytes) -> None: ...


class LocalState(Protocol):
    """What ``BlockedClients`` needs of the node: its applied index and a local query."""

    def applied_index(self) -> int: ...

    def query_local(self, command: bytes) -> object: ...


_Wanted = tuple[bytes, int, bytes]  # (type wanted, database, key)


def _count_op(kind: bytes, db: int, key: bytes) -> Command:
    """``LLEN``/``ZCARD`` of ``key`` in database ``db``."""
    op: Command = LLen(key) if kind == b"list" else ZCard(key)
    return InDb(db, op) if db else op


class _Waiter:
    __slots__ = ("conn", "done", "expired", "in_flight", "plan", "sent_index", "timer")

    def __init__(self, conn: BlockedConnection, plan: Blocking) -> None:
        self.conn = conn
        self.plan = plan
        self.in_flight = False  # an attempt is in the log: wait for its answer
        self.sent_index = 0  # this node's applied index when the attempt left
        self.expired = False
        self.done = False
        self.timer: asyncio.TimerHandle | None = None


class BlockedClients:
    """The clients blocked on this node, oldest first, and how they are woken.

    Waking is counted, not broadcast: the node's own state says how many items each watched
    key holds (``LLEN``/``ZCARD``), the attempts already in flight claim theirs first, and then
    the oldest waiters claim the rest, one item each; only those send an attempt.  So a push of
    one item to a list with a hundred waiters costs one attempt, not a hundred.  An attempt
    that finds nothing looks again at once if this node applied anything since it left (the
    item it saw may have come after its place in the log), else at the next applied batch.
    """

    def __init__(self, state: LocalState) -> None:
        self.state = state
        self.waiters: list[_Waiter] = []
        self.attempts = 0  # attempts sent, for tests and metrics
        self._seen_index = -1

    def block(self, conn: BlockedConnection, plan: Blocking) -> None:
        """Run ``plan``'s attempt now; wait if it finds nothing (the caller holds the
        connection's later commands until ``conn.unblock``)."""
        waiter = _Waiter(conn, plan)
        self.waiters.append(waiter)
        if plan.timeout_s > 0:
            loop = asyncio.get_running_loop()
            waiter.timer = loop.call_later(plan.timeout_s, self._expire, waiter)
        self._attempt(waiter)

    def on_applied(self) -> None:
        """After a batch was applied here: wake the waiters it may serve."""
        if not self.waiters:
            return
        index = self.state.applied_index()
        if index == self._seen_index:
            return
        self._seen_index = index
        self._wake()

    def _wake(self) -> None:
        self.waiters = [w for w in self.waiters if not w.done and not w.conn.closed]
        idle = [w for w in self.waiters if not w.in_flight]
        if not idle:
            return
        counts = self._counts(idle)
        for waiter in self.waiters:
            if waiter.in_flight:
                self._claim(waiter, counts)
        for waiter in idle:
            if self._claim(waiter, counts):
                self._attempt(waiter)

    def _counts(self, waiters: list[_Waiter]) -> dict[_Wanted, int]:
        """Items at each watched key, in this node's state: ``(type wanted, database, key) ->
        count``."""
        wanted = list(
            dict.fromkeys((w.plan.wanted, w.conn.db, key) for w in waiters for key in w.plan.keys)
        )
        ops = tuple(_count_op(kind, db, key) for kind, db, key in wanted)
        answer = self.state.query_local(encode_request(RequestBatch(0, 0, ops)))
        if not isinstance(answer, Results):
            return dict.fromkeys(wanted, 1)  # cannot tell: let the log say
        return {
            pair: result.value if type(result) is Integer else 0
            for pair, result in zip(wanted, answer.results, strict=True)
        }

    @staticmethod
    def _claim(waiter: _Waiter, counts: dict[_Wanted, int]) -> bool:
        for key in waiter.plan.keys:
            pair = (waiter.plan.wanted, waiter.conn.db, key)
            left = counts.get(pair, 0)
            if left > 0:
                counts[pair] = left - 1
                return True
        return False

    def _attempt(self, waiter: _Waiter) -> None:
        waiter.in_flight = True
        waiter.sent_index = self.state.applied_index()
        self.attempts += 1

        def answered(reply: bytes) -> None:
            waiter.in_flight = False
            if waiter.done:
                return
            if reply != NOT_SERVED:
                self._finish(waiter, reply)
            elif waiter.expired or waiter.conn.closed:
                self._finish(waiter, self._timeout_reply(waiter))
            elif self.state.applied_index() != waiter.sent_index:
                self._wake()

        waiter.conn.run_ops(waiter.plan.ops, waiter.plan.combine, answered)

    def release(self, conn: BlockedConnection) -> None:
        """``conn`` is going away (closed, or half-closed by its client): stop waiting for it,
        answering its blocking command as a timeout (an attempt in flight answers first)."""
        for waiter in [w for w in self.waiters if w.conn is conn]:
            self._expire(waiter)

    def _expire(self, waiter: _Waiter) -> None:
        waiter.expired = True
        if not waiter.in_flight and not waiter.done:
            self._finish(waiter, self._timeout_reply(waiter))

    @staticmethod
    def _timeout_reply(waiter: _Waiter) -> bytes:
        return timeout_reply(waiter.conn.null)

    def _finish(self, waiter: _Waiter, reply: bytes) -> None:
        waiter.done = True
        if waiter.timer is not None:
            waiter.timer.cancel()
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        if not waiter.conn.closed:
            waiter.conn.unblock(reply)
