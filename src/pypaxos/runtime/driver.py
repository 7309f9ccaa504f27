"""The asyncio driver: feeds a pure ``multi.Node`` and carries out its effects in a safe order.

One task loops, one batch at a time, in the shape of etcd-raft's ``Ready`` cycle: collect the
waiting inputs and the ticks due by the loop clock (at most ``ticks_per_batch_max``), step them
through the node, append every ``Persist`` and ``sync()`` once (group commit; on the loop thread
for a small batch, in the storage's thread otherwise), send, apply and reply, and last start a
snapshot if the node asked for one.  A step is bounded (``INPUTS_PER_BATCH_MAX``,
``PROPOSAL_BYTES_PER_BATCH_MAX``, ``STEP_TIME_MAX_S``): what it leaves waits for the next
batch, so one batch holds no commit for long however large the backlog.  Nothing leaves
before what it depends on is durable (``multi.effects``, ``storage.base``); the leader's own
votes (``PersistOwnVote``) are the one exception, as nothing depends on them.  While the
storage works it re-sends the last heartbeat or acknowledgement (``keepalive_s``); a lightly
loaded leader polls briefly before it sleeps (``idle_spin_s``).  Why each of these:
docs/design.md, "The driver".  ``send_before_sync`` and ``prompt_while_busy`` are planted
ordering bugs, for the tests that show the ordering checks can fail.

Prompt steps.  A read's confirmation round is latency a client waits for: the read, the
leader's ``Heartbeat``, each follower's ``HeartbeatAck``.  When one of these (or a follower
read's ``ReadIndexRequest``/``ReadIndexReply``) arrives while the loop task sleeps, the driver
steps it at once, in the transport's or the client port's callback, as a batch of its own,
instead of waking the task for the next pass of the loop: the heartbeat leaves in the pass the
read arrived, a follower's acknowledgement in the pass the heartbeat arrived (the node decides
it, checking the ballot as always), and the reply is written in the pass the acknowledgement
arrived.  The order is the same as the task's (every earlier batch was carried out, since the
task sleeps); a step whose effects need the storage (a record, a snapshot, a compaction) hands
them to the task, which carries them out before anything else, so nothing is sent before what
it depends on is durable.  Other inputs, and any that arrive while a batch is under way or the
leader spins, wait for the task as before, so batching under load is unchanged; a prompt step
that served clients is followed by the leader's spin, as the task's own batches are.

Snapshots never stop the loop.  On ``TakeSnapshot`` (once the batch's records are synced, so
the node's memory is exactly the fold of the log up to ``storage.last_index``) the driver
``fork()`` s: the child writes the state machine's chunks and the node's ``SnapshotMeta`` to the
data directory (``storage.write_snapshot_file``: temp file, fsync, rename, fsync of the
directory) and exits; copy-on-write keeps its view fixed while the parent goes on applying.  The
parent watches the child through a pidfd on the loop; when it exits cleanly the storage adopts
the file and the node hears ``snapshot_saved`` (then ``CompactLog``: the storage forgets the log
segments it covers at once, and a file thread deletes them, so no batch waits for the file
system), otherwise ``snapshot_failed``.  The cost on the loop is the ``fork()`` itself (page
tables: a few milliseconds per GiB of heap).  A storage that is not a ``FileStorage`` (tests)
is snapshotted on the loop and written in the storage thread instead.  ``SendSnapshot`` chunks
are read from the snapshot file in a thread of their own and sent from the loop, each as soon
as it is read.

With leader leases (``MultiConfig.lease_ticks``, ``multi.lease``) a leader must never answer
with a clock that fell further behind since it sent a heartbeat round: every tick due by the
loop clock is stepped *before* the batch's inputs, however many (a stall of the loop, or a jump
of its clock, is counted, not dropped), so a lease that ran out while the loop stood still is
over before the first read after it.  Followers keep the order above (messages first, ticks
capped), so a follower's clock may lag when it acknowledges a heartbeat and catch up right
after, by at most ``ticks_per_batch_max`` plus the ticks it let come due: its promise is that
much shorter, which the leader's lease allows for (``runtime.config.follower_clock_lag_ticks``,
``MultiConfig.lease_clock_lag_ticks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeVar, final

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    Applied,
    Busy,
    CompactLog,
    Effect,
    Heartbeat,
    HeartbeatAck,
    LocalReply,
    Message,
    Node,
    PersistOwnVote,
    ReadIndexReply,
    ReadIndexRequest,
    Redirect,
    Replica,
    Reply,
    Role,
    SendSnapshot,
    SnapshotChunk,
    Status,
    TakeSnapshot,
)
from pypaxos.multi.membership import Change, MembershipRefused, MembershipState
from pypaxos.multi.reads import LocalQuery
from pypaxos.runtime.batch_trace import BatchTrace
from pypaxos.runtime.config import TICKS_PER_BATCH_MAX
from pypaxos.runtime.heap import HeapTrimmer
from pypaxos.runtime.snapshot_pace import SnapshotPace, duty_for_lag, paced
from pypaxos.runtime.wire import (
    WireMessage,
    encode_record,
    snapshot_has_membership,
    snapshot_meta,
)
from pypaxos.storage import (
    FileStorage,
    SnapshotReader,
    Storage,
    StorageError,
    remove_segments,
    write_snapshot_file,
)
from pypaxos.storage.file import SNAPSHOT_NAME
from pypaxos.transport import CodecError, UnknownPeer

if TYPE_CHECKING:
    from pypaxos.runtime.metrics import NodeMetrics

log = logging.getLogger(__name__)

# Compacted slots' values let go per turn of the loop (each a batch of up to
# ``batch_max_commands`` commands: a few ms of freeing).
RELEASE_VALUES_PER_TURN = 16

TICK_SLACK_S = 0.002
"""A tick this close to due counts as due.  uvloop's timers have millisecond resolution and
may fire up to a millisecond early; without the slack the driver found the tick not yet due,
set a timer for the rest and woke the loop several times per tick (an idle node's main cost)."""


IDLE_SPIN_S = 0.0003
"""How long a leader that just served clients polls for the next input before it sleeps
(module docstring, "Spin")."""


INPUTS_PER_BATCH_MAX = 4096
"""The most inputs one step takes: a flood of messages is served in bounded steps."""


PROPOSAL_BYTES_PER_BATCH_MAX = 256 * 1024
"""A step takes no more client commands once they add up to this many bytes (the rest wait for
the next batch): one batch's proposals are then one or two slots, whose apply on every node
is a bounded step too, not a burst of every pipelined client's commands at once."""


STEP_TIME_MAX_S = 0.01
"""A step takes no more inputs once it has used this much CPU time: the batch's votes are synced
and sent, and its answers given, before the rest is stepped, so a backlog of messages (catch-up
answers, a flood of acknowledgements) holds no commit for longer than about this.  CPU time,
not wall time: a process waiting for a core would otherwise cut its batches ever shorter, and
pay an fsync for each."""


SPIN_SERVED_MAX = 8
"""A leader spins only after a batch that served at most this many client requests (a
proposal or an answer each): a lightly loaded one.  Under load the next batch is already
waiting, and a spinning leader would take CPU from its followers where they share cores."""


IDLE_TRIM_AFTER_S = 0.1
"""After this long without applying anything the node is idle: it gives the C heap that its
last burst freed back to the kernel (``runtime.heap``; under load every batch applies some)."""


SLOW_S = 0.2
"""A batch this slow, or a wake-up this late, is logged: a fifth of the shortest election
timeout at the default ``tick_ms``, so a leader change under load can be traced to it."""


PROMPT_MESSAGES: frozenset[type] = frozenset(
    {Heartbeat, HeartbeatAck, ReadIndexRequest, ReadIndexReply}
)
"""The peer messages of a read's confirmation round: stepped at once when they find the driver
asleep (module docstring, "Prompt steps"), as is a client's read."""

NEEDS_LOOP_TASK: frozenset[type] = frozenset(
    {PersistOwnVote, TakeSnapshot, CompactLog, SendSnapshot}
)
"""Effects a prompt step leaves to the loop task (with every ``Persist``): they need the
storage, a fork or the snapshot reader."""


class ClientSink(Protocol):
    """Who receives the client-facing effects (the router), after the batch's sync."""

    def on_reply(self, request_id: int, result: bytes) -> None: ...

    def on_local_reply(self, request_id: int, answer: object) -> None: ...

    def on_redirect(self, request_id: int, leader_id: int | None) -> None: ...

    def on_busy(self, request_id: int) -> None: ...

    def on_refused(self, refusal: MembershipRefused) -> None: ...


class Sender(Protocol):
    def send(self, to: int, msg: WireMessage) -> None: ...


StatusListener = Callable[[Status, Status], None]
MembershipListener = Callable[[MembershipState], None]
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
        ticks_per_batch_max: int = TICKS_PER_BATCH_MAX,
        tick_wake_ticks: int | None = None,
        inline_sync_inputs_max: int = 8,
        idle_spin_s: float = IDLE_SPIN_S,
        slow_sync_s: float = 0.02,
        keepalive_s: float | None = None,
        send_before_sync: bool = False,
        prompt_while_busy: bool = False,
        snapshot_in_child: bool | None = None,
        step_time_max_s: float = STEP_TIME_MAX_S,
        proposal_bytes_max: int = PROPOSAL_BYTES_PER_BATCH_MAX,
        inputs_per_batch_max: int = INPUTS_PER_BATCH_MAX,
    ) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        if tick_wake_ticks is not None and tick_wake_ticks < 1:
            raise ValueError("tick_wake_ticks must be at least 1")
        if idle_spin_s < 0:
            raise ValueError("idle_spin_s must be >= 0")
        if step_time_max_s < 0 or proposal_bytes_max < 0 or inputs_per_batch_max < 1:
            raise ValueError("a step's bounds must be >= 0 (and at least one input)")
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
        # A step's bounds (``STEP_TIME_MAX_S`` and the two above it), and how many batches they
        # cut short
        self.step_time_max_s = step_time_max_s
        self.proposal_bytes_max = proposal_bytes_max
        self.inputs_per_batch_max = inputs_per_batch_max
        self.batches_cut = 0
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
        self.prompt_while_busy = prompt_while_busy  # planted bug, tests only (prompt steps)
        self.status_listeners: list[StatusListener] = []
        # Called after each batch's answers (the server's blocked clients look for what the
        # newly applied entries make available to them); empty unless a client blocks.
        self.applied_listeners: list[Callable[[], None]] = []
        # Called after a batch that changed the node's membership (a change applied, a
        # pending one come into force, a snapshot installed), with the new one.
        self.membership_listeners: list[MembershipListener] = []
        self._membership_version = node.membership.version
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
        # ``_Read`` a read-only command, a ``_SnapshotDone`` the end of a snapshot's writing,
        # a ``_Change`` a membership change to propose
        self._inbox: list[
            Message | tuple[int, bytes] | _OwnVoteSynced | _Read | _SnapshotDone | _Change
        ] = []
        # Snapshots (module docstring): a forked child for a file storage, unless told otherwise.
        self.snapshot_in_child = (
            isinstance(storage, FileStorage) if snapshot_in_child is None else snapshot_in_child
        )
        self._snapshot_wanted = False  # the node asked; started once the log is synced
        self._snapshot_child: _SnapshotChild | None = None
        self._saved: list[tuple[int, int]] = []  # (slot, log index) of snapshots adopted
        self._open_snapshots: dict[int, SnapshotReader] = {}  # slot -> reader, for SendSnapshot
        # Background file work no batch waits for: snapshot chunks read to be sent, compacted
        # segments deleted.
        self._file_pool = ThreadPoolExecutor(1, thread_name_prefix=f"pypaxos-files-{node.id}")
        self.segments_detached = 0
        self.snapshots_saved = 0
        self.snapshot_fork_s = 0.0  # the last fork's time on the loop
        # The last forked snapshot's writing: wall time from the fork to its exit, and the
        # child's CPU time (far below the wall time: it waited for the CPU or for its pace).
        self.snapshot_write_s = 0.0
        self.snapshot_write_cpu_s = 0.0
        self.window_held = False  # past the snapshot backstop (``Node.snapshot_lag_bytes``)
        self._dropped: list[object] = []  # compacted values, let go a slice per loop turn
        self._releasing = False
        self._adopted_in_batch = False  # a snapshot was adopted: the next fork waits a batch
        # The running snapshot child's duty cycle, shared with it (``runtime.snapshot_pace``).
        self._pace = SnapshotPace()
        self.snapshot_duty = 1.0
        self._duty_traced = 1.0
        self.snapshot_chunks_sent = 0
        # The last snapshot received from a peer: when its first chunk came (since this
        # driver started), how long from then until it was installed, and its bytes.
        self._started_at = time.monotonic()
        self._receiving_since: float | None = None
        self._receiving_bytes = 0
        self._installs_seen = node.replica.snapshots_installed
        self.snapshot_receive_bytes = 0
        self.snapshot_receive_s = 0.0
        self.snapshot_first_chunk_s = 0.0
        # The C heap's free pages go back to the kernel after each compaction (runtime.heap),
        # and once now, after recovery's snapshot and log replay.
        self.heap = HeapTrimmer()
        self.heap.request()
        # The applied index and when it last moved (heartbeats come and go on an idle node; the
        # applied index stands still): idle trims.
        self._applied_seen = node.replica.applied_index
        self._applied_moved_at = 0.0
        self._serve_recovered_snapshot()
        node.snapshot_size_known(self._stored_snapshot_bytes())  # the growth schedule's base
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        # Prompt steps (module docstring): how many, effects left for the loop task to carry
        # out, a failure for it to raise, and the tick deferral it went to sleep with.
        self.prompt_steps = 0
        self._stepped: list[Effect] | None = None
        self._failure: Exception | None = None
        self._deferred_when_asleep = 0
        self._prompting = False  # a prompt step is under way (no other starts inside it)
        self._spin_next = False  # a prompt step served clients: the task spins next
        self._next_tick = 0.0
        self._status = node.status
        self._leases = node.config.leases  # (a frozen config: read once, asked every batch)
        self._executed = getattr(node.replica.machine, "commands_executed", 0)
        self.trace = BatchTrace.from_env(node.id)

    # -- inputs (called on the loop thread; never block) -------------------------------------

    def deliver(self, msg: Message) -> None:
        """A peer message from the transport."""
        self._inbox.append(msg)
        if type(msg) is SnapshotChunk:
            self._chunk_arrived(msg)
        if type(msg) in PROMPT_MESSAGES and self._asleep():
            self._step_now()
        else:
            self._wake()

    def propose(self, request_id: int, command: bytes) -> None:
        """A client command; the answer comes back through the ``ClientSink``."""
        self._inbox.append((request_id, command))
        self._wake()

    def read(self, request_id: int, command: bytes | LocalQuery) -> None:
        """A read-only command for the read-index path; answered through the ``ClientSink``."""
        self._inbox.append(_Read(request_id, command))
        if self._asleep():
            self._step_now()
        else:
            self._wake()

    def propose_change(self, request_id: int, change: Change) -> None:
        """A membership change (``Node.propose_membership_change``); the new configuration
        (``Reply``) or a ``MembershipRefused`` comes back through the ``ClientSink``."""
        self._inbox.append(_Change(request_id, change))
        self._wake()

    def stop(self) -> None:
        """Finish the batch in progress (its sync and sends), then make ``run`` return."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _asleep(self) -> bool:
        """Is the loop task waiting for input, with no batch of its own under way?"""
        if self.prompt_while_busy:  # the planted bug: even while a batch awaits its sync
            return not self._stopping
        waiter = self._waiter
        return (
            waiter is not None and not waiter.done() and not self._stopping and not self._prompting
        )

    def _step_now(self) -> None:
        """Step the inbox at once, in the caller's callback, as one batch (module docstring,
        "Prompt steps").  Called only while the loop task sleeps: every earlier batch was
        carried out, so this one is the next in order.  Effects that need the storage (a
        record to sync, a snapshot, a compaction) go to the loop task instead, which carries
        them out before it steps anything else; so do failures, which stop the driver."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        self._prompting = True  # what its replies and listeners submit waits for the task
        try:
            inputs = len(self._inbox)
            effects = self._step(loop)
            sends = answers = False
            for effect in effects:  # one pass: what needs the storage, what is sent, the rest
                if isinstance(effect, Send):
                    sends = True
                elif type(effect) in NEEDS_LOOP_TASK or isinstance(effect, Persist):
                    self._stepped = effects
                    self._wake()
                    return
                else:
                    answers = True
            stepped = loop.time()
            self.prompt_steps += 1
            if sends:  # (the acknowledgement that confirms a read sends nothing)
                self._send(effects)
            if answers:  # (a follower's acknowledgement applies and answers nothing)
                self._apply_and_reply(effects)
            self._batch_done(began, began, stepped, inputs)
        except Exception as error:  # a bug: stop as a failing loop task would
            self._failure = error
            self._wake()
            return
        finally:
            self._prompting = False
        if self._inbox:
            self._wake()  # own votes to count
        elif self._served and self.idle_spin_s and self.node.role is Role.LEADER:
            self._spin_next = True  # it served clients: poll for the next input, as after
            self._wake()  # the task's own batches ("Spin"); it then sleeps to the next tick
        elif self._deferred_ticks() < self._deferred_when_asleep:
            self._wake()  # a nearer tick (a commit to announce, a thrifty read round out)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_tick = loop.time() + self.tick_s
        done = loop.time()
        while not self._stopping:
            await self._wait(loop)
            if self._failure is not None:
                raise self._failure
            if self._stopping and self._stepped is None:
                break
            if self._spin_next:  # after a prompt step that served clients: spin, then step
                self._spin_next = False
                if not self._inbox and self._stepped is None:
                    continue
            woke = loop.time()
            late_s = woke - max(self._next_tick, done)  # not counting our own last batch
            inputs = len(self._inbox)
            trace = self.trace
            if trace is not None:
                trace.begin(inputs)
            if self._stepped is not None:  # a prompt step's effects that need the storage
                effects, self._stepped = self._stepped, None
            else:
                effects = self._step(loop)
            stepped = loop.time()
            if trace is not None:
                trace.phase("step")
                trace.note(f"effects {len(effects)}")
            if effects:
                awaited = await self._carry_out(effects)
            else:
                awaited = False
            done = loop.time()
            if trace is not None:
                trace.end()
            self._batch_done(woke - max(late_s, 0.0), woke, stepped, inputs)
            if not awaited and (
                self._inbox
                or self.node.apply_pending
                or loop.time() + TICK_SLACK_S >= self._next_tick
            ):
                # Let readers and writers run between batches (with nothing waiting, ``_wait``
                # yields anyway: an idle node's tick costs one wake-up of the loop, not two).
                await asyncio.sleep(0)
        self.close_snapshots()
        if self.trace is not None:
            self.trace.close()

    def _batch_done(self, due: float, woke: float, stepped: float, inputs: int) -> None:
        """After each batch: report refusals and slowness, count it, tell the listeners."""
        if self.node.refused_messages != self._refused_reported:
            self._report_refused(stepped)
        done = asyncio.get_running_loop().time()
        late_s = woke - due
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
        applied = self.node.replica.applied_index
        if applied != self._applied_seen:
            self._applied_seen, self._applied_moved_at = applied, done
        elif done - self._applied_moved_at >= IDLE_TRIM_AFTER_S:  # idle: give a burst's
            self.heap.idle(applied)  # freed heap back (runtime.heap)
        if self.heap.owed and not self._releasing and not self._snapshot_wanted:
            self.heap.pay()  # a compaction's (runtime.heap): not before a fork, which would wait
        self._check_status()
        if self.node.membership.version != self._membership_version:
            self._membership_changed()
        if self._receiving_since is not None and self.node.incoming is None:
            self._receive_ended()

    def _chunk_arrived(self, chunk: SnapshotChunk) -> None:
        """Account for a received snapshot chunk (``INFO`` ``snapshot_receive_*``)."""
        if self._receiving_since is None:
            self._receiving_since = time.monotonic()
            self._receiving_bytes = 0
        self._receiving_bytes += len(chunk.data)

    def _receive_ended(self) -> None:
        """The node holds no transfer any more: installed (timed) or dropped."""
        since, self._receiving_since = self._receiving_since, None
        installs = self.node.replica.snapshots_installed
        if since is not None and installs != self._installs_seen:
            self._installs_seen = installs
            self.snapshot_receive_s = time.monotonic() - since
            self.snapshot_first_chunk_s = since - self._started_at
            self.snapshot_receive_bytes = self._receiving_bytes

    def _deferred_ticks(self) -> int:
        """Ticks the node lets come due before it wakes up for them (module docstring)."""
        node = self.node
        if node.role is Role.FOLLOWER:
            quiet = node.leader_id is not None
        else:  # a leader with a commit to announce or a thrifty read round out, or a
            # candidate, ticks on time
            quiet = (
                node.role is Role.LEADER
                and not node.commit_unannounced
                and not node.read_round_waiting
            )
        return self.tick_wake_ticks - 1 if quiet else 0

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        wake_at = self._next_tick + self._deferred_ticks() * self.tick_s
        if self._inbox or self._stopping or loop.time() + TICK_SLACK_S >= wake_at:
            return
        if self.node.apply_pending:  # decided slots a bound left for this batch
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
        self._deferred_when_asleep = self._deferred_ticks()
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
        inbox, self._inbox = self._inbox, []
        if self._lease_clock():  # the clock first, and all of it (module docstring)
            effects += self._ticks(loop.time(), None)
        if node.apply_pending:  # what the apply bound left, before anything new
            effects += node.apply_more()
        served = taken = proposal_bytes = 0
        proposals: list[tuple[int, bytes]] = []
        clock = time.thread_time
        # The time bound applies from the second input on: a step of one (a prompt step's
        # message) does without the clock's system call.
        deadline = clock() + self.step_time_max_s if len(inbox) > 1 else 0.0
        inputs_max, proposal_bytes_max = self.inputs_per_batch_max, self.proposal_bytes_max
        for item in inbox:
            # Bounded by inputs, by proposal bytes and by time (one input at least).
            if taken and (taken >= inputs_max or proposal_bytes >= proposal_bytes_max):
                break
            if isinstance(item, tuple):
                proposals.append(item)
                proposal_bytes += len(item[1])
                served += 1
                taken += 1
                continue
            if taken and clock() >= deadline:
                break
            taken += 1
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
            if type(item) is _SnapshotDone:
                effects += self._snapshot_done(item)
                continue
            if type(item) is _Change:
                if proposals:
                    effects += node.propose_many(proposals)
                    proposals = []
                effects += node.propose_membership_change(item.request_id, item.change)
                continue
            if proposals:  # in arrival order: the proposals before this message go first
                effects += node.propose_many(proposals)
                proposals = []
            effects += node.handle(item)
        if proposals:
            effects += node.propose_many(proposals)
        if taken < len(inbox):  # the rest first in the next batch, in arrival order
            self._inbox = inbox[taken:] + self._inbox
            self.batches_cut += 1
        self._batch_inputs = taken
        self._served = served
        now = loop.time()
        if now + TICK_SLACK_S >= self._next_tick:  # (else no tick is due: ``_ticks`` is a no-op)
            cap = None if self._lease_clock() else self.ticks_per_batch_max + self._deferred_ticks()
            effects += self._ticks(now, cap)
        return effects

    def _lease_clock(self) -> bool:
        """A leader that may hold a lease: its clock must not run late (module docstring)."""
        return self._leases and self.node.role is Role.LEADER

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
        plain = False
        compact_slot = -1
        for effect in effects:
            if type(effect) is PersistOwnVote:
                vote = effect.record
                records.append(encode_record(vote))
                own_votes.append(_OwnVoteSynced(vote.slot, vote.ballot))
            elif isinstance(effect, Persist):
                plain = True
                records.append(encode_record(effect.state))
            elif type(effect) is TakeSnapshot:
                self._snapshot_wanted = True
            elif type(effect) is CompactLog:
                compact_slot = max(compact_slot, effect.slot)
            elif type(effect) is SendSnapshot:
                self._serve_snapshot(effect)
        awaited = sent = replied = False
        if records:
            loop = asyncio.get_running_loop()
            if not plain:  # only our own votes: nothing here depends on them (multi.effects)
                self._send(effects)
                self._trace_phase("send")
                self._apply_and_reply(effects)
                self._trace_phase("apply")
                sent = replied = True
            elif self.send_before_sync:  # the planted bug: written, sent, and only then synced
                await self._storage_work(loop.run_in_executor(self.executor, self._append, records))
                self._send(effects)
                sent, records = True, []
            if not self._disk_slow and self._batch_inputs <= self.inline_sync_inputs_max:
                _, fsync_s, self.log_records = self._persist(records)
                self.inline_syncs += 1
            else:
                _, fsync_s, self.log_records = await self._storage_work(
                    loop.run_in_executor(self.executor, self._persist, records)
                )
                awaited = True
            self._disk_slow = fsync_s > self.slow_sync_s
            if self.trace is not None:
                self.trace.phase("persist")
                self.trace.note(
                    f"records {len(records)} bytes {sum(map(len, records))} "
                    f"fsync {fsync_s * 1000:.1f}"
                )
            self.syncs += 1
            if self.metrics is not None:
                self.metrics.observe_fsync(fsync_s, self.log_records)
            self._inbox += own_votes
        index = self._compact_index(compact_slot) if compact_slot >= 0 else None
        if index is not None:
            self._compact(index)
            self._trace_phase("compact")
        if not sent:
            self._send(effects)
            self._trace_phase("send")
        if not replied:
            self._apply_and_reply(effects)
            self._trace_phase("apply")
        # Last, so that the fork does not delay this batch's messages and answers; nothing
        # since the sync changed the node's state.
        self._pace_snapshot()
        adopted, self._adopted_in_batch = self._adopted_in_batch, False
        if self._snapshot_wanted and self._snapshot_child is None and not adopted:
            awaited = await self._start_snapshot() or awaited
            self._trace_phase("snapshot")
        return awaited

    def _trace_phase(self, name: str) -> None:
        if self.trace is not None:
            self.trace.phase(name)

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

    # -- snapshots (module docstring) --------------------------------------------------------

    async def _start_snapshot(self) -> bool:
        """Start writing the snapshot the node asked for; true if it awaited the storage."""
        storage, node = self.storage, self.node
        if storage.synced_index != storage.last_index:
            return False  # not the fold of a durable log yet: the next batch starts it
        self._snapshot_wanted = False
        index, slot = storage.last_index, node.replica.applied_index
        meta = snapshot_meta(node)
        chunk_bytes = node.config.snapshot_chunk_bytes_max
        replica = node.replica
        if not self.snapshot_in_child:
            chunks = [*replica.snapshot_chunks(chunk_bytes), meta]
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self.executor, self._write_chunks, index, chunks)
            ok = await self._storage_work(work)
            self._inbox.append(_SnapshotDone(slot, index, ok, adopted=True))
            return True
        assert isinstance(storage, FileStorage)
        self.snapshot_duty = self._duty()
        self._pace.set(self.snapshot_duty)
        started = time.perf_counter()
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            _snapshot_child(storage, index, replica, chunk_bytes, meta, parent_pid, self._pace)
        self.snapshot_fork_s = time.perf_counter() - started
        if self.trace is not None:
            self.trace.event(f"fork {self.snapshot_fork_s * 1000:.1f} ms")
        pidfd = os.pidfd_open(pid)
        child = _SnapshotChild(pid, pidfd, slot, index)
        self._snapshot_child = child
        asyncio.get_running_loop().add_reader(pidfd, self._snapshot_child_exited, child)
        log.debug(
            "node %d: snapshot of slot %d (log index %d) in child %d, fork %.1f ms",
            node.id,
            slot,
            index,
            pid,
            self.snapshot_fork_s * 1000,
        )
        return False

    def _pace_snapshot(self) -> None:
        """Set a running snapshot child's duty from how close the node is to its backstop
        (``runtime.snapshot_pace``), and note when the backstop holds the window."""
        node = self.node
        lag_bytes, bound_bytes = node.snapshot_lag_bytes, node.snapshot_lag_bound_bytes
        held = lag_bytes > bound_bytes
        if held != self.window_held:
            self.window_held = held
            if self.trace is not None:
                what = "holds the window" if held else "lets the window go"
                self.trace.event(f"snapshot backstop {what}: lag {lag_bytes} bytes")
        if self._snapshot_child is None:
            return
        duty = self._duty()
        if duty == self.snapshot_duty:
            return
        self.snapshot_duty = duty
        self._pace.set(duty)
        if self.trace is not None and (abs(duty - self._duty_traced) >= 0.1 or duty == 1.0):
            self._duty_traced = duty
            self.trace.event(f"snapshot duty {duty:.2f}: lag {lag_bytes} bytes")

    def _duty(self) -> float:
        """The snapshot child's duty: how far the lag came, since the snapshot was asked for,
        into the room left below the backstop then (``runtime.snapshot_pace``).  Counted from
        the ask, not from zero: under the growth schedule a snapshot is asked for at a lag
        that grows with the state, which alone is no hurry.  Full when a peer waits for it
        (``Node.snapshot_awaited``)."""
        node = self.node
        if node.snapshot_awaited:
            return 1.0
        asked_bytes = node.snapshot_asked_lag_bytes
        return duty_for_lag(
            node.snapshot_lag_bytes - asked_bytes, node.snapshot_lag_bound_bytes - asked_bytes
        )

    def _stored_snapshot_bytes(self) -> int:
        """The size of the storage's snapshot file (0: none, or not a file storage)."""
        storage = self.storage
        if not isinstance(storage, FileStorage):
            return 0
        try:
            return os.stat(storage.dir / SNAPSHOT_NAME).st_size
        except OSError:
            return 0

    def _write_chunks(self, index: int, chunks: list[bytes]) -> bool:
        try:
            self.storage.write_snapshot_chunks(index, chunks, compact=False)
        except StorageError as error:
            log.error("node %d: snapshot write failed: %s", self.node.id, error)
            return False
        return True

    def _snapshot_child_exited(self, child: _SnapshotChild) -> None:
        """The child's pidfd is readable: it exited.  Reap it and tell the node."""
        asyncio.get_running_loop().remove_reader(child.pidfd)
        os.close(child.pidfd)
        _, status, usage = os.wait4(child.pid, 0)
        self._snapshot_child = None  # reaped: nothing of it is left to close or kill
        code = os.waitstatus_to_exitcode(status)
        self.snapshot_write_s = time.monotonic() - child.started_s
        self.snapshot_write_cpu_s = usage.ru_utime + usage.ru_stime
        if self.trace is not None:
            self.trace.event(
                f"snapshot child exited {code} wall {self.snapshot_write_s:.2f} s "
                f"cpu {self.snapshot_write_cpu_s:.2f} s waits {usage.ru_nvcsw} "
                f"preempted {usage.ru_nivcsw}"
            )
        if code != 0:
            log.error("node %d: snapshot child %d failed (exit %d)", self.node.id, child.pid, code)
        self._inbox.append(_SnapshotDone(child.slot, child.index, code == 0, adopted=False))
        self._wake()

    def _snapshot_done(self, done: _SnapshotDone) -> list[Effect]:
        """Between batches (no storage work runs): adopt the file, tell the node."""
        ok = done.ok
        if ok and not done.adopted:
            storage = self.storage
            assert isinstance(storage, FileStorage), "only a file storage forks its snapshots"
            try:
                storage.adopt_snapshot(done.index, compact=False)
            except StorageError as error:
                log.error("node %d: cannot adopt the snapshot: %s", self.node.id, error)
                ok = False
        if not ok:
            return self.node.snapshot_failed()
        self.snapshots_saved += 1
        self._saved = [*self._saved[-3:], (done.slot, done.index)]
        self._serve(done.slot)
        # The votes the compaction drops are let go a slice per turn of the loop, not in this
        # step: under heavy writes they are hundreds of MB of small objects, and freeing them
        # at once held a leader's loop for longer than an election timeout.  The next fork
        # waits for the next batch for the same reason.
        below = done.slot
        accepted = self.node.acceptor.accepted
        self._dropped += [vote.value for slot, vote in accepted.items() if slot < below]
        self._adopted_in_batch = True
        effects = self.node.snapshot_saved(done.slot, self._stored_snapshot_bytes())
        if self._dropped and not self._releasing:
            self._releasing = True
            asyncio.get_running_loop().call_soon(self._release_dropped)
        self.heap.owe()  # paid once the dropped values are gone and no fork is due (_batch_done)
        return effects

    def _release_dropped(self) -> None:
        """Let go of some of the values a compaction dropped; again on the next turn if more
        are left."""
        del self._dropped[-RELEASE_VALUES_PER_TURN:]
        if self._dropped:
            asyncio.get_running_loop().call_soon(self._release_dropped)
        else:
            self._releasing = False

    def _compact_index(self, slot: int) -> int | None:
        """The log index of the newest adopted snapshot at or below ``slot``."""
        covered = [index for saved_slot, index in self._saved if saved_slot <= slot]
        return max(covered) if covered else None

    def _compact(self, index: int) -> None:
        """Drop the log below the snapshot at ``index``.  A file storage only forgets its
        segments here; the file thread deletes them, so no batch waits for the file system
        (``FileStorage.detach_compacted``)."""
        storage = self.storage
        if isinstance(storage, FileStorage):
            paths = storage.detach_compacted(index)
            if paths:
                self.segments_detached += len(paths)
                self._file_pool.submit(_remove_segments, self.node.id, paths)
        else:
            storage.compact(index)
        self.log_records = storage.last_index - storage.first_index + 1

    def _serve_recovered_snapshot(self) -> None:
        """After a restart the storage's snapshot is the replica's (a format-1 file holds no
        separate machine chunks, so it is not served: peers wait for the next snapshot)."""
        slot = self.node.replica.snapshot_slot
        if slot > 0:
            self._serve(slot)

    def _serve(self, slot: int) -> None:
        """Keep the storage's current snapshot open for ``SendSnapshot`` (and the one before,
        for transfers under way); close older ones in the reader thread, after its reads."""
        try:
            reader = self.storage.open_snapshot()
        except StorageError as error:
            log.error("node %d: cannot open the snapshot to serve it: %s", self.node.id, error)
            return
        if reader is None or reader.format_version < 2 or not self._servable(reader):
            if reader is not None:
                reader.close()
            return
        self._open_snapshots[slot] = reader
        for old in sorted(self._open_snapshots)[:-2]:
            self._file_pool.submit(self._open_snapshots.pop(old).close)

    def _servable(self, reader: SnapshotReader) -> bool:
        """A reconfigurable node's peers expect the membership's chunk first: a snapshot
        written before the node had one is not served (peers wait for the next one)."""
        if self.node.replica.membership is None:
            return True
        try:
            return reader.chunk_count > 0 and snapshot_has_membership(
                reader.read_chunk(reader.chunk_count - 1)
            )
        except (StorageError, ValueError) as error:
            log.error("node %d: cannot read the snapshot's meta: %s", self.node.id, error)
            return False

    def _serve_snapshot(self, effect: SendSnapshot) -> None:
        reader = self._open_snapshots.get(effect.slot)
        if reader is None:  # gone (replaced twice, or never served): the peer asks again
            self._send_chunks(effect.to, [SnapshotChunk(self.node.id, effect.slot, 0, 0)])
            return
        loop = asyncio.get_running_loop()
        self._file_pool.submit(self._read_chunks, loop, reader, effect)

    def _read_chunks(
        self, loop: asyncio.AbstractEventLoop, reader: SnapshotReader, effect: SendSnapshot
    ) -> None:
        """In the reader thread: the machine chunks ``effect`` asks for (the meta chunk, the
        last one, is ours alone), each handed to the loop to send as soon as it is read, so
        the first leaves while the rest of a window is still being read."""
        node_id, count = self.node.id, reader.chunk_count - 1
        for seq in range(effect.first_seq, min(count, effect.first_seq + effect.count)):
            try:
                chunk = SnapshotChunk(node_id, effect.slot, seq, count, reader.read_chunk(seq))
            except StorageError as error:
                log.error("node %d: cannot read the snapshot to send: %s", node_id, error)
                chunk = SnapshotChunk(node_id, effect.slot, seq, 0)  # "gone": asked afresh
            try:
                loop.call_soon_threadsafe(self._send_chunks, effect.to, [chunk])
            except RuntimeError:  # the loop closed: the node is stopping
                return
            if chunk.chunk_count == 0:
                return

    def _send_chunks(self, to: int, chunks: list[SnapshotChunk]) -> None:
        if self._stopping:
            return
        for chunk in chunks:
            try:
                self.sender.send(to, chunk)
            except (CodecError, UnknownPeer) as error:
                log.error(
                    "node %d: cannot send a snapshot chunk to %d: %r", self.node.id, to, error
                )
                return
            self.snapshot_chunks_sent += 1

    def close_snapshots(self) -> None:
        """At stop: end a running snapshot child, close the open snapshots and their thread."""
        child = self._snapshot_child
        if child is not None:
            self._snapshot_child = None
            with contextlib.suppress(RuntimeError):  # no loop any more: nothing to remove
                asyncio.get_running_loop().remove_reader(child.pidfd)
            os.close(child.pidfd)
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        for slot in list(self._open_snapshots):
            self._file_pool.submit(self._open_snapshots.pop(slot).close)
        self._file_pool.shutdown(wait=True)
        self.heap.wait()

    def _send(self, effects: list[Effect]) -> None:
        if self.node.membership.version != self._membership_version:
            self._membership_changed()  # a new member's address before the first send to it
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
            elif type(effect) is LocalReply:
                self._served += 1
                sink.on_local_reply(effect.request_id, effect.answer)
            elif isinstance(effect, Redirect):
                sink.on_redirect(effect.request_id, effect.leader_id)
            elif isinstance(effect, Busy):
                sink.on_busy(effect.request_id)
            elif isinstance(effect, MembershipRefused):
                sink.on_refused(effect)
        for listener in self.applied_listeners:
            listener()

    def _membership_changed(self) -> None:
        membership = self.node.membership
        self._membership_version = membership.version
        for listener in self.membership_listeners:
            listener(membership.state)

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

    def __init__(self, request_id: int, command: bytes | LocalQuery) -> None:
        self.request_id = request_id
        self.command = command


@final  # so that ``type(item) is _Change`` narrows the inbox item for mypy
class _Change:
    __slots__ = ("change", "request_id")

    def __init__(self, request_id: int, change: Change) -> None:
        self.request_id = request_id
        self.change = change


@final  # so that ``type(item) is _OwnVoteSynced`` narrows the inbox item for mypy
class _OwnVoteSynced:
    """Input: our own ``AcceptRecord(slot, ballot)`` is durable (``Node.synced``)."""

    __slots__ = ("ballot", "slot")

    def __init__(self, slot: int, ballot: Ballot) -> None:
        self.slot = slot
        self.ballot = ballot


@final  # so that ``type(item) is _SnapshotDone`` narrows the inbox item for mypy
class _SnapshotDone:
    """Input: the snapshot of ``slot`` at log ``index`` was written (``ok``) or not;
    ``adopted``: the storage knows it already (written in-process)."""

    __slots__ = ("adopted", "index", "ok", "slot")

    def __init__(self, slot: int, index: int, ok: bool, *, adopted: bool) -> None:
        self.slot = slot
        self.index = index
        self.ok = ok
        self.adopted = adopted


class _SnapshotChild:
    __slots__ = ("index", "pid", "pidfd", "slot", "started_s")

    def __init__(self, pid: int, pidfd: int, slot: int, index: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.slot = slot
        self.index = index
        self.started_s = time.monotonic()


def _snapshot_child(
    storage: FileStorage,
    index: int,
    replica: Replica,
    chunk_bytes: int,
    meta: bytes,
    parent_pid: int,
    pace: SnapshotPace,
) -> NoReturn:
    """In the forked child: write the snapshot file and exit, touching nothing else (no loop,
    no logging: locks another thread held at the fork may never be released here).

    It closes every descriptor it inherited but the standard ones: a copy of a socket would
    keep the connection open after the node closed it, and a copy of a data directory's lock
    (the node's, or another node's in the same process) would keep it locked.  It dies with its
    parent, so no orphan writes under a restarted node; a write it did not finish leaves only
    the temp file, removed at the next start.

    It keeps its parent's CPU priority and follows the duty cycle the parent sets in ``pace``
    (``runtime.snapshot_pace``): slow while nobody waits for it, full speed once the node's
    writes are about to."""
    code = 1
    try:
        enter_forked_child(parent_pid, lowest_priority=False)
        # The replica's chunks: the membership's first, when it is reconfigurable.
        chunks = paced(itertools.chain(replica.snapshot_chunks(chunk_bytes), (meta,)), pace)
        write_snapshot_file(storage.dir, index, chunks, fsync=storage.fsync == "always")
        code = 0
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.write(2, f"pypaxos snapshot child: {error!r}\n".encode())
    finally:
        os._exit(code)


def enter_forked_child(parent_pid: int, *, lowest_priority: bool = True) -> None:
    """What every forked writer (a snapshot, a backup) does first: die with its parent, close
    every inherited descriptor but the standard ones, take the lowest CPU priority unless told
    not to (a backup's writer: the node and its peers come first, and nothing waits for it
    but the operator; a snapshot's writer paces itself instead, as the node's writes may come
    to wait for it), restore the default SIGINT/SIGTERM, and stop the garbage collector
    (nothing a writer does makes cycles; a collection would copy every page it touches)."""
    _die_with_parent(parent_pid)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    if lowest_priority:
        lowest_cpu_priority()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.disable()


def lowest_cpu_priority() -> None:
    """Nice 19, whatever the parent's: ``os.nice(19)`` only adds 19, so the child of a node
    started at ``nice -15`` ran at nice 4, ahead of every ordinary process."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``);
    if it died already, exit now."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _remove_segments(node_id: int, paths: list[Path]) -> None:
    """In the file thread: delete compacted segments; a failure leaves garbage below the
    snapshot, which the next start deletes, so it is only logged."""
    try:
        remove_segments(paths)
    except OSError as error:
        log.error("node %d: cannot delete compacted log segments: %r", node_id, error)


class _NoClients:
    """The sink until a router attaches itself (a node with no client port drops answers)."""

    def on_reply(self, request_id: int, result: bytes) -> None:
        pass

    def on_local_reply(self, request_id: int, answer: object) -> None:
        pass

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        pass

    def on_busy(self, request_id: int) -> None:
        pass

    def on_refused(self, refusal: MembershipRefused) -> None:
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
