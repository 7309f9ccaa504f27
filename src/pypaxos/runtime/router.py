"""Getting a client command to the leader and its outcome back, on every node.

``submit(command, done)`` calls ``done`` exactly once with the state machine's answer or a
``Failure``.  The command is proposed here if this node leads, forwarded (``wire.Forward``) if
another does, and parked until a leader is known otherwise; a ``Redirect`` or a leader change
routes it again.  Resending is safe because every command carries its ``(client_id, seq)``:
the state machine's session table never applies one twice (``kv.state_machine``).  Each has a
deadline (``request_timeout_s``).  Request ids start at the wall clock in nanoseconds, so a
restarted node does not reuse ids of entries that may still be applied.

``submit(read=True)`` does the same for a read-only command on the read-index path (no log
entry; a follower forwards it, or with ``follower_reads`` asks the leader for a read index), and
``query_local`` answers from this node's state at once (``READONLY``: not linearizable).  A
read may come as a ``LocalRead`` instead of bytes: this node's own state machine answers it
with the answer object itself (``multi.reads``), and it is encoded only to be forwarded.
More: docs/design.md, 'The router'.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import msgspec

from pypaxos.kv import (
    Answer,
    Get,
    KVStateMachine,
    Request,
    RequestBatch,
    Results,
    decode_answer,
    encode_request,
)
from pypaxos.multi import Role, StateMachine, Status
from pypaxos.multi.membership import Change, MembershipRefused, RefusalReason
from pypaxos.runtime.driver import Driver, Sender
from pypaxos.runtime.wire import Forward, ForwardReply
from pypaxos.transport import CodecError, UnknownPeer

if TYPE_CHECKING:
    from pypaxos.runtime.metrics import NodeMetrics

log = logging.getLogger(__name__)


class LocalRead:
    """A read-only request for this process's own store (``multi.reads.LocalQuery``): the node
    runs it on the ``KVStateMachine`` itself and hands its answer back as it is, so neither the
    request nor the answer is encoded and decoded; ``encode`` for a trip to another node."""

    __slots__ = ("_entry",)

    def __init__(self, entry: Request | RequestBatch) -> None:
        self._entry: Request | RequestBatch | None = entry

    @property
    def entry(self) -> Request | RequestBatch:
        return cast(Request | RequestBatch, self._entry)  # set (``LocalGets``: when asked)

    def run(self, machine: StateMachine) -> object:
        if isinstance(machine, KVStateMachine):
            return machine.query_entry(self.entry)
        return decode_answer(machine.query(self.encode()))  # a wrapped store (tests)

    def encode(self) -> bytes:
        return encode_request(self.entry)


class LocalGets(LocalRead):
    """A ``LocalRead`` of plain ``GET`` s of ``keys`` in database 0 at ``now_ms`` whose
    values may be read bare: on this process's own ``KVStateMachine``, ``run`` keeps them in
    ``values`` (``KVStateMachine.plain_values``) and answers ``VALUES_KEPT``, so no ``Get``
    or ``Value`` is made per key; where that does not apply (a deadline, a collection, another
    state machine, a forward) it answers as a ``LocalRead`` of the ``entry`` it then makes."""

    __slots__ = ("keys", "now_ms", "values")

    def __init__(self, keys: list[bytes], now_ms: int) -> None:
        self._entry = None
        self.keys = keys
        self.now_ms = now_ms
        self.values: list[bytes | None] | None = None

    @property
    def entry(self) -> RequestBatch:
        entry = self._entry
        if entry is None:
            entry = self._entry = RequestBatch(0, 0, tuple(map(Get, self.keys)), self.now_ms)
        return cast(RequestBatch, entry)

    def run(self, machine: StateMachine) -> object:
        if isinstance(machine, KVStateMachine):
            values = machine.plain_values(self.keys)
            if values is not None:
                self.values = values
                return VALUES_KEPT
        return super().run(machine)


VALUES_KEPT = Results(())
"""``LocalGets.run``'s answer when it kept the values: only ever compared by identity."""


def wire_command(command: bytes | LocalRead) -> bytes:
    """``command`` as it travels to another node."""
    return command if isinstance(command, bytes) else command.encode()


class Failure(enum.Enum):
    NO_LEADER = "no leader"
    TIMEOUT = "timeout"
    BUSY = "busy"


Outcome = Answer | Failure
Done = Callable[[Outcome], None]
RawDone = Callable[[bytes | Failure], None]
"""``submit_raw``'s callback: the state machine's result bytes as they are, or a failure."""
ChangeDone = Callable[[bytes | MembershipRefused | Failure], None]
"""``submit_change``'s callback: the new configuration (``membership.decode_configuration``),
the leader's refusal, or a failure (``TIMEOUT``: the change may or may not have been made)."""


class _State(enum.Enum):
    PARKED = 0
    LOCAL = 1
    FORWARDED = 2
    DONE = 3


@dataclass(slots=True, eq=False)
class _Pending:
    command: bytes | LocalRead
    done: Callable[[Any], None]  # Done, or RawDone when ``raw``
    started: float
    deadline: float
    state: _State = _State.PARKED
    key: int = 0  # request id (LOCAL) or forward id (FORWARDED)
    via: int | None = None  # the leader it was forwarded to
    ever_routed: bool = False
    read: bool = False  # the read-index path (``Driver.read``), not a proposal
    reads: int = 1  # read commands in ``command`` (the read counts are per command)
    follower_read: bool = False  # a read this node answers as a follower (``follower_reads``)
    raw: bool = False  # answer the result bytes undecoded (a machine other than the KV store)
    change: Change | None = None  # a membership change (``submit_change``), proposed here only


@dataclass(slots=True)
class _Serving:
    """A follower's command this leader proposed: answer ``origin`` under ``forward_id``."""

    origin: int
    forward_id: int
    deadline: float
    done: bool = False


@dataclass(slots=True)
class RouterStats:
    submitted: int = 0
    forwarded: int = 0
    rerouted: int = 0
    timeouts: int = 0
    busy: int = 0
    served: int = 0
    # This node's clients' read commands answered on the read path: by this node as the
    # leader after a confirmation round or under a lease, as a follower from its own state,
    # or by the leader they were forwarded to.
    reads_read_index: int = 0
    reads_lease: int = 0
    reads_follower: int = 0
    reads_forwarded: int = 0


class Router:
    def __init__(
        self,
        driver: Driver,
        sender: Sender,
        *,
        request_timeout_s: float = 5.0,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.driver = driver
        self.node_id = driver.node.id
        self.sender = sender
        self.request_timeout_s = request_timeout_s
        self.metrics = metrics
        self.stats = RouterStats()
        self._next_id = time.time_ns()
        self._local: dict[int, _Pending] = {}
        self._forwarded: dict[int, _Pending] = {}
        self._parked: list[_Pending] = []
        self._deadlines: deque[_Pending] = deque()  # submit order == deadline order
        self._serving: dict[int, _Serving] = {}
        self._serving_deadlines: deque[tuple[int, _Serving]] = deque()
        driver.sink = self
        driver.status_listeners.append(self.on_status)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- clients -----------------------------------------------------------------------------

    def submit(
        self, command: bytes | LocalRead, done: Done, *, read: bool = False, reads: int = 1
    ) -> None:
        """Get ``command`` answered: proposed to the log, or with ``read`` (a read-only
        command of ``reads`` read commands) answered on the leader's read-index path.  Only a
        read may be a ``LocalRead``."""
        assert read or isinstance(command, bytes), "a LocalRead is a read"
        now = time.monotonic()
        pending = _Pending(command, done, now, now + self.request_timeout_s, read=read, reads=reads)
        self._deadlines.append(pending)
        self.stats.submitted += 1
        self._route(pending)

    def submit_raw(self, command: bytes, done: RawDone, *, read: bool = False) -> None:
        """``submit`` for any state machine: ``done`` gets the result bytes undecoded."""
        now = time.monotonic()
        pending = _Pending(command, done, now, now + self.request_timeout_s, read=read, raw=True)
        self._deadlines.append(pending)
        self.stats.submitted += 1
        self._route(pending)

    def submit_change(self, change: Change, done: ChangeDone) -> None:
        """Propose a membership change, if this node leads; otherwise ``done`` gets a
        ``NOT_LEADER`` refusal at once, naming the leader if known (the client asks it).  A
        change is never resent: after a leader change its outcome is unknown (``TIMEOUT``)."""
        node = self.driver.node
        if node.role is not Role.LEADER:
            leader = node.leader_id if node.role is Role.FOLLOWER else None
            done(MembershipRefused(0, RefusalReason.NOT_LEADER, "not the leader", leader))
            return
        now = time.monotonic()
        pending = _Pending(b"", done, now, now + self.request_timeout_s, raw=True, change=change)
        self._deadlines.append(pending)
        self.stats.submitted += 1
        rid = self._new_id()
        pending.state, pending.key, pending.ever_routed = _State.LOCAL, rid, True
        self._local[rid] = pending
        self.driver.propose_change(rid, change)

    def on_refused(self, refusal: MembershipRefused) -> None:
        pending = self._local.pop(refusal.request_id, None)
        if pending is not None:
            self._finish(pending, refusal)

    def query_local(self, command: bytes | LocalRead) -> Outcome:
        """A read-only ``command`` answered from this node's state now (possibly stale)."""
        machine = self.driver.node.replica.machine
        if isinstance(command, LocalRead) and isinstance(machine, KVStateMachine):
            return machine.query_entry(command.entry)
        result = machine.query(wire_command(command))
        try:
            return decode_answer(result)
        except msgspec.DecodeError:
            log.error("node %d: undecodable result %r", self.node_id, result[:64])
            return Failure.TIMEOUT

    def session_read_ok(self, client_id: int, seq: int) -> bool:
        """May a read under session ``(client_id, seq)`` skip the log?  Only when this node's
        state knows the session and ``seq`` is new: the log alone answers a session it does not
        know (expired, or opened by this very request) and a repeated or stale ``seq``."""
        machine = self.driver.node.replica.machine
        if not isinstance(machine, KVStateMachine):
            return False
        last = machine.last_seq(client_id)
        return last is not None and last < seq

    def pending_count(self) -> int:
        return len(self._local) + len(self._forwarded) + len(self._parked)

    def _route(self, pending: _Pending) -> None:
        node = self.driver.node
        if node.role is Role.LEADER or (
            pending.read
            and node.role is Role.FOLLOWER
            and node.config.follower_reads
            and node.leader_id is not None
        ):
            rid = self._new_id()
            pending.state, pending.key, pending.via = _State.LOCAL, rid, None
            pending.ever_routed = True
            self._local[rid] = pending
            if pending.read:
                pending.follower_read = node.role is Role.FOLLOWER
                self.driver.read(rid, pending.command)
            else:
                self.driver.propose(rid, wire_command(pending.command))
            return
        leader = node.leader_id
        if node.role is Role.FOLLOWER and leader is not None and leader != self.node_id:
            fid = self._new_id()
            command = wire_command(pending.command)
            # ``False``: the leader left the membership; the request waits for the next one
            if self._send(leader, Forward(self.node_id, fid, command, pending.read)):
                pending.state, pending.key, pending.via = _State.FORWARDED, fid, leader
                pending.ever_routed = True
                self._forwarded[fid] = pending
                self.stats.forwarded += 1
                return
        pending.state, pending.via = _State.PARKED, None
        self._parked.append(pending)

    def _finish(self, pending: _Pending, outcome: Outcome | bytes | MembershipRefused) -> None:
        if pending.state is _State.DONE:
            return
        pending.state = _State.DONE
        if self.metrics is not None and not isinstance(outcome, (Failure, MembershipRefused)):
            self.metrics.observe_commit(time.monotonic() - pending.started)
        pending.done(outcome)

    def _result(self, pending: _Pending, result: bytes) -> None:
        if pending.raw:
            self._finish(pending, result)
            return
        try:
            decoded = decode_answer(result)
        except msgspec.DecodeError:
            log.error("node %d: undecodable result %r", self.node_id, result[:64])
            self._finish(pending, Failure.TIMEOUT)
            return
        self._finish(pending, decoded)

    # -- the driver's ClientSink -------------------------------------------------------------

    def on_reply(self, request_id: int, result: bytes) -> None:
        pending = self._local.pop(request_id, None)
        if pending is not None:
            if pending.read:
                self._count_read(pending, request_id)
            self._result(pending, result)
            return
        self.driver.lease_answered.discard(request_id)  # a follower's read served here
        serving = self._serving.pop(request_id, None)
        if serving is not None and not serving.done:
            serving.done = True
            reply = ForwardReply(self.node_id, serving.forward_id, "reply", result)
            self._send(serving.origin, reply)

    def on_local_reply(self, request_id: int, answer: object) -> None:
        """The answer to a ``LocalRead``: the state machine's own object (an ``Answer``)."""
        pending = self._local.pop(request_id, None)
        if pending is None:
            self.driver.lease_answered.discard(request_id)
            return
        if pending.read:
            self._count_read(pending, request_id)
        self._finish(pending, cast(Answer, answer))  # ``KVStateMachine.query_entry``'s

    def _count_read(self, pending: _Pending, request_id: int) -> None:
        stats = self.stats
        if pending.follower_read:
            stats.reads_follower += pending.reads
        elif request_id in self.driver.lease_answered:
            self.driver.lease_answered.discard(request_id)
            stats.reads_lease += pending.reads
        else:
            stats.reads_read_index += pending.reads

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        pending = self._local.pop(request_id, None)
        if pending is not None:
            self._park(pending)
            return
        serving = self._serving.pop(request_id, None)
        if serving is not None and not serving.done:
            serving.done = True
            reply = ForwardReply(self.node_id, serving.forward_id, "redirect", leader_id=leader_id)
            self._send(serving.origin, reply)

    def on_busy(self, request_id: int) -> None:
        self.stats.busy += 1
        pending = self._local.pop(request_id, None)
        if pending is not None:
            self._finish(pending, Failure.BUSY)
            return
        serving = self._serving.pop(request_id, None)
        if serving is not None and not serving.done:
            serving.done = True
            self._send(serving.origin, ForwardReply(self.node_id, serving.forward_id, "busy"))

    def _send(self, to: int, msg: Forward | ForwardReply) -> bool:
        """Send to a peer; ``False`` when it is no longer one (a member removed since the
        request arrived: the request's origin then times out and retries elsewhere)."""
        try:
            self.sender.send(to, msg)
        except (CodecError, UnknownPeer) as error:
            log.info(
                "node %d: cannot send %s to %d: %r", self.node_id, type(msg).__name__, to, error
            )
            return False
        return True

    def _park(self, pending: _Pending) -> None:
        if pending.state is _State.DONE:
            return
        if pending.change is not None:  # never resent (``submit_change``)
            self._finish(pending, Failure.TIMEOUT)
            return
        pending.state, pending.via = _State.PARKED, None
        self._parked.append(pending)

    # -- peers -------------------------------------------------------------------------------

    def on_forward(self, msg: Forward) -> None:
        """A follower's command: propose it here, or answer it on the read-index path if
        marked ``read`` (a non-leader answers ``Redirect`` itself)."""
        rid = self._new_id()
        now = time.monotonic()
        serving = _Serving(msg.sender, msg.forward_id, now + 2 * self.request_timeout_s)
        self._serving[rid] = serving
        self._serving_deadlines.append((rid, serving))
        self.stats.served += 1
        if msg.read:
            self.driver.read(rid, msg.command)
        else:
            self.driver.propose(rid, msg.command)

    def on_forward_reply(self, msg: ForwardReply) -> None:
        pending = self._forwarded.pop(msg.forward_id, None)
        if pending is None:
            return  # timed out, or rerouted after a leader change
        if msg.outcome == "reply":
            if pending.read:
                self.stats.reads_forwarded += pending.reads
            self._result(pending, msg.result)
        elif msg.outcome == "busy":
            self._finish(pending, Failure.BUSY)
        else:
            self._park(pending)

    # -- status and time ---------------------------------------------------------------------

    def on_status(self, old: Status, new: Status) -> None:
        """The leader changed: resend what went to the old one, route what was parked."""
        if new.leader_id == old.leader_id and new.role is old.role:
            return
        moved = [p for p in self._forwarded.values() if p.via != new.leader_id]
        for pending in moved:
            del self._forwarded[pending.key]
            self.stats.rerouted += 1
            self._route(pending)
        self._route_parked()

    def _route_parked(self) -> None:
        node = self.driver.node
        if not self._parked or not (node.role is Role.LEADER or node.leader_id is not None):
            return
        parked, self._parked = self._parked, []
        for pending in parked:
            if pending.state is _State.PARKED:
                self._route(pending)

    def sweep(self) -> None:
        """Expire what is overdue and route what is parked; call every tick or so."""
        now = time.monotonic()
        deadlines = self._deadlines
        while deadlines and (deadlines[0].state is _State.DONE or deadlines[0].deadline <= now):
            pending = deadlines.popleft()
            if pending.state is _State.DONE:
                continue
            if pending.state is _State.LOCAL:
                self._local.pop(pending.key, None)
            elif pending.state is _State.FORWARDED:
                self._forwarded.pop(pending.key, None)
            self.stats.timeouts += 1
            failure = Failure.TIMEOUT if pending.ever_routed else Failure.NO_LEADER
            self._finish(pending, failure)
        if self._parked:
            self._parked = [p for p in self._parked if p.state is _State.PARKED]
            self._route_parked()
        serving = self._serving_deadlines
        while serving and (serving[0][1].done or serving[0][1].deadline <= now):
            rid, entry = serving.popleft()
            if not entry.done:
                self._serving.pop(rid, None)

    async def run(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.sweep()

    def fail_all(self) -> None:
        """Shutting down: answer everything still waiting with ``TIMEOUT`` (outcome unknown)."""
        for pending in list(self._deadlines):
            if pending.state is not _State.DONE:
                self._finish(pending, Failure.TIMEOUT)
        self._deadlines.clear()
        self._local.clear()
        self._forwarded.clear()
        self._parked.clear()
