"""The asyncio driver: feeds a pure ``multi.Node`` and carries out its effects in a safe order.

One task loops, one batch at a time, in the shape of etcd-raft's ``Ready`` cycle: collect every
waiting input and the ticks due by the loop clock (at most ``ticks_per_batch_max``), step them
through the node, append every ``Persist`` and ``sync()`` once (group commit; on the loop thread
for a small batch, in the storage's thread otherwise), write a snapshot if the node took one,
then send, apply and reply.  So nothing leaves before what it depends on is durable
(``multi.effects``, ``storage.base``); the leader's own votes (``PersistOwnVote``) are the one
exception, as nothing depends on them.  While the storage works it re-sends the last heartbeat
or acknowledgement (``keepalive_s``); a lightly loaded leader polls briefly before it sleeps
(``idle_spin_s``).  Why each of these: docs/design.md, "The driver".  ``send_before_sync`` is a
planted ordering bug, for the test that shows the ordering check can fail.

With leader leases (``MultiConfig.lease_ticks``, ``multi.lease``) a leader must never answer
with a clock that fell further behind since it sent a heartbeat round: every tick due by the
loop clock is stepped *before* the batch's inputs, however many (a stall of the loop, or a jump
of its clock, is counted, not dropped), so a lease that ran out while the loop stood still is
over before the first read after it.  Followers keep the order above (messages first, ticks
capped): a follower's clock that runs late only keeps its promise not to vote for longer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Protocol, TypeVar, final

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    Applied,
    Busy,
    Effect,
    Heartbeat,
    HeartbeatAck,
    Message,
    Node,
    PersistOwnVote,
    Redirect,
    Reply,
    Role,
    SnapshotRecord,
    Status,
)
from pypaxos.runtime.wire import WireMessage, encode_record, snapshot_state
from pypaxos.storage import Snapshot, Storage
from pypaxos.transport import CodecError, UnknownPeer

if TYPE_CHECKING:
    from pypaxos.runtime.metrics import NodeMetrics

log = logging.getLogger(__name__)

TICK_SLACK_S = 0.002
"""A tick this close to due counts as due.  uvloop's timers have millisecond resolution and
may fire up to a millisecond early; without the slack the driver found the tick not yet due,
set a timer for the rest and woke the loop several times per tick (an idle node's main cost)."""


IDLE_SPIN_S = 0.0003
# The most inputs one step takes: a flood of messages is served in bounded steps.
INPUTS_PER_BATCH_MAX = 4096
"""How long a leader that just served clients polls for the next input before it sleeps
(module docstring, "Spin")."""


SPIN_SERVED_MAX = 8
"""A leader spins only after a batch that served at most this many client requests (a
proposal or an answer each): a lightly loaded one.  Under load the next batch is already
waiting, and a spinning leader would take CPU from its followers where they share cores."""


SLOW_S = 0.2
"""A batch this slow, or a wake-up this late, is logged: a fifth of the shortest election
timeout at the default ``tick_ms``, so a leader change under load can be traced to it."""


class ClientSink(Protocol):
    """Who receives the client-facing effects (the router), after the batch's sync."""

    def on_reply(self, request_id: int, result: bytes) -> None: ...

    def on_redirect(self, request_id: int, leader_id: int | None) -> None: ...

    def on_busy(self, request_id: int) -> None: ...


class Sender(Protocol):
    def send(self, to: int, msg: WireMessage) -> None: ...


StatusListener = Callable[[Status, Status], None]
_T = TypeVar("_T")


class Driver:
    """Runs ``node`` against ``storage`` and ``sender``; see the module docstring."""

    def __init__(
        self,
        node: Node,
        storage: Storage,
        sender: Sender,
        executor: Executor,
        *,
        tick_s: float,
        metrics: NodeMetrics | None = None,
        ticks_per_batch_max: int = 2,
        tick_wake_ticks: int | None = None,
        inline_sync_inputs_max: int = 8,
        idle_spin_s: float = IDLE_SPIN_S,
        slow_sync_s: float = 0.02,
        keepalive_s: float | None = None,
        send_before_sync: bool = False,
    ) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        if tick_wake_ticks is not None and tick_wake_ticks < 1:
            raise ValueError("tick_wake_ticks must be at least 1")
        if idle_spin_s < 0:
            raise ValueError("idle_spin_s must be >= 0")
        if keepalive_s is not None and keepalive_s <= 0:
            raise ValueError("keepalive_s must be positive (or None: no keep-alive)")
        self.node = node
        self.storage = storage
        self.sender = sender
        self.sink: ClientSink = _NoClients()
        self.executor = executor
        self.tick_s = tick_s
        self.metrics = metrics
        self.ticks_per_batch_max = ticks_per_batch_max
        self._refused_reported = node.refused_messages
        self._refused_logged_s = -math.inf
        self.tick_wake_ticks = (
            node.config.heartbeat_ticks if tick_wake_ticks is None else tick_wake_ticks
        )
        self.inline_sync_inputs_max = inline_sync_inputs_max
        self.idle_spin_s = idle_spin_s
        self.spins = 0  # times a leader polled after client work (module docstring, "Spin")
        self.spin_hits = 0  # ... and an input arrived before the spin ran out
        self._served = 0  # client proposals stepped and answers given in the last batch
        self.slow_sync_s = slow_sync_s
        self.inline_syncs = 0
        self._batch_inputs = 0
        self._disk_slow = False  # the last sync took over ``slow_sync_s``: use the thread
        self._cork: Callable[[], None] | None = getattr(sender, "cork", None)
        self._flush: Callable[[], None] | None = getattr(sender, "flush", None)
        self.send_before_sync = send_before_sync  # planted bug, tests only
        self.status_listeners: list[StatusListener] = []
        self.log_records = storage.last_index - storage.first_index + 1
        self.batches = 0
        self.syncs = 0
        # re-send liveness messages while the storage works (module docstring); the default is
        # the node's own heartbeat interval
        self.keepalive_s = (
            node.config.heartbeat_ticks * tick_s if keepalive_s is None else keepalive_s
        )
        self.keepalives_sent = 0
        # Reads answered under a lease, not after a round: for the sink's read counts, which
        # takes each id out when it gets the answer (the node answers a lease read at once).
        self.lease_answered: set[int] = set()
        self._last_liveness: dict[int, Heartbeat | HeartbeatAck] = {}
        self._keepalive_timer: asyncio.TimerHandle | None = None
        # a tuple is a client proposal, an ``_OwnVoteSynced`` our own vote now durable, a
        # ``_Read`` a read-only command
        self._inbox: list[Message | tuple[int, bytes] | _OwnVoteSynced | _Read] = []
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self._next_tick = 0.0
        self._status = node.status
        self._executed = getattr(node.replica.machine, "commands_executed", 0)

    # -- inputs (called on the loop thread; never block) -------------------------------------

    def deliver(self, msg: Message) -> None:
        """A peer message from the transport."""
        self._inbox.append(msg)
        self._wake()

    def propose(self, request_id: int, command: bytes) -> None:
        """A client command; the answer comes back through the ``ClientSink``."""
        self._inbox.append((request_id, command))
        self._wake()

    def read(self, request_id: int, command: bytes) -> None:
        """A read-only command for the read-index path; answered through the ``ClientSink``."""
        self._inbox.append(_Read(request_id, command))
        self._wake()

    def stop(self) -> None:
        """Finish the batch in progress (its sync and sends), then make ``run`` return."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_tick = loop.time() + self.tick_s
        done = loop.time()
        while not self._stopping:
            await self._wait(loop)
            if self._stopping:
                break
            woke = loop.time()
            late_s = woke - max(self._next_tick, done)  # not counting our own last batch
            inputs = len(self._inbox)
            effects = self._step(loop)
            stepped = loop.time()
            if self.node.refused_messages != self._refused_reported:
                self._report_refused(stepped)
            if effects:
                awaited = await self._carry_out(effects)
            else:
                awaited = False
            done = loop.time()
            if late_s > SLOW_S or done - woke > SLOW_S:
                # What a leader change under load would need: say where the time went.
                log.warning(
                    "node %d: slow batch: woke %.0f ms after a due tick, step %.0f ms "
                    "(%d inputs), storage and sends %.0f ms",
                    self.node.id,
                    max(late_s, 0.0) * 1000,
                    (stepped - woke) * 1000,
                    inputs,
                    (done - stepped) * 1000,
                )
            self.batches += 1
            self._check_status()
            if not awaited and (self._inbox or loop.time() + TICK_SLACK_S >= self._next_tick):
                # Let readers and writers run between batches (with nothing waiting, ``_wait``
                # yields anyway: an idle node's tick costs one wake-up of the loop, not two).
                await asyncio.sleep(0)

    def _deferred_ticks(self) -> int:
        """Ticks the node lets come due before it wakes up for them (module docstring)."""
        node = self.node
        if node.role is Role.FOLLOWER:
            quiet = node.leader_id is not None
        else:  # a leader with a commit to announce, or a candidate, ticks on time
            quiet = node.role is Role.LEADER and not node.commit_unannounced
        return self.tick_wake_ticks - 1 if quiet else 0

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        wake_at = self._next_tick + self._deferred_ticks() * self.tick_s
        if self._inbox or self._stopping or loop.time() + TICK_SLACK_S >= wake_at:
            return
        served, self._served = self._served, 0
        if 0 < served <= SPIN_SERVED_MAX and self.idle_spin_s and self.node.role is Role.LEADER:
            self.spins += 1
            spin_until = min(loop.time() + self.idle_spin_s, wake_at)
            while True:
                await asyncio.sleep(0)  # one pass of the loop: sockets polled, callbacks run
                if self._inbox or self._stopping:
                    self.spin_hits += 1
                    return
                if loop.time() >= spin_until:
                    break
            if loop.time() + TICK_SLACK_S >= wake_at:
                return
        waiter = loop.create_future()
        self._waiter = waiter
        timer = loop.call_at(wake_at, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _report_refused(self, now_s: float) -> None:
        """Log the peer messages the node ignored, at most once a second (a flood of them
        must not flood the log)."""
        if now_s - self._refused_logged_s < 1.0:
            return
        refused = self.node.refused_messages
        log.warning(
            "node %d: ignored %d peer message(s) no correct peer sends, the last: %s; %d so far",
            self.node.id,
            refused - self._refused_reported,
            self.node.last_refusal,
            refused,
        )
        self._refused_reported = refused
        self._refused_logged_s = now_s

    def _step(self, loop: asyncio.AbstractEventLoop) -> list[Effect]:
        node = self.node
        effects: list[Effect] = []
        inbox = self._inbox
        if len(inbox) <= INPUTS_PER_BATCH_MAX:
            batch, self._inbox = inbox, []
        else:
            batch, self._inbox = inbox[:INPUTS_PER_BATCH_MAX], inbox[INPUTS_PER_BATCH_MAX:]
        self._batch_inputs = len(batch)
        if self._lease_clock():  # the clock first, and all of it (module docstring)
            effects += self._ticks(loop.time(), None)
        served = 0
        proposals: list[tuple[int, bytes]] = []
        for item in batch:
            if isinstance(item, tuple):
                proposals.append(item)
                served += 1
                continue
            if type(item) is _OwnVoteSynced:
                if proposals:
                    effects += node.propose_many(proposals)
                    proposals = []
                effects += node.synced(item.slot, item.ballot)
                continue
            if type(item) is _Read:
                if proposals:  # in arrival order, as for messages
                    effects += node.propose_many(proposals)
                    proposals = []
                lease_reads = node.lease_reads
                effects += node.read(item.request_id, item.command)
                if node.lease_reads != lease_reads:  # answered at once under the lease
                    self.lease_answered.add(item.request_id)
                served += 1
                continue
            if proposals:  # in arrival order: the proposals before this message go first
                effects += node.propose_many(proposals)
                proposals = []
            effects += node.handle(item)
        if proposals:
            effects += node.propose_many(proposals)
        self._served = served
        cap = None if self._lease_clock() else self.ticks_per_batch_max + self._deferred_ticks()
        effects += self._ticks(loop.time(), cap)
        return effects

    def _lease_clock(self) -> bool:
        """A leader that may hold a lease: its clock must not run late (module docstring)."""
        return self.node.config.leases and self.node.role is Role.LEADER

    def _ticks(self, now: float, ticks_max: int | None) -> list[Effect]:
        """Step the ticks due by ``now``: at most ``ticks_max`` (``None``: every one)."""
        effects: list[Effect] = []
        ticks = 0
        while now + TICK_SLACK_S >= self._next_tick:
            if ticks == ticks_max:
                self._next_tick = now + self.tick_s  # behind: let the node's clock run late
                break
            effects += self.node.tick()
            self._next_tick += self.tick_s
            ticks += 1
        return effects

    async def _carry_out(self, effects: list[Effect]) -> bool:
        """Persist, sync, snapshot, send, apply, reply; true if it awaited anything."""
        records: list[bytes] = []
        own_votes: list[_OwnVoteSynced] = []
        snapshot_due = plain = False
        for effect in effects:
            if type(effect) is PersistOwnVote:
                vote = effect.record
                records.append(encode_record(vote))
                own_votes.append(_OwnVoteSynced(vote.slot, vote.ballot))
            elif isinstance(effect, Persist):
                plain = True
                record = effect.state
                if isinstance(record, SnapshotRecord):
                    snapshot_due = True  # kept in the storage snapshot, not in the log
                    continue
                records.append(encode_record(record))
        awaited = sent = replied = False
        last_index = self.storage.last_index
        if records:
            loop = asyncio.get_running_loop()
            if not plain:  # only our own votes: nothing here depends on them (multi.effects)
                self._send(effects)
                self._apply_and_reply(effects)
                sent = replied = True
            elif self.send_before_sync:  # the planted bug: written, sent, and only then synced
                await self._storage_work(loop.run_in_executor(self.executor, self._append, records))
                self._send(effects)
                sent, records = True, []
            if not self._disk_slow and self._batch_inputs <= self.inline_sync_inputs_max:
                last_index, fsync_s, self.log_records = self._persist(records)
                self.inline_syncs += 1
            else:
                last_index, fsync_s, self.log_records = await self._storage_work(
                    loop.run_in_executor(self.executor, self._persist, records)
                )
                awaited = True
            self._disk_slow = fsync_s > self.slow_sync_s
            self.syncs += 1
            if self.metrics is not None:
                self.metrics.observe_fsync(fsync_s, self.log_records)
            self._inbox += own_votes
        if snapshot_due:
            # Before the sends: an installed snapshot moved the node's applied index and
            # compacted its votes, and its next ``HeartbeatAck`` or ``Promise`` says so.
            data = snapshot_state(self.node)
            loop = asyncio.get_running_loop()
            self.log_records = await self._storage_work(
                loop.run_in_executor(self.executor, self._write_snapshot, last_index, data)
            )
            awaited = True
        if not sent:
            self._send(effects)
        if not replied:
            self._apply_and_reply(effects)
        return awaited

    async def _storage_work(self, work: asyncio.Future[_T]) -> _T:
        """Await the storage thread's ``work``, sending keep-alives if it takes long."""
        loop = asyncio.get_running_loop()
        self._keepalive_timer = loop.call_later(self.keepalive_s, self._keepalive, loop)
        try:
            return await work
        finally:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None

    def _keepalive(self, loop: asyncio.AbstractEventLoop) -> None:
        """Still waiting on the storage: send the last liveness message to each peer again."""
        node = self.node
        for peer, msg in self._last_liveness.items():
            # Only for the office we hold now: no old leader's heartbeat, no ack to a deposed one.
            wanted = Role.LEADER if type(msg) is Heartbeat else Role.FOLLOWER
            if node.role is not wanted or msg.ballot != node.leader_ballot:
                continue
            try:
                self.sender.send(peer, msg)
            except (CodecError, UnknownPeer):
                continue  # it was sent once, so this cannot fail for a message's own reasons
            self.keepalives_sent += 1
        self._keepalive_timer = loop.call_later(self.keepalive_s, self._keepalive, loop)

    def _persist(self, records: list[bytes]) -> tuple[int, float, int]:
        """In the executor thread: append, one sync; (last index, sync seconds, log size)."""
        storage = self.storage
        last = self._append(records)
        started = time.perf_counter()
        storage.sync()
        elapsed = time.perf_counter() - started
        return last, elapsed, storage.last_index - storage.first_index + 1

    def _append(self, records: list[bytes]) -> int:
        storage = self.storage
        for record in records:
            storage.append(record)
        return storage.last_index

    def _write_snapshot(self, index: int, data: bytes) -> int:
        storage = self.storage
        storage.write_snapshot(Snapshot(index, data), compact=True)
        log.debug("node %d: snapshot at log index %d (%d bytes)", self.node.id, index, len(data))
        return storage.last_index - storage.first_index + 1

    def _send(self, effects: list[Effect]) -> None:
        sender = self.sender
        liveness = self._last_liveness
        if self._cork is not None:  # one write per peer for the batch, made by ``flush``
            self._cork()
        try:
            self._send_each(sender, liveness, effects)
        finally:
            if self._flush is not None:
                self._flush()

    def _send_each(
        self, sender: Sender, liveness: dict[int, Heartbeat | HeartbeatAck], effects: list[Effect]
    ) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                msg = effect.msg
                try:
                    sender.send(effect.to, msg)
                except (CodecError, UnknownPeer) as error:
                    # Our own bug or a config mismatch; the protocol survives a lost message.
                    log.error("node %d: cannot send to %d: %r", self.node.id, effect.to, error)
                    continue
                if type(msg) is Heartbeat or type(msg) is HeartbeatAck:
                    liveness[effect.to] = msg

    def _apply_and_reply(self, effects: list[Effect]) -> None:
        metrics = self.metrics
        if metrics is not None:
            executed = getattr(self.node.replica.machine, "commands_executed", None)
            if isinstance(executed, int):  # the KV store counts each command of a batch
                commands, self._executed = executed - self._executed, executed
            else:
                commands = sum(len(e.value) for e in effects if isinstance(e, Applied))
            if commands:
                metrics.committed(commands)
        sink = self.sink
        for effect in effects:
            if isinstance(effect, Reply):
                self._served += 1
                sink.on_reply(effect.request_id, effect.result)
            elif isinstance(effect, Redirect):
                sink.on_redirect(effect.request_id, effect.leader_id)
            elif isinstance(effect, Busy):
                sink.on_busy(effect.request_id)

    def _check_status(self) -> None:
        node, old = self.node, self._status
        # Compare the three fields first: building a Status every batch costs more than this.
        if node.role is old.role and node.leader_id == old.leader_id and node.ballot == old.ballot:
            return
        status = node.status
        self._status = status
        if status.role is not old.role or status.leader_id != old.leader_id:
            _log_status(old, status)
        for listener in self.status_listeners:
            listener(old, status)


@final  # so that ``type(item) is _Read`` narrows the inbox item for mypy
class _Read:
    __slots__ = ("command", "request_id")

    def __init__(self, request_id: int, command: bytes) -> None:
        self.request_id = request_id
        self.command = command


@final  # so that ``type(item) is _OwnVoteSynced`` narrows the inbox item for mypy
class _OwnVoteSynced:
    """Input: our own ``AcceptRecord(slot, ballot)`` is durable (``Node.synced``)."""

    __slots__ = ("ballot", "slot")

    def __init__(self, slot: int, ballot: Ballot) -> None:
        self.slot = slot
        self.ballot = ballot


class _NoClients:
    """The sink until a router attaches itself (a node with no client port drops answers)."""

    def on_reply(self, request_id: int, result: bytes) -> None:
        pass

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        pass

    def on_busy(self, request_id: int) -> None:
        pass


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _log_status(old: Status, new: Status) -> None:
    if new.role is Role.LEADER:
        log.info("node %d: became leader at ballot %s", new.node_id, new.ballot)
    elif new.role is Role.CANDIDATE:
        log.info("node %d: candidate at ballot %s (election)", new.node_id, new.ballot)
    elif new.leader_id is not None:
        log.info("node %d: following leader %d (ballot %s)", new.node_id, new.leader_id, new.ballot)
    elif old.role is Role.LEADER:
        log.info("node %d: stepped down, no leader known", new.node_id)
