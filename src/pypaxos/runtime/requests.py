"""How a client connection's commands become requests to the router.

Batching.  The plain key-value commands of one ``data_received`` form a ``Group``:
one ``kv.RequestBatch`` (one log entry, one request id, one session ``seq``), one answer
(``kv.Results``) and one reply slot holding all their replies, written in one ``write``.  So
the router, the driver, the log, the wire and the disk work once per group, not per command
(a redis-benchmark connection pipelining 32 commands sends groups of 32); the per-command work
left is parsing, planning, executing and formatting the reply.  A group is bounded
(``GROUP_OPS_MAX`` commands, ``GROUP_BYTES_MAX`` bytes) and is submitted before any other
command of the connection (``PAXOS.REQ``, ``INFO``, ...), so the connection's order holds.

Sessions.  ``PAXOS.REQ client_id seq CMD ...`` runs ``CMD`` as exactly that request.  A plain
command runs in the connection's own session: a random 63-bit ``client_id`` drawn when the
connection opens, and the next ``seq``.  The state machine needs a session per request for its
exactly-once table; one per connection keeps that table as small as the number of clients.  If
the session is unknown to the state machine (its first request never got through, or it idled
past the TTL), the command was not applied: the connection draws a new session and runs it
once more.  A plain command whose outcome is unknown (timeout, or ``Stale`` because a resent
copy raced a later command) is answered ``-TRYAGAIN``.

Reads.  A group or command of reads only (``kv.READ_OPS``: ``GET``, ``MGET``, ``EXISTS``...)
goes on the read-index path when the server is so configured (``read_index``;
``Router.submit(read=True)``; the node answers it after a confirmation round, under a lease, or
as a follower, per its config): no session ``seq``, no log entry.  After ``READONLY`` the
connection answers such reads from the local node's state at once (``Router.query_local``:
possibly stale, on any node) until ``READWRITE``.  The connection's own order still holds, as it
does through the log: a read is sent on a read path only when none of the connection's log
commands is outstanding (else it goes through the log behind them), and a log command waits
(``deferred``) while a read of the connection is outstanding on the read-index path, so a
pipelined ``SET`` then ``GET`` reads the ``SET`` and a ``GET`` then ``SET`` does not.  The
read-index groups of many connections arriving in one pass of the loop leave as one read
(``ReadBurst``), and the replies a driver batch answers are written at its end
(``RespServer.flush_due``), one write per connection.

A read under ``PAXOS.REQ client_id seq`` takes the read path too when this node's state knows
the session and ``seq`` is above its last applied one (``Router.session_read_ok``): a read
changes nothing, so running it once, twice or not in the log is the same for exactly-once, and
it leaves the session as it was (the next write's ``seq`` only has to be larger).  The rest go
through the log, which answers them as before: a session's first request (the log opens it), an
expired or unknown session (``session expired``), a repeated or stale ``seq``.  A session kept
alive by reads alone is not refreshed (its TTL counts logged requests).

A pipelined group mixing reads and writes goes through the log whole, by design: its reads ride
in the entry its writes need anyway (no extra round, answered with the writes).  Sending its
reads on the read path would gain nothing for reads after a write (they must wait for it, and a
read-index read answers from the state *when answered*, so it cannot be sent alongside), and for
reads before the first write it would hold every write back for a confirmation round.
"""

from __future__ import annotations

import enum
import logging
import operator
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from pypaxos.kv import (
    READ_OPS,
    Answer,
    Command,
    Get,
    Ok,
    Request,
    RequestBatch,
    Result,
    Results,
    SessionExpired,
    Stale,
    Value,
    encode_request,
)
from pypaxos.kv.commands import InDb
from pypaxos.runtime.commands import FAST_COMMANDS, Reply1, single_reply
from pypaxos.runtime.plans import OK, Auth, Hello, Ops, Plan
from pypaxos.runtime.replies import Combine, result_error
from pypaxos.runtime.router import VALUES_KEPT, Failure, LocalGets, LocalRead, Outcome, Router
from pypaxos.transport.resp import (
    encode_bulk_values,
    encode_bulks,
    encode_error,
)

if TYPE_CHECKING:
    from pypaxos.runtime.server import RespConnection, _Slot

log = logging.getLogger(__name__)

TRYAGAIN_NO_LEADER = encode_error("TRYAGAIN no leader")
TRYAGAIN_UNKNOWN = encode_error("TRYAGAIN no leader: the request timed out, its outcome is unknown")
BUSY = encode_error("BUSY proposal queue full")
READ_TYPES: frozenset[type] = frozenset(READ_OPS)  # plans of these only take the read path
GET_REPLY = FAST_COMMANDS[b"GET"][2]  # the reply ``plain_single`` gives a GET (``_get_replies``)
SET_REPLY = FAST_COMMANDS[b"SET"][2]  # and a SET: ``+OK`` for ``Ok`` (a group of them, at once)
_OK_RESULT = Ok()
GROUP_OPS_MAX = 1024  # bounds of one connection's batch (one log entry, see Group)
GROUP_BYTES_MAX = 256 * 1024


class RequestPath(enum.Enum):
    LOG = "log"
    READ_INDEX = "read-index"
    LOCAL = "local"  # READONLY: this node's state, now


def now_ms() -> int:
    """This node's wall clock in Unix ms: the time stamped on every request, from which the
    store's clock and the keys' deadlines follow (``kv.state_machine``; the clock assumption is
    in docs/runtime-contract.md)."""
    return time.time_ns() // 1_000_000


def _read_request(ops: Sequence[Command], db: int) -> LocalRead:
    """A read-only request in database ``db``: no session (``KVStateMachine.query`` does not
    look at it), not encoded unless it is forwarded (``router.LocalRead``)."""
    if db:
        ops = in_db(ops, db)
    if len(ops) == 1:
        return LocalRead(Request(0, 0, ops[0], now_ms()))
    return LocalRead(RequestBatch(0, 0, tuple(ops), now_ms()))


def in_db(ops: Sequence[Command], db: int) -> tuple[Command, ...]:
    """``ops`` as a connection in database ``db`` sends them: each wrapped in ``kv.InDb``
    unless ``db`` is 0 (the state machine's default, so most requests carry nothing)."""
    if not db:
        return tuple(ops)
    return tuple(InDb(db, op) for op in ops)


class Group:
    """Plain commands of one connection that arrived together, run as one ``RequestBatch``.

    One log entry, one request id, one session ``seq``, one answer from the state machine and
    one place in the reply FIFO for the whole group, instead of one of each per command: the
    per-command work left is parsing, planning and formatting each reply.  The commands take
    effect in order at the batch's place in the log, so each stays linearizable and the
    connection's order holds.  A group of a single command is sent as a plain ``Request``.

    ``ops`` and ``replies`` run in parallel for single-op commands; a multi-key command adds
    its ops and a ``(combine, count)`` pair, which switches reply formatting to the general
    loop.
    """

    __slots__ = (
        "bytes",
        "conn",
        "db",
        "gets",
        "keys",
        "multi",
        "ops",
        "read_ops",
        "replies",
        "slot",
    )

    def __init__(self, conn: RespConnection) -> None:
        self.conn = conn
        self.db = conn.db  # a group ends before any SELECT: all its commands share one
        self.ops: list[Command] = []
        self.replies: list[Reply1 | tuple[Combine, int]] = []
        self.multi = False
        self.gets = False  # plain GETs only (``of_gets``): a read burst may answer it in bulk
        self.keys: list[bytes] = []  # ... and their keys
        self.bytes = 0

    @classmethod
    def of_gets(cls, conn: RespConnection, keys: list[bytes]) -> Group:
        """A group of plain ``GET`` s of ``keys`` (``RespParser.feed_gets``), built without
        Python code per command: what ``plain_single`` would have added for each."""
        group = cls(conn)
        group.replies = [GET_REPLY] * len(keys)
        group.gets = True
        group.keys = keys
        group.read_ops = len(keys)
        return group

    def add(self, planned: Ops) -> None:
        """A command from ``plan`` (the general path)."""
        if len(planned.ops) == 1:
            self.replies.append(single_reply(planned.combine))
        else:
            self.replies.append((planned.combine, len(planned.ops)))
            self.multi = True
        self.ops += planned.ops

    def full(self, args: list[bytes], count_bytes: bool) -> bool:
        """After adding ``args``: is the group at a bound (submit it now)?"""
        if count_bytes:
            self.bytes += sum(map(len, args))
        return len(self.ops) >= GROUP_OPS_MAX or self.bytes >= GROUP_BYTES_MAX

    @property
    def reads_only(self) -> bool:
        return self.gets or self.read_ops == len(self.ops)

    def commands(self) -> list[Command]:
        """The group's commands: a ``GET`` run's are made from its keys only when a path
        needs them (a read burst of runs reads the keys themselves: ``LocalGets``)."""
        if self.gets and len(self.ops) != len(self.keys):
            self.ops = list(map(Get, self.keys))
        return self.ops

    def submit(self) -> None:
        if not self.gets:
            ops = self.ops
            # Counted without a Python loop (the types of a pipeline are few).
            types = set(map(type, ops))
            if types <= READ_TYPES:
                self.read_ops = len(ops)
            elif types.isdisjoint(READ_TYPES):
                self.read_ops = 0
            else:
                self.read_ops = sum([type(op) in READ_TYPES for op in ops])
        self.slot = self.conn.new_slot(len(self.replies))
        self.conn.dispatch(self)

    def route(self) -> None:
        conn = self.conn
        path = conn.path_for(self.reads_only)
        if self.read_ops:
            conn.count_reads(path, self.read_ops)
        if path is RequestPath.LOG:
            self._send(retry=False)
            return
        if path is RequestPath.LOCAL:
            request = _read_request(self.commands(), self.db)
            self._done(conn.router.query_local(request), retry=True, client_id=0)
            return
        conn.sent(path)
        conn.server.read_burst.add(self)

    def _send(self, *, retry: bool, rotate_from: int | None = None) -> None:
        conn = self.conn
        client_id, seq = conn.next_session(rotate_from)
        ops: Sequence[Command] = self.commands()
        if self.db:
            ops = in_db(ops, self.db)
        if len(ops) == 1:
            request = encode_request(Request(client_id, seq, ops[0], now_ms()))
        else:
            request = encode_request(RequestBatch(client_id, seq, tuple(ops), now_ms()))

        def done(outcome: Outcome) -> None:
            self._done(outcome, retry=retry, client_id=client_id)
            conn.answered(RequestPath.LOG)  # after a retry's resend: the order holds meanwhile

        conn.sent(RequestPath.LOG)
        conn.router.submit(request, done)

    def _done(self, outcome: Outcome, *, retry: bool, client_id: int) -> None:
        if isinstance(outcome, Failure):
            self._reply_all(_failure_reply(outcome))
            return
        first = _first_look(outcome, plain=True, retried=retry)
        if first is _Retry.NEW_SESSION:
            self._send(retry=True, rotate_from=client_id)
            return
        if first is not None:
            self._reply_all(first)
            return
        results: Sequence[Result]
        if isinstance(outcome, Results):
            results = outcome.results
        else:
            refused = result_error(outcome)
            if refused is not None:  # an expired session after the retry
                self._reply_all(refused)
                return
            results = (outcome,)
        if len(results) != len(self.commands()):
            self._reply_all(_unexpected_answer(outcome))
            return
        null = self.conn.null
        if not self.multi:
            replies = cast(list[Reply1], self.replies)
            count = len(replies)
            if replies.count(SET_REPLY) == count and results.count(_OK_RESULT) == count:
                self.conn.fill(self.slot, OK * count)  # SETs, each answered Ok
                return
            gets = replies.count(GET_REPLY) == count
            data = _get_replies(results, null) if gets else None
            if data is None:
                data = b"".join([reply(r, null) for reply, r in zip(replies, results, strict=True)])
        else:
            parts: list[bytes] = []
            position = 0
            for reply in self.replies:
                if isinstance(reply, tuple):
                    combine, count = reply
                    parts.append(combine(results[position : position + count], null))
                    position += count
                else:
                    parts.append(reply(results[position], null))
                    position += 1
            data = b"".join(parts)
        self.conn.fill(self.slot, data)

    def _reply_all(self, data: bytes) -> None:
        self.conn.fill(self.slot, data * len(self.replies))

    def _reply_values(self, values: list[bytes | None]) -> None:
        """A ``gets`` group's replies from its values (a read burst's answer, read in bulk)."""
        data = encode_bulk_values(cast(list[bytes], values)) if None not in values else None
        if data is None:
            data = encode_bulks(values, self.conn.null)
        self.conn.fill(self.slot, data)


class ReadBurst:
    """Read-index groups of many connections that arrive in one pass of the event loop, sent
    as one read: one router request, one node read and one query for all of them, instead of
    one each (50 pipelining clients send 50 groups a pass).

    Every group of a pass waits until its end (``call_soon``: after the pass's input callbacks,
    in the same pass), bounded by ``GROUP_OPS_MAX`` commands and ``GROUP_BYTES_MAX`` bytes of
    requests, and they go together; the driver then steps the read at once if it sleeps
    (``runtime.driver``, "Prompt steps"), so a lone client waits for nothing.  (Sending the
    first group at once, as this did before prompt steps, would now start a confirmation round
    for that group alone and leave the rest of the pass for the next round.)  A group's bytes
    are its commands' arguments when the connection counted them, else the size of the input
    they were parsed from, which is at most ``GROUP_BYTES_MAX`` (``RespConnection.feed_bytes``).
    Each read is still linearizable: the combined read is taken after every group in it
    arrived and answered before any reply leaves.  A burst of ``GET`` runs only, all in
    database 0, leaves as a ``LocalGets``, whose values may come back bare (no ``Value``
    each).  The answer's results are handed back to each group in order; a failure (no
    leader, timeout, busy) goes to every group, as it would have alone.
    """

    __slots__ = ("bytes", "groups", "open", "ops", "router")

    def __init__(self, router: Router) -> None:
        self.router = router
        self.open = False  # the end of this pass is scheduled: the groups wait for it
        self.groups: list[Group] = []
        self.ops = 0
        self.bytes = 0

    def add(self, group: Group) -> None:
        if not self.open:
            self.open = True
            group.conn.loop.call_soon(self.close)
        size = group.bytes or group.conn.feed_bytes
        # every op of a group on this path is a read: ``read_ops`` counts them all
        if self.ops + group.read_ops > GROUP_OPS_MAX or self.bytes + size > GROUP_BYTES_MAX:
            self.flush()
        self.groups.append(group)
        self.ops += group.read_ops
        self.bytes += size

    def close(self) -> None:
        """The end of the pass: send what waited."""
        self.open = False
        self.flush()

    def flush(self) -> None:
        groups = self.groups
        if not groups:
            return
        self.groups, self.ops, self.bytes = [], 0, 0
        if all([group.gets and not group.db for group in groups]):
            # GET runs in database 0 only: their values may be read bare (``LocalGets``)
            keys: list[bytes] = []
            for group in groups:
                keys += group.keys
            self._send(groups, LocalGets(keys, now_ms()))
        elif len(groups) == 1:
            self._send(groups, _read_request(groups[0].commands(), groups[0].db))
        else:
            # each group in its own connection's database (kv.InDb), so one read serves all
            ops: list[Command] = []
            for group in groups:
                commands = group.commands()
                ops += in_db(commands, group.db) if group.db else commands
            self._send(groups, _read_request(ops, 0))

    def _send(self, groups: list[Group], request: LocalRead) -> None:
        def done(outcome: Outcome) -> None:
            values = request.values if type(request) is LocalGets else None
            if outcome is VALUES_KEPT and values is not None:
                # read bare on this node (every GET a string or absent): each group's replies
                # from its slice, as ``Group._done`` would format them
                position = 0
                for group in groups:
                    end = position + group.read_ops
                    group._reply_values(values[position:end])
                    position = end
            elif len(groups) == 1:
                groups[0]._done(outcome, retry=True, client_id=0)
            elif isinstance(outcome, Results) and len(outcome.results) == reads:
                results, position = outcome.results, 0
                if gets and set(map(type, results)) == _VALUE_TYPES:
                    # GETs only, every one a string or absent: their values in one pass,
                    # each group's replies from its slice (as ``Group._done`` would format them)
                    values = list(map(_VALUE_OF, results))
                    for group in groups:
                        end = position + group.read_ops
                        group._reply_values(values[position:end])
                        position = end
                else:
                    for group in groups:
                        end = position + group.read_ops
                        group._done(Results(results[position:end]), retry=True, client_id=0)
                        position = end
            else:  # a failure or a refusal: every group's answer
                for group in groups:
                    group._done(outcome, retry=True, client_id=0)
            for group in groups:
                group.conn.answered(RequestPath.READ_INDEX)

        reads = sum([group.read_ops for group in groups])
        gets = all([group.gets for group in groups])
        self.router.submit(request, done, read=True, reads=reads)


def _get_replies(results: Sequence[Result], null: bytes) -> bytes | None:
    """The replies of a group of ``GET`` s only, in one call, when every result is a ``Value``
    (``None``: another result, an error, and the general path formats them one by one)."""
    types = set(map(type, results))
    if types != _VALUE_TYPES:
        return None if types else b""
    values = list(map(_VALUE_OF, results))
    if None not in values:  # hits only: one join, no Python code per value
        data = encode_bulk_values(values)
        if data is not None:
            return data
    return encode_bulks(values, null)


_VALUE_TYPES = {Value}
_VALUE_OF = operator.attrgetter("value")


def _unexpected_answer(outcome: object) -> bytes:
    return encode_error(f"ERR internal error: unexpected result {type(outcome).__name__}")


class Call:
    """One planned command in flight: its log requests and the results gathered so far."""

    __slots__ = ("conn", "db", "on_reply", "ops", "remaining", "replied", "results", "slot")

    def __init__(
        self,
        conn: RespConnection,
        slot: _Slot,
        ops: Ops,
        on_reply: Callable[[bytes], None] | None = None,
    ) -> None:
        self.conn = conn
        self.db = conn.db  # the database when it was planned (it may wait behind reads)
        self.slot = slot
        self.on_reply = on_reply  # instead of the connection's FIFO (a blocking attempt)
        self.ops = ops
        self.results: list[Result | None] = [None] * len(ops.ops)
        self.remaining = len(ops.ops)
        self.replied = False

    @property
    def reads_only(self) -> bool:
        """Only reads, and under ``PAXOS.REQ`` a new request of a session this node knows (the
        log answers the rest as before: module docstring, "Reads")."""
        if not all(type(op) in READ_TYPES for op in self.ops.ops):
            return False
        session = self.ops.session
        return session is None or self.conn.router.session_read_ok(*session)

    def route(self) -> None:
        path = self.conn.path_for(self.reads_only)
        read_ops = sum([type(op) in READ_TYPES for op in self.ops.ops])
        if read_ops:
            self.conn.count_reads(path, read_ops)
        for index in range(len(self.ops.ops)):
            if path is RequestPath.LOG:
                self._submit(index, retry=False)
            else:
                self._submit_read(index, path)

    def _submit_read(self, index: int, path: RequestPath) -> None:
        conn = self.conn
        request = _read_request(self.ops.ops[index : index + 1], self.db)
        if path is RequestPath.LOCAL:
            self._done(index, conn.router.query_local(request), plain=True, retry=True, client_id=0)
            return

        def done(outcome: Outcome) -> None:
            self._done(index, outcome, plain=True, retry=True, client_id=0)
            conn.answered(path)

        conn.sent(path)
        conn.router.submit(request, done, read=True)

    def _submit(self, index: int, *, retry: bool, rotate_from: int | None = None) -> None:
        conn = self.conn
        session = self.ops.session
        plain = session is None
        if session is None:
            session = conn.next_session(rotate_from)
        client_id, seq = session
        op = self.ops.ops[index]
        if self.db:
            op = InDb(self.db, op)
        request = encode_request(Request(client_id, seq, op, now_ms()))

        def done(outcome: Outcome) -> None:
            self._done(index, outcome, plain=plain, retry=retry, client_id=client_id)
            conn.answered(RequestPath.LOG)

        conn.sent(RequestPath.LOG)
        conn.router.submit(request, done)

    def _done(
        self, index: int, outcome: Outcome, *, plain: bool, retry: bool, client_id: int
    ) -> None:
        if self.replied:
            return
        if isinstance(outcome, Failure):
            self._reply(_failure_reply(outcome))
            return
        first = _first_look(outcome, plain=plain, retried=retry)
        if first is _Retry.NEW_SESSION:
            self._submit(index, retry=True, rotate_from=client_id)
            return
        if first is not None:
            self._reply(first)
            return
        if isinstance(outcome, Results):  # never the answer to a single Request
            self._reply(_unexpected_answer(outcome))
            return
        self.results[index] = outcome
        self.remaining -= 1
        if self.remaining == 0:
            results: Sequence[Result] = [r for r in self.results if r is not None]
            self._reply(self.ops.combine(results, self.conn.null))

    def _reply(self, data: bytes) -> None:
        self.replied = True
        if self.on_reply is not None:
            self.on_reply(data)
        else:
            self.conn.fill(self.slot, data)


class NodeState:
    """This node's applied index and local reads, for ``BlockedClients``."""

    __slots__ = ("router",)

    def __init__(self, router: Router) -> None:
        self.router = router

    def applied_index(self) -> int:
        return self.router.driver.node.applied_index

    def query_local(self, command: bytes) -> object:
        return self.router.query_local(command)


class _Retry(enum.Enum):
    NEW_SESSION = "the session expired before the command was applied: retry in a new one"


def _first_look(outcome: Answer, *, plain: bool, retried: bool) -> bytes | _Retry | None:
    """What every answer is checked for before its results are read, for groups and calls
    alike: a retry in a new session, an error reply, or ``None`` to go on.

    Only the connection's own plain session is retried or judged stale; a command that names
    its session (``CAS`` from pypaxos's client) gets its session's answer as it is.
    """
    if plain and isinstance(outcome, SessionExpired) and not retried:
        return _Retry.NEW_SESSION  # not applied: the session never started or was forgotten
    if plain and isinstance(outcome, Stale):
        return TRYAGAIN_UNKNOWN  # a resent copy raced a later command: the outcome is unknown
    return None


def auth_of(planned: Plan) -> Auth | None:
    if isinstance(planned, Auth):
        return planned
    if isinstance(planned, Hello):
        return planned.auth
    return None


def _failure_reply(failure: Failure) -> bytes:
    if failure is Failure.BUSY:
        return BUSY
    if failure is Failure.NO_LEADER:
        return TRYAGAIN_NO_LEADER
    return TRYAGAIN_UNKNOWN
