"""Read-index reads: a linearizable read on the leader without a log entry or an fsync.

The Raft thesis (Ongaro 2014, section 6.4) answers a read-only query in four steps; this is
the same idea on our Multi-Paxos leader:

1. The leader notes its *read index*: every slot below it that could hold an acknowledged
   write.  That is its commit index, but never less than the *barrier*, the first slot after
   everything its phase 1 reported (``Node.read_barrier``; with membership changes some of it
   waits for a later phase 1 before it is re-proposed).  A quorum of promises reported
   every value ever chosen below it (P2c), so once the leader has applied up to the barrier its
   state holds every write acknowledged by an earlier leader.  (Raft gets the same from a no-op
   committed in the leader's own term; phase 1 tells a Paxos leader where that point is.)
2. It confirms it still leads: one round of ``Heartbeat`` s carrying a fresh ``read_round``,
   acknowledged by a majority at its ballot (itself included).  An acceptor acknowledges only a
   ballot at least as high as every one it promised, so no other leader finished phase 1
   before the read was asked, and no later write was acknowledged before it.  Reads asked while
   a round is out wait together for the next round (batching: one round per moment, not one
   per read); every periodic heartbeat carries the latest round too, so a lost ack costs one
   heartbeat interval, not the read.  With ``MultiConfig.thrifty_reads`` the leader sends a round
   started for reads only to the fewest peers that make a quorum with it, those that
   acknowledged the latest round soonest (``targets``): half the messages, wake-ups and steps
   per read in a cluster of three.  A round still unconfirmed a tick after it left goes to
   every peer (``widen_due``), as every periodic heartbeat does, so a target that died or
   slowed costs the reads about a tick once: the peer that answers first becomes the target.
3. It waits until it has applied up to the read index.
4. It runs the query on its state machine (``StateMachine.query``, which changes nothing) and
   answers.

No clock is assumed anywhere: a deposed leader never collects its round and its reads wait
until it steps down, when they are redirected like its queued writes.  (Leader leases,
``multi.lease``, off by default, skip step 2 on a stated clock assumption.)

Follower reads (``MultiConfig.follower_reads``; Raft thesis section 6.4, last paragraph): a
follower holding reads asks the leader for a read index with one ``ReadIndexRequest`` (reads
asked while one is out wait for the next: batched like the rounds), the leader runs its
confirmation round for it like for its own reads and answers ``ReadIndexReply(read_index)``,
and the follower answers once it has applied up to that index, from its own state.  The index
was valid when the leader confirmed it, after the request left, so after every read it covers
began; a reply to a later request covers the earlier ones too, and a lost one is asked again
every heartbeat interval (to whoever leads by then).

A read is either the encoded query the state machine's ``query`` takes (every read that
crossed the network: a forwarded read, a simulated client's) or a ``LocalQuery``, made by a
shell in the machine's own process: the node runs it on the machine as it is and answers the
machine's own object (``LocalReply``), so neither the query nor its answer is encoded and
decoded on the way (a pipelined ``GET`` is little more than a dictionary lookup, and the codec
was a tenth of its cost).  When and from what state a read is answered is the same either way.

This class only does bookkeeping; ``Node`` sends the heartbeats and runs the queries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pypaxos.core.quorum import QuorumSystem

if TYPE_CHECKING:
    from pypaxos.multi.replica import StateMachine


class LocalQuery(Protocol):
    """A read-only query for a state machine in the caller's own process (module docstring)."""

    def run(self, machine: StateMachine) -> object:
        """Answer from ``machine``'s current state, changing nothing (as ``query`` does)."""
        ...


@dataclass(frozen=True, slots=True)
class PendingRead:
    request_id: int  # a follower's ``request_round`` when ``origin`` is set
    command: bytes | LocalQuery
    read_index: int  # answer once every slot below is applied (-1: not known yet)
    origin: int | None = None  # leader: the follower that asked (answer it a read index)


class ReadIndex:
    __slots__ = (
        "ack_order",
        "acked",
        "acks_counted",
        "ask_round",
        "asked",
        "asked_tick",
        "id",
        "quorum",
        "ready",
        "remote_ready",
        "round",
        "rounds",
        "rounds_for_reads",
        "thrifty_tick",
        "unasked",
        "unsent",
    )

    def __init__(self, node_id: int, quorum: QuorumSystem) -> None:
        self.id = node_id
        self.quorum = quorum
        self.round = 0  # the latest confirmation round sent (grows for the node's lifetime)
        self.rounds_for_reads = 0  # rounds sent for waiting reads (not lease renewals alone)
        self.acked: dict[int, int] = {}  # peer -> highest round it acknowledged at our ballot
        # peer -> when (``acks_counted`` then) its ``acked`` last rose: who answers first
        self.ack_order: dict[int, int] = {}
        self.acks_counted = 0
        self.thrifty_tick: int | None = None  # when the last round left for targets only
        self.unsent: list[PendingRead] = []  # asked since the last round left
        self.rounds: deque[tuple[int, list[PendingRead]]] = deque()  # sent, not yet confirmed
        self.ready: deque[PendingRead] = deque()  # confirmed; in read-index order
        self.remote_ready: list[PendingRead] = []  # leader: followers' requests, confirmed
        # A follower's reads: not asked yet, and asked in ``ReadIndexRequest`` round ``n``.
        self.ask_round = 0
        self.unasked: list[PendingRead] = []
        self.asked: deque[tuple[int, list[PendingRead]]] = deque()
        self.asked_tick = 0  # when the last request left

    def __len__(self) -> int:
        held = len(self.unsent) + sum(len(r) for _, r in self.rounds) + len(self.ready)
        return held + len(self.unasked) + sum(len(r) for _, r in self.asked)

    def in_flight(self) -> bool:
        return bool(self.rounds)

    def start_round(self, always: bool = False) -> None:
        """The reads asked so far ride on the heartbeats about to leave (if any are waiting;
        ``always``: a new round even without reads, for a lease to be renewed by)."""
        if not self.unsent:
            if always:
                self.round += 1
            return
        self.round += 1
        self.rounds_for_reads += 1
        self.rounds.append((self.round, self.unsent))
        self.unsent = []
        self.confirm()  # a cluster of one is its own quorum

    def quorum_round(self) -> int:
        """The latest round a quorum (ourselves included) acknowledged (0: none)."""
        for read_round in sorted({self.round, *self.acked.values()}, reverse=True):
            voters = [self.id, *(p for p, r in self.acked.items() if r >= read_round)]
            if self.quorum.is_phase2_quorum(voters):
                return read_round
        return 0

    def on_ack(self, peer: int, read_round: int) -> None:
        if read_round > self.acked.get(peer, 0):
            self.acked[peer] = read_round
            self.acks_counted += 1
            self.ack_order[peer] = self.acks_counted
            self.confirm()

    def targets(self, audience: tuple[int, ...]) -> tuple[int, ...]:
        """Thrifty: the fewest of ``audience`` that make a phase-2 quorum with us, the peers
        that acknowledged the latest round first, then the others in ``audience``'s order;
        all of ``audience`` if even that is no quorum (module docstring, step 2)."""
        acked, order = self.acked, self.ack_order
        never = self.acks_counted + 1  # peers that never acknowledged: last
        ranked = sorted(audience, key=lambda p: (-acked.get(p, 0), order.get(p, never)))
        chosen: list[int] = [self.id]
        for peer in ranked:
            if self.quorum.is_phase2_quorum(chosen):
                return tuple(chosen[1:])
            chosen.append(peer)
        return audience

    def widen_due(self, now: int) -> bool:
        """Has a round that went to the targets only waited since an earlier tick?  Then the
        next heartbeat goes to every peer (module docstring, step 2)."""
        sent = self.thrifty_tick
        return sent is not None and now > sent and bool(self.rounds)

    def confirm(self) -> None:
        """Move every round a quorum acknowledged (and the rounds before it) to ``ready``."""
        rounds = self.rounds
        for read_round, _ in reversed(rounds):
            voters = [self.id, *(p for p, r in self.acked.items() if r >= read_round)]
            if self.quorum.is_phase2_quorum(voters):
                while rounds and rounds[0][0] <= read_round:
                    for read in rounds.popleft()[1]:
                        (self.ready if read.origin is None else self.remote_ready).append(read)
                return

    def take_ready(self, applied_index: int | None) -> list[PendingRead]:
        """The confirmed reads whose read index is applied (``None``: all confirmed reads)."""
        ready = self.ready
        taken: list[PendingRead] = []
        while ready and (applied_index is None or ready[0].read_index <= applied_index):
            taken.append(ready.popleft())
        return taken

    # -- a follower's reads -------------------------------------------------------------------

    def ask(self, now: int) -> int | None:
        """The request round to send now (a new one for the unasked reads, else the latest
        again), or ``None`` when no read waits for an index."""
        if self.unasked:
            self.ask_round += 1
            self.asked.append((self.ask_round, self.unasked))
            self.unasked = []
        if not self.asked:
            return None
        self.asked_tick = now
        return self.asked[-1][0]

    def on_read_index(self, request_round: int, read_index: int) -> None:
        """The leader's answer to ``request_round``: it covers that round and the ones before."""
        asked = self.asked
        while asked and asked[0][0] <= request_round:
            for read in asked.popleft()[1]:
                self.ready.append(PendingRead(read.request_id, read.command, read_index))

    def drain(self) -> list[PendingRead]:
        """Stop serving reads (a new role): the clients' reads not answered yet; forget the
        acknowledgements and the followers' requests (a follower asks again)."""
        drained = [*self.unsent, *(r for _, reads in self.rounds for r in reads), *self.ready]
        drained += [*self.unasked, *(r for _, reads in self.asked for r in reads)]
        self.unsent = []
        self.rounds.clear()
        self.ready.clear()
        self.remote_ready = []
        self.unasked = []
        self.asked.clear()
        self.acked = {}
        self.ack_order = {}
        self.thrifty_tick = None
        return [read for read in drained if read.origin is None]
