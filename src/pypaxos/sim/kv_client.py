"""Simulated key-value clients: the messages they exchange with nodes, and the history they record.

How a client works.  Each client is an actor of the simulator (its messages cross the simulated
network, so they are lost, duplicated, delayed and partitioned like the nodes' own) with at most
one request outstanding, as ``pypaxos.kv.Request`` requires.  It picks a random operation on a
few keys (read, write, cas, delete, incr), records ``invoke`` in the history, and sends the
``Request(client_id, seq, op)`` bytes to the node it believes leads.  Then:

* a ``ClientReply`` for the current request completes the operation: ``ok`` with the result,
  or ``fail`` for a result that certainly changed nothing (a ``cas`` mismatch, ``incr`` of a
  non-integer);
* a ``ClientRedirect`` names the leader (go there at once) or nobody (try the next node after a
  short backoff); ``ClientBusy`` backs off and tries the same node again;
* no answer within ``timeout_ticks`` sends the *same* ``(client_id, seq)`` to the next node: the
  state machine's dedup table makes every copy after the first a no-op, so a retry applies once;
* after ``attempts_max`` sends it gives up: the operation is recorded ``info`` (it may or may not
  have happened) and the client moves on to ``seq + 1``;
* ``SessionExpired`` (the machine has no session for this client: its ``seq = 1`` request was
  given up and never applied) is recorded ``fail``: the refusal leaves a tombstone under the
  client id, so neither this request nor a late copy of ``seq = 1`` can run later.  The client
  then starts over under a fresh KV client id, as the reply asks.

Optimistic transactions.  Some compare-and-sets are made the way a Redis client makes one with
``WATCH``: a first request watches the key and reads it (a ``RequestBatch`` of ``Watch`` and
``Get``, not in the history), then the operation proper, recorded as ``cas [read, new]``, is an
``Exec`` of the ``Set`` that runs only if the key was not modified since: ``ok`` if it ran,
``info`` if the watch aborted it (the key changed, and may have changed back, so ``fail`` could
be wrong).  A state machine that lets the ``Exec`` run after a change produces a ``cas`` that
succeeded against a value the key no longer held: not linearizable.

Collections.  A client given ``draw_collection`` draws half its operations there instead
(``sim.kv_collections``): each carries its own ``decode`` of the answer into the history (the
reply, ``WRONGTYPE`` included, is what the reference model predicts), and a read-only one may
take the read-index path like a read.

Reads take the read-index path instead when the world says so (``KVSettings.reads``): the
``ClientRequest`` is marked ``read`` and the node answers it from its state machine after a
confirmation round (``multi.reads``), without a log entry.  Such a read changes nothing, so it
uses no ``seq`` (a session whose first operation is a read would otherwise start at ``seq = 2``
and expire); its request id has ``READ_SEQ_FLAG`` set in the seq field instead, with a count of
the client's reads, so it never names a log command.

The node-side request id is ``client_id << 32 | seq`` (``request_id``): the same for every retry,
so a node that already holds a retry answers once, and unique across node restarts, so a node
that answers after a restart answers with the result of the very same command.  Answers carry
it; answers to anything but the current request are stale copies and ignored.

Why a history.  Every event is appended, in virtual-time order, to one ``History`` in the
Jepsen-style JSON Lines format of ``pypaxos.lincheck.wgl``, which then decides whether
the run was linearizable.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from pypaxos.core.effects import CancelTimer, Send, SetTimer
from pypaxos.kv import (
    Answer,
    Cas,
    Command,
    Delete,
    Error,
    Get,
    Incr,
    Integer,
    Mismatch,
    Ok,
    Request,
    RequestBatch,
    Result,
    Results,
    SessionExpired,
    Set,
    Value,
    decode_answer,
    encode_request,
)
from pypaxos.kv.commands import Aborted, Exec, Replies, Watch

REQUEST_ID_SEQ_BITS = 32  # request_id = client_id << 32 | seq
COLLECTION_SHARE = 0.5  # of the operations, with a collection workload


def request_id(client_id: int, seq: int) -> int:
    """The node-side request id of ``(client_id, seq)``: the same for every retry."""
    return (client_id << REQUEST_ID_SEQ_BITS) | seq


READ_SEQ_FLAG = 1 << (REQUEST_ID_SEQ_BITS - 1)
"""Set in the seq field of a read-index read's request id (a count of reads, not a ``seq``)."""


def read_request_id(client_id: int, reads: int) -> int:
    """The request id of a client's ``reads``-th read-index read."""
    return request_id(client_id, READ_SEQ_FLAG | reads)


def is_read_request(rid: int) -> bool:
    return bool(rid & READ_SEQ_FLAG)


def split_request_id(rid: int) -> tuple[int, int]:
    return rid >> REQUEST_ID_SEQ_BITS, rid & ((1 << REQUEST_ID_SEQ_BITS) - 1)


# -- messages between clients and nodes ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client asks a node to get ``command`` (``Request`` bytes) chosen and applied.

    ``rid`` is ``request_id(client_id, seq)`` of the ``Request`` inside: the node proposes
    under it, and every answer names it.
    """

    rid: int
    command: bytes
    read: bool = False  # a read-only ``Get``: the read-index path (``Node.read``), not the log


@dataclass(frozen=True, slots=True)
class ClientReply:
    node: int
    rid: int
    result: bytes


@dataclass(frozen=True, slots=True)
class ClientRedirect:
    node: int
    rid: int
    leader: int | None


@dataclass(frozen=True, slots=True)
class ClientBusy:
    node: int
    rid: int


ClientMessage = ClientRequest | ClientReply | ClientRedirect | ClientBusy


# -- the history ---------------------------------------------------------------------------------

EventType = Literal["invoke", "ok", "fail", "info"]
HistoryValue = object  # JSON: the string workload's str, int, [expected, new] or None; the
# collection workload's arguments and replies (``sim.kv_collections``)


class History:
    """The JSON Lines history of every client operation, in real-time (virtual) order.

    It also notes when service resumed after the heal: ``served_at`` is the first time an
    operation *invoked* at or after ``heal_time`` completed ``ok``.
    """

    __slots__ = ("events", "heal_time", "invocations", "invoked_at", "oks", "served_at")

    def __init__(self) -> None:
        self.events: list[tuple[int, object, EventType, str, str, HistoryValue]] = []
        self.oks = 0
        self.invocations = 0
        self.invoked_at: dict[object, int] = {}
        self.heal_time: int | None = None
        self.served_at: int | None = None

    def add(
        self, time: int, process: object, kind: EventType, f: str, key: str, value: HistoryValue
    ) -> None:
        self.events.append((time, process, kind, f, key, value))
        if kind == "invoke":
            self.invocations += 1
            self.invoked_at[process] = time
        elif kind == "ok":
            self.oks += 1
            heal = self.heal_time
            if heal is not None and self.served_at is None and self.invoked_at[process] >= heal:
                self.served_at = time

    def lines(self) -> list[str]:
        """One JSON object per event; ``time`` is the virtual tick (extra field, ignored)."""
        return [
            json.dumps(
                {"process": p, "type": k, "f": f, "key": key, "value": v, "time": t},
                separators=(",", ":"),
            )
            for t, p, k, f, key, v in self.events
        ]

    def dicts(self) -> list[dict[str, object]]:
        return [
            {"process": p, "type": k, "f": f, "key": key, "value": v}
            for _t, p, k, f, key, v in self.events
        ]


# -- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation: the KV command and how it is spelled in the history."""

    f: str
    key: str
    command: Command
    value: HistoryValue  # on the invoke: what is written, [expected, new] for cas
    watch: bool = False  # the unrecorded first step of an optimistic cas (module docstring)
    # The collection workload's (``sim.kv_collections``): the history value of an answer
    # (``ValueError`` if it makes no sense), and whether the command only reads.
    decode: Callable[[Answer], HistoryValue] | None = None
    read_only: bool = False


def random_operation(
    rng: random.Random, keys: Sequence[str], fresh: int, known: Mapping[str, str | None]
) -> Operation:
    """A random operation on one of ``keys``.

    ``fresh`` is a value never written before (unique values keep the linearizability search
    small); ``known`` is what this client last saw under each key, the usual ``cas`` comparand,
    so that some compare-and-sets succeed.  Values are decimal integers so ``incr`` applies to
    what ``write`` stored.
    """
    key = keys[int(rng.random() * len(keys))]
    k = key.encode()
    roll = rng.random()
    if roll < 0.35:
        return Operation("read", key, Get(k), None)
    if roll < 0.6:
        return Operation("write", key, Set(k, b"%d" % fresh), str(fresh))
    if roll < 0.75:
        if fresh % 3 == 0:  # an optimistic cas (WATCH, then EXEC), without drawing more
            return Operation("cas", key, Watch((k,), reset=True), str(fresh), watch=True)
        expected = known.get(key) if rng.random() < 0.8 else None
        expected_bytes = None if expected is None else expected.encode()
        return Operation("cas", key, Cas(k, expected_bytes, b"%d" % fresh), [expected, str(fresh)])
    if roll < 0.85:
        return Operation("delete", key, Delete(k), None)
    return Operation("incr", key, Incr(k), None)


CollectionDraw = Callable[[random.Random, Callable[[], str]], Operation]
"""Draws one collection operation from the client's Random and its fresh values."""
PublishDraw = Callable[[random.Random, Callable[[], str]], Operation | None]
"""Draws a ``PUBLISH`` now and then (``None``: another operation this time)."""


class OpBudget:
    """The operations the clients still have to invoke, shared so they all finish together."""

    __slots__ = ("left",)

    def __init__(self, ops: int) -> None:
        self.left = ops

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass(frozen=True)
class ClientSettings:
    timeout_ticks: int = 40  # no answer this long: send the same request to the next node
    backoff_ticks: int = 4  # after Busy or a Redirect that names nobody
    attempts_max: int = 8  # sends of one request before giving up (recorded info)
    think_max_ticks: int = 3  # pause between operations, drawn from [0, this]


def _unwrap(result: Result, op: Operation) -> tuple[EventType, HistoryValue] | None:
    """The history completion for ``result``, or ``None`` if it makes no sense for ``op``."""
    match result:
        case Value(value):
            if op.f == "read":
                return "ok", None if value is None else value.decode()
        case Ok():
            if op.f in ("write", "cas"):
                return "ok", op.value
        case Integer(number):
            if op.f == "incr":
                return "ok", number
            if op.f == "delete":
                return "ok", None
        case Mismatch():
            if op.f == "cas":
                return "fail", op.value
        case Replies((Ok(),)):
            if op.f == "cas":
                return "ok", op.value
        case Aborted():
            if op.f == "cas":
                return "info", op.value
        case Error():
            if op.f == "incr":
                return "fail", None
        case SessionExpired():
            # Not applied, and never will be: the refusal closes the client id (a tombstone
            # that outlives any run here), so no late copy of this request or of an earlier
            # one can reopen the session and run it.  A machine that reopens it (the planted
            # ``KvBug.EXPIRED_SESSION_REOPENS``) runs a request the history says failed.
            return "fail", op.value
        case _:
            pass
    return None


class Client:
    """One simulated client actor (see the module docstring)."""

    __slots__ = (
        "any_node_reads",
        "attempts",
        "budget",
        "clock",
        "command",
        "draw_collection",
        "draw_publish",
        "history",
        "id",
        "keys",
        "known",
        "kv_id",
        "next_fresh",
        "node_ids",
        "on_done",
        "on_problem",
        "op",
        "process",
        "read",
        "read_index",
        "reads",
        "rid",
        "rng",
        "script",
        "seq",
        "session_stride",
        "settings",
        "target",
    )

    def __init__(
        self,
        actor_id: int,
        kv_id: int,
        process: object,
        node_ids: Sequence[int],
        keys: Sequence[str],
        budget: OpBudget,
        settings: ClientSettings,
        rng: random.Random,
        history: History,
        on_done: Callable[[int], None],
        on_problem: Callable[[str], None],
        clock: Callable[[], int],
        session_stride: int,
        read_index: bool = False,
        any_node_reads: bool = False,
        draw_collection: CollectionDraw | None = None,
        draw_publish: PublishDraw | None = None,
    ) -> None:
        self.id = actor_id
        self.kv_id = kv_id
        self.process = process
        self.node_ids = tuple(node_ids)
        self.keys = tuple(keys)
        self.budget = budget
        self.settings = settings
        self.rng = rng
        self.history = history
        self.on_done = on_done
        self.on_problem = on_problem
        self.clock = clock
        self.seq = 0
        self.read_index = read_index  # reads take the read-index path
        self.any_node_reads = any_node_reads  # ... at a random node first (follower reads)
        self.reads = 0  # read-index reads begun (their request ids count them)
        self.read = False  # the current operation is a read-index read
        self.rid = 0
        self.session_stride = session_stride
        self.op: Operation | None = None
        self.command = b""
        self.attempts = 0
        self.target = self.node_ids[int(rng.random() * len(self.node_ids))]
        self.known: dict[str, str | None] = {}
        self.script: list[Operation] | None = None  # fixed operations instead of random ones
        self.next_fresh = kv_id * 1_000_000  # written values are unique across clients
        # The collection workload: half the operations are drawn by it (``sim.kv_collections``)
        self.draw_collection = draw_collection
        # ``PUBLISH`` es now and then (``sim.kv_publish``): ``None`` from it when not this time
        self.draw_publish = draw_publish

    # -- actor interface ---------------------------------------------------------------------

    def start(self) -> list[object]:
        return [] if self.budget.left <= 0 else [self._think()]

    def run_script(self, ops: Sequence[Operation]) -> list[object]:
        """Perform exactly ``ops``, in order, one at a time (the final reads after the heal)."""
        self.script = list(reversed(ops))
        return self._begin_next()

    def on_timer(self, name: str) -> list[object]:
        if name == "think":
            return self._begin_next()
        if name == "retry":
            return self._send()
        assert name == "timeout", name
        return self._rotate_and_send()

    def handle(self, msg: object) -> list[object]:
        if not isinstance(msg, ClientReply | ClientRedirect | ClientBusy):
            raise TypeError(f"client {self.id} got {msg!r}")
        if self.op is None or msg.rid != self.rid:
            return []  # a late copy for an operation already finished
        if isinstance(msg, ClientReply):
            return self._complete(msg.result)
        if isinstance(msg, ClientRedirect):
            if msg.leader is not None and msg.leader != msg.node:
                self.target = msg.leader
                return self._send()
            self._next_target()
            return [SetTimer("retry", self.settings.backoff_ticks), CancelTimer("timeout")]
        return [SetTimer("retry", self.settings.backoff_ticks), CancelTimer("timeout")]  # Busy

    # -- operations --------------------------------------------------------------------------

    @property
    def outstanding(self) -> Operation | None:
        """The operation invoked in the history and not completed there: ``None`` between
        operations and at the unrecorded first step of an optimistic cas (nothing invoked)."""
        op = self.op
        return None if op is None or op.watch else op

    def begin(self, op: Operation) -> list[object]:
        """Invoke ``op`` now (the next ``seq``; a read-index read takes none)."""
        self.op = op
        self.attempts = 0
        self.read = self.read_index and (op.f == "read" or op.read_only)
        if op.watch:  # the first step: watch and read the key in one entry, unrecorded
            self.seq += 1
            k = op.key.encode()
            batch = RequestBatch(self.kv_id, self.seq, (op.command, Get(k)))
            self.command = encode_request(batch)
            self.rid = request_id(self.kv_id, self.seq)
            return self._send()
        if self.read:
            self.reads += 1
            self.command = encode_request(Request(self.kv_id, 0, op.command))
            self.rid = read_request_id(self.kv_id, self.reads)
            if self.any_node_reads:
                self.target = self.node_ids[int(self.rng.random() * len(self.node_ids))]
        else:
            self.seq += 1
            self.command = encode_request(Request(self.kv_id, self.seq, op.command))
            self.rid = request_id(self.kv_id, self.seq)
        self.history.add(self._now(), self.process, "invoke", op.f, op.key, op.value)
        return self._send()

    def _begin_next(self) -> list[object]:
        if self.script is not None:
            if self.script:
                return self.begin(self.script.pop())
        elif self.budget.take():
            self.next_fresh += 1
            if self.draw_publish is not None:
                publish = self.draw_publish(self.rng, self._fresh)
                if publish is not None:
                    return self.begin(publish)
            if self.draw_collection is not None and self.rng.random() < COLLECTION_SHARE:
                return self.begin(self.draw_collection(self.rng, self._fresh))
            return self.begin(random_operation(self.rng, self.keys, self.next_fresh, self.known))
        self.on_done(self.id)
        return []

    def _send(self) -> list[object]:
        if self.attempts >= self.settings.attempts_max:
            return self._give_up()
        self.attempts += 1
        request = ClientRequest(self.rid, self.command, self.read)
        return [Send(self.target, request), SetTimer("timeout", self.settings.timeout_ticks)]

    def _rotate_and_send(self) -> list[object]:
        self._next_target()
        return self._send()

    def _next_target(self) -> None:
        ids = self.node_ids
        self.target = ids[(ids.index(self.target) + 1) % len(ids)]

    def _give_up(self) -> list[object]:
        op = self.op
        assert op is not None
        if op.watch:
            self._unfinished_watch(op)
        else:
            self.history.add(self._now(), self.process, "info", op.f, op.key, op.value)
        self.op = None
        return [CancelTimer("timeout"), CancelTimer("retry"), self._think()]

    def _complete(self, data: bytes) -> list[object]:
        op = self.op
        assert op is not None
        try:
            answer = decode_answer(data)
        except msgspec.DecodeError:
            self.on_problem(f"client {self.process}: undecodable reply {data!r} to {op.f} {op.key}")
            return self._give_up()
        if op.watch:
            return self._watched(answer, op)
        if op.decode is not None:
            return self._complete_decoded(answer, op)
        if isinstance(answer, Results):
            self.on_problem(f"client {self.process}: {op.f} {op.key} answered {answer!r}")
            return self._give_up()
        result = answer
        outcome = _unwrap(result, op)
        if outcome is None:
            self.on_problem(f"client {self.process}: {op.f} {op.key} answered {result!r}")
            return self._give_up()
        kind, value = outcome
        self.history.add(self._now(), self.process, kind, op.f, op.key, value)
        if kind == "ok":
            self._learn(op, value)
        elif isinstance(result, SessionExpired):
            self._new_session()
        self.op = None
        return [CancelTimer("timeout"), CancelTimer("retry"), self._think()]

    def _complete_decoded(self, answer: Answer, op: Operation) -> list[object]:
        """A collection operation answered: ``ok`` with its decoded reply (errors such as
        ``WRONGTYPE`` are replies the model predicts), ``fail`` if the session was refused."""
        assert op.decode is not None
        if isinstance(answer, SessionExpired):
            self.history.add(self._now(), self.process, "fail", op.f, op.key, op.value)
            self._new_session()
        else:
            try:
                value = op.decode(answer)
            except ValueError as error:
                self.on_problem(f"client {self.process}: {op.f} {op.key}: {error}")
                return self._give_up()
            self.history.add(self._now(), self.process, "ok", op.f, op.key, value)
        self.op = None
        return [CancelTimer("timeout"), CancelTimer("retry"), self._think()]

    def _fresh(self) -> str:
        """A value never written before (the collection workload's list items, hash values)."""
        self.next_fresh += 1
        return str(self.next_fresh)

    def _watched(self, answer: Answer, op: Operation) -> list[object]:
        """The first step of an optimistic cas answered: run the ``Exec`` (recorded)."""
        self.op = None
        match answer:
            case Results((Ok(), Value(current))):
                seen = None if current is None else current.decode()
                assert isinstance(op.value, str)
                store = Exec((Set(op.key.encode(), op.value.encode()),), watching=True)
                return [
                    CancelTimer("timeout"),
                    *self.begin(Operation("cas", op.key, store, [seen, op.value])),
                ]
            case SessionExpired():
                self._new_session()
            case _:
                self.on_problem(f"client {self.process}: watch {op.key} answered {answer!r}")
        self._unfinished_watch(op)
        return [CancelTimer("timeout"), CancelTimer("retry"), self._think()]

    def _unfinished_watch(self, op: Operation) -> None:
        """An optimistic cas that never got past its first step still counts as invoked: it is
        recorded as a cas of unknown outcome (it changed nothing, which ``info`` allows)."""
        assert isinstance(op.value, str)
        value: HistoryValue = [self.known.get(op.key), op.value]
        self.history.add(self._now(), self.process, "invoke", op.f, op.key, value)
        self.history.add(self._now(), self.process, "info", op.f, op.key, value)

    def _new_session(self) -> None:
        """Start over under a fresh KV client id, as ``SessionExpired`` asks."""
        self.kv_id += self.session_stride
        self.seq = 0

    def _learn(self, op: Operation, value: HistoryValue) -> None:
        if op.f == "read" or op.f == "write":
            self.known[op.key] = value if isinstance(value, str) or value is None else str(value)
        elif op.f == "cas" and isinstance(op.value, list):
            self.known[op.key] = op.value[1]
        elif op.f == "delete":
            self.known[op.key] = None
        elif op.f == "incr":
            self.known[op.key] = str(value)

    def _think(self) -> SetTimer:
        return SetTimer("think", int(self.rng.random() * (self.settings.think_max_ticks + 1)) or 1)

    def _now(self) -> int:
        return self.clock()
