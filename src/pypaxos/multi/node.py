"""The Multi-Paxos node: one acceptor, one replica (learner) and one leader over a log of slots.

A node is a pure state machine driven by three inputs, each returning a list of effects:

* ``propose(request_id, command)``: a client command; only the leader takes it (others answer
  ``Redirect``), a full queue answers ``Busy``, and once the slot holding it is applied the node
  answers ``Reply``.
* ``read(request_id, command)``: a read-only query, answered by the leader from its own state
  machine once it is sure that state is current (read-index reads, ``reads``): no slot, no
  fsync; answers ``Redirect``, ``Busy`` and ``Reply`` like ``propose``.  With
  ``follower_reads`` a follower answers it too, from its own state, after asking the leader
  for a read index.  With leases (``MultiConfig.lease_ticks``, ``lease``) a leader holding one
  answers at once, without the heartbeat round.
* ``handle(msg)``: a message from a peer (see ``messages``).
* ``tick()``: one unit of time; heartbeats, election timeouts, step-down and catch-up retries
  are all counted in ticks (``election``).

The roles talk to each other by direct calls, never through the network: a candidate promises
its own ballot first, so the ``PromiseRecord`` is in the effect list before the ``Prepare`` (and
a restarted node can never reuse a ballot it used).  Every list returned puts its ``Persist``
effects first.

The leader's own vote is written in parallel with the followers' (the Raft thesis, section
10.2.1, does the same with the leader's log): ``_propose_slot`` returns the ``Accept`` sends
together with a ``PersistOwnVote`` record, which nothing in the list depends on, and the leader
counts its own acceptance only when the shell reports the record durable (``synced``).  Why this
is safe (Paxos Made Simple, section 2.2: a value is chosen once a majority of acceptors
*accepted* it, and an acceptor must remember what it accepted):

* The ``Accept`` itself depends on no vote, only on the ballot being ours for good: another
  node promised it, which it did only after our ``Prepare`` left, i.e. after our
  ``PromiseRecord`` was durable, so a restart never proposes again in this ballot and "one
  value per slot per ballot" holds (``_ballot_durable``; a ballot won on our own promise alone
  takes the old path, record before sends).
* A vote that a crash can still lose is not counted by anyone: a follower's ``Accepted`` leaves
  after its record is durable (unchanged), and our own vote counts only after ``synced``.  So
  a slot is chosen here only on a quorum of durable votes, and everything derived from "chosen"
  (the commit index in ``Accept`` / ``Heartbeat``, ``Decided``, ``Reply``) rests on durable
  votes only.  A leader that crashes before the sync loses a vote that was never cast; the slot
  is then decided by the next ballots as if our ``Accept`` had reached only the followers.
* The unsynced vote sits in the acceptor's memory meanwhile; it can leave the node only in a
  ``Promise``, whose ``PromiseRecord`` the shell syncs after (so with) every record appended
  before it: the append order of one log.

Decisions reach every node three ways: the leader piggybacks its commit index on every
``Accept`` and, if no ``Accept`` left since it advanced, sends it in a ``Heartbeat`` at the next
tick; an acceptor that accepted a slot in the leader's own ballot then knows the value there is
decided; anything else is fetched with
``CatchUp`` from the node that advertised the higher commit index, which answers with
``Decided`` values or, if it compacted them, by streaming its durable snapshot in chunks
(``SnapshotChunk``/``SnapshotRequest``, ``snapshots``); the asker loads one chunk per message
and swaps the whole in when the last arrives.  Snapshots are taken out of line: the node asks
with ``TakeSnapshot`` and the shell answers ``snapshot_saved`` (``replica``).  ``Node.recover``
rebuilds a node after a crash from its persisted records (see ``effects`` for the durability
contract).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import assert_never

from pypaxos.core.effects import Persist, Send
from pypaxos.core.proposer import RandomSource
from pypaxos.core.quorum import QuorumSystem
from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.multi.acceptor import SlotAcceptor
from pypaxos.multi.bugs import LogBug
from pypaxos.multi.config import MultiConfig
from pypaxos.multi.effects import (
    Applied,
    Busy,
    Effect,
    LearnedRecord,
    LocalReply,
    PersistOwnVote,
    Record,
    Redirect,
    Reply,
    SendSnapshot,
    SnapshotRecord,
    persists_first,
)
from pypaxos.multi.election import FailureDetector, PreVote
from pypaxos.multi.leader import Leader
from pypaxos.multi.lease import Lease
from pypaxos.multi.log import Batch, Entry, batch_size_bytes
from pypaxos.multi.membership import (
    ANY_NODE_ID,
    MEMBERSHIP_ORIGIN,
    Change,
    Configuration,
    Membership,
    MembershipChange,
    MembershipRefused,
    MembershipState,
    RefusalReason,
    change_entry,
    decode_change,
    next_configuration,
    promoted_by,
)
from pypaxos.multi.messages import (
    Accept,
    Accepted,
    CatchUp,
    Decided,
    Heartbeat,
    HeartbeatAck,
    Message,
    Nack,
    Prepare,
    PreVoteReply,
    PreVoteRequest,
    Promise,
    ReadIndexReply,
    ReadIndexRequest,
    SnapshotChunk,
    SnapshotRequest,
)
from pypaxos.multi.reads import LocalQuery, PendingRead, ReadIndex
from pypaxos.multi.replica import Replica, StateMachine
from pypaxos.multi.snapshots import IncomingSnapshot
from pypaxos.multi.validate import check_message

SNAPSHOT_RETRIES_MAX = 3
"""A snapshot transfer that stayed silent this many retry intervals in a row is dropped; the
next ``CatchUp`` starts a new one (perhaps from another peer, or of a newer snapshot)."""

THRIFTY_PROBE_HEARTBEATS = 10
"""A thrifty leader sends one slot in this many heartbeats' worth of ticks to every peer, not
only to its targets: if another peer now votes quicker than a target (a target that slowed
down but still answers), it completes that slot's quorum first and takes the target's place
(``Leader.on_accepted``).  One slot in 0.5 s at the runtime's timings."""


class Role(Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Status:
    node_id: int
    role: Role
    ballot: Ballot
    leader_id: int | None
    commit_index: int
    applied_index: int


class Node:
    __slots__ = (
        "acceptor",
        "audience",
        "bugs",
        "catch_up_asked",
        "catch_up_hint",
        "catch_up_next",
        "commit_seen",
        "commit_unannounced",
        "config",
        "detector",
        "follower_applied",
        "follower_durable",
        "highest_seen",
        "id",
        "incoming",
        "last_refusal",
        "leader",
        "leader_ballot",
        "leader_id",
        "lease",
        "lease_reads",
        "membership",
        "membership_seen",
        "peers",
        "pre_vote",
        "probe_next",
        "quorum",
        "read_barrier",
        "reads",
        "refused_messages",
        "replica",
        "role",
        "voters_seen",
    )

    def __init__(
        self,
        node_id: int,
        config: MultiConfig,
        rng: RandomSource,
        machine: StateMachine,
        acceptor: SlotAcceptor | None = None,
    ) -> None:
        if node_id not in config.node_ids + config.learner_ids and not config.reconfigurable:
            raise ValueError(f"node {node_id} is not in {config.node_ids}")
        self.id = node_id
        self.config = config
        self.commit_unannounced = False  # leader: followers have not been told the commit index
        self.bugs = config.bugs
        self.quorum: QuorumSystem = config.quorum()
        self.peers = config.peers_of(node_id)
        self.audience = self.peers  # who gets heartbeats: every member, learners too
        voters, learners = tuple(sorted(config.node_ids)), tuple(sorted(config.learner_ids))
        genesis = Configuration(0, voters, learners)
        self.membership = Membership(genesis, config.alpha_slots, config.bugs)
        self.membership_seen = (0, 0)  # (version, changes applied) the views were built from
        self.voters_seen: frozenset[tuple[int, ...]] = frozenset()  # quorums phase 1 covered
        self.follower_applied: dict[int, int] = {}  # leader: applied index each peer reported
        self.follower_durable: dict[int, int] = {}  # leader: durable index each peer reported
        if acceptor is None:
            acceptor = SlotAcceptor(node_id, config.log_window_slots, config.bugs)
        self.acceptor = acceptor
        self.replica = Replica(
            node_id,
            machine,
            config.snapshot_every_slots,
            config.catch_up_max_slots,
            config.log_window_slots,
            config.catch_up_max_bytes,
            config.snapshot_window_chunks,
            config.bugs,
            config.log_retained_bytes_max,
            self.membership if config.reconfigurable else None,  # fixed: snapshots as before
            config.apply_max_commands,
            config.snapshot_growth_percent,
            config.snapshot_lag_bytes_max,
            config.log_memory_bytes_max,
        )
        self.leader = Leader(node_id, config, self.quorum)
        self.detector = FailureDetector(config, rng)
        self.pre_vote = PreVote()
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self.leader_ballot: Ballot = NULL_BALLOT
        self.highest_seen: Ballot = acceptor.promised
        self.catch_up_hint: tuple[int, int] | None = None  # (commit index, node that has it)
        self.commit_seen = 0  # the highest commit index peers advertised (``commit_index_seen``)
        self.catch_up_next = 0
        self.catch_up_asked: int | None = None  # who the last CatchUp went to
        self.incoming: IncomingSnapshot | None = None  # a peer's snapshot being received
        # Peer messages a correct peer never sends (``multi.validate``'s impossible numbers, an
        # unasked or unreadable snapshot, a value contradicting a decided slot): ignored and
        # counted, for the shell to report.
        self.refused_messages = 0
        self.last_refusal = ""
        self.probe_next = 0  # thrifty: the tick from which the next slot goes to every peer
        self.reads = ReadIndex(node_id, self.quorum)
        # Leader: the first slot after everything phase 1 re-proposed; no read is answered from
        # a state that has not applied up to it (``reads``, step 1).
        self.read_barrier = 0
        self.lease = Lease(config.lease_ticks, config.lease_serve_ticks())
        self.lease_reads = 0  # reads answered under a lease, without a heartbeat round
        if config.reconfigurable:
            self.leader.slot_quorum = self.membership.quorum_at
            self._refresh_membership()

    @classmethod
    def recover(
        cls,
        node_id: int,
        config: MultiConfig,
        rng: RandomSource,
        machine: StateMachine,
        records: Iterable[Record],
        membership: MembershipState | None = None,
    ) -> Node:
        """Rebuild a node after a crash from its durable records, in append order: the
        acceptor from its promises and votes, the replica from its snapshot and then the slots
        its ``LearnedRecord``s say it applied (applied again, so the machine and the membership
        are where they were).  ``membership``: the one a snapshot the shell loaded itself
        carried (its records then hold no chunks), taken with that snapshot."""
        records = list(records)
        acceptor = SlotAcceptor.recover(node_id, config.log_window_slots, records, config.bugs)
        node = cls(node_id, config, rng, machine, acceptor)
        snapshots = [r for r in records if isinstance(r, SnapshotRecord)]
        if snapshots:
            node.replica.restore(max(snapshots, key=lambda r: r.slot))
        if membership is not None and config.reconfigurable:
            node.membership.restore(membership)
        node._replay_learned(r for r in records if isinstance(r, LearnedRecord))
        replica = node.replica
        replica.durable_index = replica.applied_index  # all of it came from the disk
        replica.written_from = replica.written_to = 0
        if config.reconfigurable:
            node._refresh_membership()
        return node

    def _replay_learned(self, records: Iterable[LearnedRecord]) -> None:
        """Apply again the values the records say this node applied after its snapshot (a
        ``None`` is the value of our durable vote there), so a restart keeps every value this
        node learned, voted for or not.  The effects are dropped: nothing of a past lifetime is
        answered again, and a snapshot it would ask for is asked at the next apply."""
        replica, accepted = self.replica, self.acceptor.accepted
        learned: dict[int, Batch] = {}
        for record in records:
            for offset, value in enumerate(record.values):
                slot = record.first_slot + offset
                vote = accepted.get(slot) if value is None else None
                if vote is not None:
                    learned[slot] = vote.value
                elif value is not None:
                    learned[slot] = value
                # else: cannot be (the vote was appended before the record); the slot stays
                # a gap, and the prefix replayed stops there
        for slot in sorted(learned):
            if slot >= replica.applied_index:
                replica.learn(slot, learned[slot], bounded=False)
        while replica.apply_pending:  # past the per-input bound (``apply_max_commands``)
            replica.new_input()
            replica.apply_more()
        replica.new_input()
        replica.snapshot_pending = False  # the TakeSnapshot replay asked for went nowhere

    # -- status -----------------------------------------------------------------------------

    @property
    def ballot(self) -> Ballot:
        return self.acceptor.promised if self.role is Role.FOLLOWER else self.leader.ballot

    @property
    def commit_index(self) -> int:
        """Every slot below is known decided (this node applies as soon as it knows)."""
        return self.replica.applied_index

    @property
    def applied_index(self) -> int:
        return self.replica.applied_index

    @property
    def commit_index_seen(self) -> int:
        """The highest commit index any peer advertised to us, or our own: how far the cluster
        is known to be, for health checks (how far behind this node's applies are)."""
        return max(self.commit_seen, self.replica.applied_index)

    def members(self) -> MembershipState:
        """The replicated membership as this node knows it (``multi.membership``)."""
        return self.membership.state

    @property
    def status(self) -> Status:
        return Status(
            self.id, self.role, self.ballot, self.leader_id, self.commit_index, self.applied_index
        )

    # -- inputs -----------------------------------------------------------------------------

    def propose(self, request_id: int, command: bytes) -> list[Effect]:
        if self.role is not Role.LEADER:
            hint = self.leader_id if self.role is Role.FOLLOWER else None
            return [Redirect(request_id, hint)]
        if request_id in self.replica.awaiting:
            return []  # already taken: the first copy will be answered
        if not self.leader.enqueue(Entry(self.id, request_id, command)):
            return [Busy(request_id)]
        self.replica.awaiting.add(request_id)
        return self._finish([], self.replica.applied_index)

    def propose_many(self, proposals: Iterable[tuple[int, bytes]]) -> list[Effect]:
        """``propose`` for several ``(request_id, command)`` at once, in order.

        The same answers as proposing them one by one, except that the window is filled once,
        after all of them are queued: the slots carry fuller batches, and the common tail of an
        input (``_finish``) runs once instead of once per command.  (So a command that one by
        one would have left the queue for a slot before the next arrived may now find the queue
        full and be answered ``Busy``.)
        """
        if self.role is not Role.LEADER:
            hint = self.leader_id if self.role is Role.FOLLOWER else None
            return [Redirect(request_id, hint) for request_id, _ in proposals]
        effects: list[Effect] = []
        awaiting = self.replica.awaiting
        enqueue = self.leader.enqueue
        for request_id, command in proposals:
            if request_id in awaiting:
                continue  # already taken: the first copy will be answered
            if not enqueue(Entry(self.id, request_id, command)):
                effects.append(Busy(request_id))
                continue
            awaiting.add(request_id)
        return self._finish(effects, self.replica.applied_index)

    def read(self, request_id: int, command: bytes | LocalQuery) -> list[Effect]:
        """A read-only ``command``, answered from this node's state machine (``reads``): an
        encoded query gets a ``Reply``, a ``LocalQuery`` a ``LocalReply``."""
        follower_read = (
            self.role is Role.FOLLOWER and self.config.follower_reads and self.leader_id is not None
        )
        if self.role is not Role.LEADER and not follower_read:
            hint = self.leader_id if self.role is Role.FOLLOWER else None
            return [Redirect(request_id, hint)]
        reads = self.reads
        if len(reads) >= self.config.queue_max_commands:
            return [Busy(request_id)]
        applied = self.replica.applied_index
        effects: list[Effect] = []
        if follower_read:
            reads.unasked.append(PendingRead(request_id, command, -1))
            if not reads.asked:  # else it waits for the next request (batching)
                effects = self._ask_read_index()
            return self._finish(effects, applied)
        read = PendingRead(request_id, command, max(applied, self.read_barrier))
        if self.bugs and LogBug.READ_INDEX_WITHOUT_CONFIRMATION in self.bugs:
            reads.ready.append(read)
        elif self._lease_holds():
            self.lease_reads += 1
            reads.ready.append(read)  # no round: no other leader can exist yet (``lease``)
        else:
            reads.unsent.append(read)
            if not reads.in_flight():  # else it waits for the next round (batching)
                effects = self._heartbeats(for_reads=True)
        return self._finish(effects, applied)

    def tick(self) -> list[Effect]:
        self.detector.tick()
        commit_before = self.replica.applied_index
        effects: list[Effect] = []
        if self.role is Role.LEADER:
            if self.detector.lost_quorum(self.quorum, self.id):
                effects = self._step_down(None)
            elif self.detector.heartbeat_due():
                effects = self._heartbeats() + self._retransmit()
            elif self.commit_unannounced or self.reads.widen_due(self.detector.now):
                # no Accept carried the commit since it moved, or a thrifty read round is
                # unanswered: a heartbeat to every peer
                effects = self._heartbeats()
        elif self.detector.election_due():
            if self.config.reconfigurable and not self.membership.is_voter(self.id):
                self.detector.reset_election()  # learners and removed nodes never campaign
            elif self._lease_binds():
                self.detector.defer_election(self.lease.bound_until)
            elif self.config.pre_vote:
                effects = self._start_pre_vote()
            else:
                effects = self._start_candidacy()
        elif self.reads.asked and self.detector.now - self.reads.asked_tick >= (
            self.config.heartbeat_ticks
        ):
            effects = self._ask_read_index()  # unanswered (lost, or the leader changed): again
        if self.incoming is not None:
            effects += self._snapshot_silence()
        return self._finish(effects, commit_before)

    def synced(self, slot: int, ballot: Ballot) -> list[Effect]:
        """The shell made our own ``AcceptRecord(slot, ballot)`` durable: count our vote now."""
        commit_before = self.replica.applied_index
        if self.role is not Role.LEADER or ballot != self.leader.ballot:
            return []  # a vote of an older ballot: durable, but no longer counted by anyone
        effects = self._on_accepted(Accepted(self.id, ballot, slot))
        return self._finish(effects, commit_before)

    def snapshot_saved(self, slot: int, size_bytes: int = 0) -> list[Effect]:
        """The shell's snapshot (asked by ``TakeSnapshot``) of every slot below ``slot`` is
        durable: the log below it may go (``CompactLog``).  ``size_bytes``: its size as stored
        (0: not known), what ``MultiConfig.snapshot_growth_percent`` scales the next by."""
        commit_before = self.replica.applied_index
        return self._finish(self.replica.snapshot_saved(slot, size_bytes), commit_before)

    def snapshot_size_known(self, size_bytes: int) -> None:
        """The durable snapshot this node recovered from is ``size_bytes`` as stored (the
        growth schedule's first interval after a restart)."""
        self.replica.snapshot_size_known(size_bytes)

    def snapshot_failed(self) -> list[Effect]:
        """The shell could not write the snapshot ``TakeSnapshot`` asked for."""
        return self.replica.snapshot_failed()

    def handle(self, msg: Message) -> list[Effect]:
        if msg.sender == self.id:
            return []
        members = ANY_NODE_ID if self.config.reconfigurable else self.config.node_ids
        refused = check_message(msg, members)
        if refused is not None:
            return self._refuse(refused)
        commit_before = self.replica.applied_index
        return self._finish(self._dispatch(msg), commit_before)

    def _dispatch(self, msg: Message) -> list[Effect]:
        match msg:  # the most frequent first: a class pattern is one isinstance test after another
            case Accept():
                return self._on_accept(msg)
            case Accepted():
                return self._on_accepted(msg)
            case Heartbeat():
                return self._on_heartbeat(msg)
            case HeartbeatAck():
                return self._on_heartbeat_ack(msg)
            case Prepare():
                return self._on_prepare(msg)
            case Promise():
                return self._on_promise(msg)
            case Nack():
                return self._on_nack(msg)
            case CatchUp():
                answer = self.replica.answer_catch_up(msg.sender, msg.from_slot)
                return [Send(msg.sender, m) if isinstance(m, Decided) else m for m in answer]
            case Decided():
                return self._on_decided(msg)
            case SnapshotChunk():
                return self._on_snapshot_chunk(msg)
            case SnapshotRequest():
                # Stateless: the receiver keeps the window; our shell reads the chunks.
                count = min(msg.count, self.config.snapshot_window_chunks)
                return [SendSnapshot(msg.sender, msg.slot, msg.first_seq, count)]
            case ReadIndexRequest():
                return self._on_read_index_request(msg)
            case PreVoteRequest():
                return self._on_pre_vote_request(msg)
            case PreVoteReply():
                return self._on_pre_vote_reply(msg)
            case ReadIndexReply():
                reads = self.reads
                reads.on_read_index(msg.request_round, msg.read_index)
                self._note_commit(msg.read_index, msg.sender)  # catch up to it if behind
                if reads.unasked and not reads.asked:  # the reads that waited: ask now
                    return self._ask_read_index()
                return []
            case _:
                assert_never(msg)

    @property
    def read_round_waiting(self) -> bool:
        """A read round sent to the thrifty targets only is unconfirmed: a tick soon sends it
        to every peer (``reads``, step 2), so a shell that lets ticks wait must not."""
        return self.reads.thrifty_tick is not None and bool(self.reads.rounds)

    @property
    def apply_pending(self) -> bool:
        """Decided slots wait to be applied (``MultiConfig.apply_max_commands`` cut a run):
        every input applies some more; a shell with no input for us calls ``apply_more``."""
        return self.replica.apply_pending

    @property
    def snapshot_lag_bytes(self) -> int:
        """Command bytes applied beyond the last durable snapshot.  Past
        ``MultiConfig.snapshot_lag_bytes_max`` the window stops counting from the applied index
        and new slots wait for the snapshot; a shell paces its snapshot writer by how close
        this is to that bound."""
        replica = self.replica
        return replica.applied_bytes - replica.snapshot_bytes

    @property
    def snapshot_lag_bound_bytes(self) -> int:
        """The backstop ``snapshot_lag_bytes`` is held to: ``snapshot_lag_bytes_max``, scaled
        with the state under ``MultiConfig.snapshot_growth_percent``
        (``Replica.snapshot_lag_bound_bytes``)."""
        return self.replica.snapshot_lag_bound_bytes()

    @property
    def snapshot_awaited(self) -> bool:
        """A peer waits for the next snapshot (it needs values let go from memory above the
        durable one, ``MultiConfig.log_memory_bytes_max``): a shell writes it at full speed."""
        replica = self.replica
        return replica.snapshot_slot <= replica.snapshot_wanted_slot

    @property
    def snapshot_asked_lag_bytes(self) -> int:
        """``snapshot_lag_bytes`` when the snapshot being written was asked for (0 when none
        is): what a shell's pace counts the room left from."""
        replica = self.replica
        if not replica.snapshot_pending:
            return 0
        return replica.requested_bytes - replica.snapshot_bytes

    def apply_more(self) -> list[Effect]:
        """Apply the next decided slots, up to the bound, and what follows from them."""
        return self._finish([], self.replica.applied_index)

    def _finish(self, effects: list[Effect], commit_before: int) -> list[Effect]:
        """Common tail of every input: apply what waits, compact, catch up, fill the window,
        announce commits."""
        if self.replica.apply_pending:
            effects += self.replica.apply_more()
        membership = self.membership
        if (membership.version, membership.changes_applied) != self.membership_seen:
            effects += self._membership_moved()
        leader = self.leader
        resume = leader.resume_slot is not None and self.role is Role.LEADER
        if resume and self.replica.applied_index >= leader.resume_applied:
            effects += self._start_candidacy()  # what phase 1 could not know is known now
        applied = self.replica.applied_index
        if self.replica.snapshot_slot > self.acceptor.log_start:
            self.acceptor.compact(self.replica.snapshot_slot)
        if self.snapshot_lag_bytes <= self.replica.snapshot_lag_bound_bytes():
            self.acceptor.window_floor = applied  # decided slots do not use up the window
        inflight = self.leader.inflight
        if inflight:
            for slot in [s for s in inflight if s < applied]:
                del inflight[slot]
        effects += self._maybe_catch_up()
        if self.reads.ready:
            effects += self._answer_reads()
        if self.role is Role.LEADER:
            if self.reads.remote_ready:
                effects += self._answer_read_indexes()
            if self.replica.applied_index > commit_before:
                # Followers learn it from the next Accept (it carries the commit index) or, if
                # none goes out before the next tick, from a heartbeat then: not a heartbeat per
                # commit, which under one client doubled the messages and the CPU per write.
                self.commit_unannounced = True
            if self.config.reconfigurable:
                effects += self._durable_hold()
            effects += self._fill_window()
        if self.replica.applied_index > commit_before:
            effects += self._learned_records(effects)
        bound_bytes = self.replica.log_memory_bytes_max
        if bound_bytes and self.replica.retained_bytes > bound_bytes:
            effects += self._forget_applied()  # after the records: they name our votes
        self.replica.new_input()
        return persists_first(effects)

    def _learned_records(self, effects: list[Effect]) -> list[Effect]:
        """The ``LearnedRecord`` of each run of slots applied in ``effects`` (``effects``).

        Slots where our vote holds the value carry ``None`` (no copy); a leader's run of only
        those is not written (its own votes are the record; nothing new would be durable)."""
        accepted = self.acceptor.accepted
        runs: list[tuple[int, list[Batch | None]]] = []
        for effect in effects:
            if type(effect) is not Applied:
                continue
            vote = accepted.get(effect.slot)
            value = None if vote is not None and vote.value == effect.value else effect.value
            if runs and runs[-1][0] + len(runs[-1][1]) == effect.slot:
                runs[-1][1].append(value)
            else:
                runs.append((effect.slot, [value]))
        leading = self.role is Role.LEADER
        records: list[Effect] = []
        for first, values in runs:
            if leading and all(v is None for v in values):
                continue
            records.append(Persist(LearnedRecord(first, tuple(values))))
            self.replica.note_durable(first, first + len(values))
        if LogBug.LEARNED_NOT_PERSISTED in self.bugs:
            return []  # as if written: the node goes on believing they are
        return records

    # -- election ---------------------------------------------------------------------------

    def _start_pre_vote(self) -> list[Effect]:
        """Our election timer fired: ask the voters whether they lost the leader too (``election``,
        "Pre-vote"); phase 1 starts only once a quorum of them says yes."""
        self.detector.reset_election()  # no quorum of yeses by then: a new round
        if self.config.reconfigurable:
            self._refresh_membership()  # the voters and quorum phase 1 would ask
        request_round = self.pre_vote.start(self.id)
        if self.quorum.is_phase1_quorum(self.pre_vote.grants):
            return self._start_candidacy()  # a cluster of one
        request = PreVoteRequest(self.id, request_round)
        return [Send(p, request) for p in self.peers]

    def _on_pre_vote_request(self, msg: PreVoteRequest) -> list[Effect]:
        """Yes unless a real ``Prepare`` from the sender would be ignored now (``_on_prepare``):
        we lead, or follow a leader heard lately, or a lease we acknowledged still runs.  Our
        state does not change either way: no promise, no timer reset."""
        defending = self.role is Role.LEADER or self.detector.sticky()
        refused = (defending or self._lease_binds()) and msg.sender != self.leader_id
        reply = PreVoteReply(self.id, msg.request_round, not refused, self.acceptor.promised)
        return [Send(msg.sender, reply)]

    def _on_pre_vote_reply(self, msg: PreVoteReply) -> list[Effect]:
        self._saw(msg.promised)  # our Prepare, if it comes to one, goes above it
        if self.role is Role.LEADER or not msg.granted:
            return []
        if not self.pre_vote.grant(msg.request_round, msg.sender):
            return []  # a reply to an older round, or the round was closed
        if not self.quorum.is_phase1_quorum(self.pre_vote.grants):
            return []
        return self._start_candidacy()

    def _start_candidacy(self) -> list[Effect]:
        bar = max(self.highest_seen, self.acceptor.promised, self.leader_ballot)
        ballot = bar.next_for(self.id)
        self.pre_vote.close()
        self.role = Role.CANDIDATE
        self.leader_id = None
        self.lease.reset()
        self.detector.reset_election()
        if self.config.reconfigurable:
            self._refresh_membership()  # phase 1 spans every configuration known from here on
            self.leader.quorum = self.quorum
        prepare = self.leader.prepare(ballot, self.replica.applied_index)
        persist, promise = self.acceptor.prepare(
            prepare, self.replica.applied_index, self._durable_floor()
        )
        assert persist is not None and isinstance(promise, Promise), "own promise refused"
        effects: list[Effect] = [persist, *(Send(p, prepare) for p in self.peers)]
        effects += [Redirect(read.request_id, None) for read in self.reads.drain()]
        if self.leader.on_promise(promise):
            effects += self._become_leader()
        return effects

    def _become_leader(self) -> list[Effect]:
        self.role = Role.LEADER
        self.pre_vote.close()  # a late quorum of promises for an earlier Prepare: no round left
        self.leader_id = self.id
        self.leader_ballot = self.leader.ballot
        self.detector.start_leading(list(self.leader.promises))
        self._schedule_probe()  # the promisers answered just now: no probe needed yet
        self._note_commit(*self.leader.most_advanced_promiser())
        effects: list[Effect] = []
        for slot, value in self.leader.take_over():
            effects += self._propose_slot(slot, value)
        self.read_barrier = max(self.leader.next_slot, self.leader.reported_frontier())
        return effects + self._heartbeats()

    def _step_down(self, hint: int | None) -> list[Effect]:
        self.role = Role.FOLLOWER
        self.lease.reset()
        self.leader_id = hint
        self.detector.reset_election()
        effects: list[Effect] = []
        for entry in self.leader.stop():
            self.replica.awaiting.discard(entry.request_id)
            effects.append(Redirect(entry.request_id, hint))
        effects += [Redirect(read.request_id, hint) for read in self.reads.drain()]
        return effects

    def _follow(self, sender: int, ballot: Ballot) -> list[Effect]:
        """``sender`` leads at ``ballot`` (not lower than anything we follow or promised)."""
        self._saw(ballot)
        effects = self._step_down(sender) if self.role is not Role.FOLLOWER else []
        self.leader_id = sender
        self.leader_ballot = ballot
        self.detector.leader_seen()
        self.pre_vote.close()
        return effects

    def _saw(self, ballot: Ballot) -> None:
        self.highest_seen = max(self.highest_seen, ballot)

    def _on_prepare(self, msg: Prepare) -> list[Effect]:
        defending = self.role is Role.LEADER or self.detector.sticky()
        if defending and msg.sender != self.leader_id:
            return []  # stickiness: as if the Prepare were lost (liveness only, see election)
        if self._lease_binds() and msg.sender != self.leader_id:
            return []  # a lease we acknowledged still runs (safety of lease reads, ``lease``)
        persist, reply = self.acceptor.prepare(
            msg, self.replica.applied_index, self._durable_floor()
        )
        self._saw(msg.ballot)
        effects: list[Effect] = [] if persist is None else [persist]
        if isinstance(reply, Promise):
            if self.role is not Role.FOLLOWER:
                effects += self._step_down(None)
            self.leader_id = None
            self.detector.leader_contact = None
            self.detector.reset_election()
            self.pre_vote.close()  # another candidate runs phase 1: no duel with it
        effects.append(Send(msg.sender, reply))
        return effects

    def _on_promise(self, msg: Promise) -> list[Effect]:
        self._note_commit(msg.commit_index, msg.sender)
        if self.role is not Role.CANDIDATE or not self.leader.on_promise(msg):
            return []
        return self._become_leader()

    def _on_nack(self, msg: Nack) -> list[Effect]:
        self._saw(msg.promised)
        if self.role is Role.FOLLOWER or msg.ballot != self.leader.ballot:
            return []
        if msg.promised <= self.leader.ballot:
            return []
        return self._step_down(None)

    def _on_heartbeat(self, msg: Heartbeat) -> list[Effect]:
        bar = max(self.acceptor.promised, self.leader_ballot)
        if msg.ballot < bar:
            return [Send(msg.sender, Nack(self.id, msg.ballot, bar))]
        effects = self._follow(msg.sender, msg.ballot)
        effects += self._learn_committed(msg.ballot, msg.commit_index, msg.sender)
        if self.config.leases:
            self.lease.acknowledged(self.detector.now)  # before the ack leaves (``lease``)
        replica = self.replica
        ack = HeartbeatAck(
            self.id, msg.ballot, replica.applied_index, msg.read_round, replica.durable_index
        )
        return [*effects, Send(msg.sender, ack)]

    def _on_heartbeat_ack(self, msg: HeartbeatAck) -> list[Effect]:
        effects: list[Effect] = []
        if self.role is Role.LEADER and msg.ballot == self.leader.ballot:
            self.detector.heard_from(msg.sender)
            self.follower_applied[msg.sender] = msg.commit_index
            self.follower_durable[msg.sender] = msg.durable_index
            reads = self.reads
            reads.on_ack(msg.sender, msg.read_round)
            if self.config.leases:
                self.lease.confirmed(reads.quorum_round())
            if reads.unsent and not reads.in_flight():  # the reads that waited: the next round
                effects = self._heartbeats(for_reads=True)
        self._note_commit(msg.commit_index, msg.sender)
        return effects

    def _ask_read_index(self) -> list[Effect]:
        """A follower asks the leader for a read index for the reads it holds (``reads``)."""
        request_round = self.reads.ask(self.detector.now)
        if request_round is None or self.leader_id is None:
            return []
        return [Send(self.leader_id, ReadIndexRequest(self.id, request_round))]

    def _on_read_index_request(self, msg: ReadIndexRequest) -> list[Effect]:
        """A follower's reads: a read index for them once our round confirms we lead."""
        if self.role is not Role.LEADER:
            return []  # it asks again, of whoever leads by then
        reads = self.reads
        index = max(self.replica.applied_index, self.read_barrier)
        read = PendingRead(msg.request_round, b"", index, origin=msg.sender)
        if LogBug.READ_INDEX_WITHOUT_CONFIRMATION in self.bugs or self._lease_holds():
            reads.remote_ready.append(read)
            return []
        reads.unsent.append(read)
        return [] if reads.in_flight() else self._heartbeats(for_reads=True)

    def _lease_holds(self) -> bool:
        """Leader: a majority acknowledged a round recent enough to serve on (``lease``)."""
        return self.config.leases and self.lease.holds(self.detector.now)

    def _lease_binds(self) -> bool:
        """We acknowledged a lease that still runs: no vote for another leader (``lease``)."""
        if not self.config.leases or LogBug.NEW_LEADER_INSIDE_LEASE in self.bugs:
            return False
        return self.lease.binds(self.detector.now)

    def _answer_read_indexes(self) -> list[Effect]:
        ready, self.reads.remote_ready = self.reads.remote_ready, []
        effects: list[Effect] = []
        for read in ready:
            assert read.origin is not None
            reply = ReadIndexReply(self.id, read.request_id, read.read_index)
            effects.append(Send(read.origin, reply))
        return effects

    def _answer_reads(self) -> list[Effect]:
        """Run the confirmed reads whose read index is applied (``reads``, steps 3 and 4)."""
        applied: int | None = self.replica.applied_index
        if self.bugs and LogBug.READ_BEFORE_APPLIED in self.bugs:
            applied = None
        machine = self.replica.machine
        answers: list[Effect] = []
        for read in self.reads.take_ready(applied):
            command = read.command
            if isinstance(command, bytes):
                answers.append(Reply(read.request_id, machine.query(command)))
            else:
                answers.append(LocalReply(read.request_id, command.run(machine)))
        return answers

    # -- the log ----------------------------------------------------------------------------

    def _fill_window(self) -> list[Effect]:
        effects: list[Effect] = []
        while plan := self.leader.next_batches(self.replica.applied_index):
            for slot, value in plan:
                effects += self._propose_slot(slot, value)
        state = self.membership.state
        if self.config.fill_to_pending_change and state.pending is not None:
            applied = self.replica.applied_index
            for slot, value in self.leader.fill_until(applied, state.pending_from):
                effects += self._propose_slot(slot, value)
        return effects

    def _propose_slot(self, slot: int, value: Batch) -> list[Effect]:
        self.leader.record(slot, value, self.detector.now)
        awaiting = self.replica.awaiting
        mine = [e.request_id for e in value if e.origin == self.id and e.request_id in awaiting]
        if self.config.reconfigurable:
            mine += self._own_changes(slot, value)
        effects: list[Effect] = []
        if LogBug.REPLY_BEFORE_CHOSEN in self.bugs:
            awaiting.difference_update(mine)
            effects += [Reply(r, b"") for r in mine]
        else:
            self.replica.track(slot, mine)
        self.commit_unannounced = False  # this Accept carries the commit index
        accept = Accept(self.id, self.leader.ballot, slot, value, self.replica.applied_index)
        persist, reply = self.acceptor.accept(accept)
        targets = self.peers
        if self.config.thrifty:
            now = self.detector.now
            if now < self.probe_next:
                targets = self.leader.targets
            else:  # a probe: whoever completes its quorum first becomes the target
                self._schedule_probe()
        effects += [Send(p, accept) for p in targets]
        if persist is not None and self._ballot_durable():
            # Send before our own record is durable; count our vote in ``synced``.
            effects.append(PersistOwnVote(persist.state))
            if LogBug.COUNT_OWN_VOTE_BEFORE_SYNC in self.bugs and isinstance(reply, Accepted):
                effects += self._on_accepted(reply)
            return effects
        if persist is not None:
            effects.append(persist)
        if isinstance(reply, Accepted):
            effects += self._on_accepted(reply)
        return effects

    def _schedule_probe(self) -> None:
        self.probe_next = self.detector.now + THRIFTY_PROBE_HEARTBEATS * self.config.heartbeat_ticks

    def _ballot_durable(self) -> bool:
        """Our ``PromiseRecord`` of the ballot is durable: another node promised it, so our
        ``Prepare`` left, so the record was synced (a restart can never reuse this ballot)."""
        return any(p != self.id for p in self.leader.promises)

    def _on_accept(self, msg: Accept) -> list[Effect]:
        persist, reply = self.acceptor.accept(msg)
        effects: list[Effect] = [] if persist is None else [persist]
        if isinstance(reply, Nack):
            return [*effects, Send(msg.sender, reply)]
        if msg.ballot >= self.leader_ballot:
            effects += self._follow(msg.sender, msg.ballot)
            effects += self._learn_committed(msg.ballot, msg.commit_index, msg.sender)
        if reply is not None:
            effects.append(Send(msg.sender, reply))
        return effects

    def _on_accepted(self, msg: Accepted) -> list[Effect]:
        if self.role is Role.LEADER and msg.ballot == self.leader.ballot:
            self.detector.heard_from(msg.sender)
        chosen = self.leader.on_accepted(msg)
        return [] if chosen is None else self.replica.learn(*chosen, bounded=False)

    def _learn_committed(self, ballot: Ballot, commit_index: int, sender: int) -> list[Effect]:
        """Slots below the leader's commit index that we accepted *in its ballot* are decided.

        The leader proposes one value per slot per ballot, and that value is the chosen one if
        the slot is chosen (P2b), so the vote's ballot must match; an older vote may hold a value
        that lost (which the planted bug ``commit-index-any-ballot`` applies anyway).
        """
        effects: list[Effect] = []
        start = self.replica.applied_index
        stop = min(commit_index, start + self.config.log_window_slots)
        accepted = self.acceptor.accepted
        if start not in accepted:
            # No vote for the next slot to apply: our later votes cannot move the applied
            # prefix now, so leave them to a later message instead of visiting them in every
            # Accept and Heartbeat while catch-up fills the gap (the decided prefix comes in
            # ``Decided`` answers anyway).
            slots: Iterable[int] = ()
        elif stop - start <= len(accepted):
            slots = range(start, stop)
        else:  # far behind (a restarted node): visit our few votes, not the whole window
            slots = sorted(s for s in accepted if start <= s < stop)
        # (an empty set first: a ``LogBug`` hashes in Python, on every heartbeat otherwise)
        any_ballot = bool(self.bugs) and LogBug.COMMIT_INDEX_ANY_BALLOT in self.bugs
        for slot in slots:
            vote = accepted.get(slot)
            if vote is not None and (vote.ballot == ballot or any_ballot):
                effects += self.replica.learn(slot, vote.value)
        self._note_commit(commit_index, sender)
        return effects

    def _heartbeats(self, for_reads: bool = False) -> list[Effect]:
        """A heartbeat to every peer, carrying a new confirmation round if reads wait for one;
        ``for_reads``: a round started for waiting reads, which ``thrifty_reads`` sends only
        to the peers it needs (``reads``, step 2; ``read_round_waiting`` then keeps its clock on
        time, so a round no target answers goes to every peer a tick later)."""
        self.commit_unannounced = False
        leases = self.config.leases
        self.reads.start_round(always=leases)
        if leases:  # every heartbeat renews the lease, measured from now (``lease``)
            self.lease.round_sent(self.reads.round, self.detector.now)
            self.lease.confirmed(self.reads.quorum_round())  # a cluster of one
        beat = Heartbeat(self.id, self.leader.ballot, self.replica.applied_index, self.reads.round)
        audience = self.audience
        if for_reads and self.config.thrifty_reads:
            audience = self.reads.targets(audience)
            self.reads.thrifty_tick = self.detector.now
        else:
            self.reads.thrifty_tick = None
        return [Send(p, beat) for p in audience]

    def _retransmit(self) -> list[Effect]:
        """Send again the ``Accept`` of each slot still in flight a heartbeat after it left.

        Only those: a slot proposed a moment ago is in flight at every heartbeat of a busy
        leader, and sending it again then (as this did before) added half as many ``Accept``
        frames again at saturation, each decoded and answered by the followers for nothing.
        """
        effects: list[Effect] = []
        commit = self.replica.applied_index
        now = self.detector.now
        due = now - self.config.heartbeat_ticks
        for slot, flight in sorted(self.leader.inflight.items()):
            if flight.sent_tick > due:
                continue
            flight.sent_tick = now
            accept = Accept(self.id, self.leader.ballot, slot, flight.value, commit)
            effects += [Send(p, accept) for p in self.peers if p not in flight.acks]
        return effects

    # -- catch-up ---------------------------------------------------------------------------

    def _refuse(self, reason: str) -> list[Effect]:
        """Ignore a peer message no correct peer sends; counted, with the last reason, for the
        shell to report."""
        self.refused_messages += 1
        self.last_refusal = reason
        return []

    def _on_snapshot_chunk(self, msg: SnapshotChunk) -> list[Effect]:
        """One chunk of a peer's snapshot: loaded in order, one chunk per message (bounded
        work); the window is kept full by asking for one more chunk per chunk taken."""
        incoming = self.incoming
        if msg.sender != self.catch_up_asked and (
            incoming is None or msg.sender != incoming.source
        ):
            return self._refuse(f"a snapshot chunk node {msg.sender} was not asked for")
        if msg.chunk_count == 0:  # gone (a newer one replaced it): start again, at once
            if incoming is not None and incoming.slot == msg.slot:
                self.incoming = None
            self.catch_up_next = self.detector.now
            return []
        if msg.seq >= msg.chunk_count:
            return self._refuse(f"node {msg.sender}'s chunk {msg.seq} of {msg.chunk_count}")
        if incoming is not None and incoming.slot <= self.replica.applied_index:
            self.incoming = incoming = None  # the log got us there: never swap an older state in
        if msg.slot <= self.replica.applied_index:
            return []  # stale: we are past it
        if incoming is None or msg.slot > incoming.slot or msg.sender != incoming.source:
            if incoming is not None and msg.slot <= incoming.slot:
                return []  # another peer's copy while ours is under way
            loader = self.replica.snapshot_loader()
            incoming = IncomingSnapshot(
                msg.sender, msg.slot, msg.chunk_count, loader, self.detector.now
            )
            self.incoming = incoming
        if msg.slot != incoming.slot or msg.seq != incoming.next_seq:
            return []  # a duplicate or out of order: the silence timer asks again
        if msg.chunk_count != incoming.chunk_count:
            self.incoming = None
            return self._refuse(f"node {msg.sender}'s snapshot changed its chunk count")
        try:
            incoming.loader.load(msg.data)
            incoming.next_seq += 1
            if incoming.complete:
                incoming.loader.finish()
        except ValueError:  # the machine could not read it (msgspec's errors are ValueErrors)
            self.incoming = None
            return self._refuse(f"node {msg.sender}'s snapshot does not restore")
        incoming.last_progress_tick = self.detector.now
        incoming.retries = 0
        if incoming.complete:
            self.incoming = None
            # Ask the same peer for the values after it at once (``_finish``).
            self.catch_up_next = self.detector.now
            self.catch_up_hint = (incoming.slot + 1, incoming.source)
            return self.replica.installed(incoming.slot)
        wanted = incoming.next_seq + self.config.snapshot_window_chunks - 1
        if wanted >= incoming.chunk_count:
            return []
        return [Send(incoming.source, SnapshotRequest(self.id, incoming.slot, wanted, 1))]

    def _snapshot_silence(self) -> list[Effect]:
        """A transfer that went quiet: ask again from the first chunk we lack (resume)."""
        incoming = self.incoming
        assert incoming is not None
        if incoming.slot <= self.replica.applied_index:
            self.incoming = None  # overtaken by the log
            return []
        if self.detector.now - incoming.last_progress_tick < self.config.catch_up_retry_ticks:
            return []
        incoming.retries += 1
        if incoming.retries > SNAPSHOT_RETRIES_MAX:
            self.incoming = None  # the source is gone: the next CatchUp starts afresh
            return []
        incoming.last_progress_tick = self.detector.now
        window = self.config.snapshot_window_chunks
        request = SnapshotRequest(self.id, incoming.slot, incoming.next_seq, window)
        return [Send(incoming.source, request)]

    def _on_decided(self, msg: Decided) -> list[Effect]:
        decided = self.replica.decided
        for offset, value in enumerate(msg.values):
            slot = msg.first_slot + offset
            known = decided.get(slot)
            if known is not None and known != value:  # Paxos chooses one value per slot
                return self._refuse(f"node {msg.sender} reports slot {slot} decided otherwise")
        applied_before = self.replica.applied_index
        effects: list[Effect] = []
        for offset, value in enumerate(msg.values):
            effects += self.replica.learn(msg.first_slot + offset, value)
        self._note_commit(msg.commit_index, msg.sender)
        if self.replica.applied_index > applied_before:
            # An answer that moved us forward: ask for the next run at once (``_finish``), not
            # after ``catch_up_retry_ticks``; the timer is only for answers that got lost.
            self.catch_up_next = self.detector.now
        return effects

    def _note_commit(self, commit_index: int, node: int) -> None:
        self.commit_seen = max(self.commit_seen, commit_index)
        if node == self.id or commit_index <= self.replica.applied_index:
            return
        if self.catch_up_hint is None or commit_index >= self.catch_up_hint[0]:
            self.catch_up_hint = (commit_index, node)

    def _maybe_catch_up(self) -> list[Effect]:
        hint = self.catch_up_hint
        if hint is None:
            return []
        if hint[0] <= self.replica.applied_index:
            self.catch_up_hint = None
            return []
        if self.detector.now < self.catch_up_next or self.incoming is not None:
            return []  # not yet, or a snapshot transfer is under way (it asks for itself)
        # Ask once, then forget the hint: the next message that advertises a higher commit index
        # sets a fresh one, so a node that crashed (or lost its lead) is not asked forever.
        self.catch_up_next = self.detector.now + self.config.catch_up_retry_ticks
        self.catch_up_hint = None
        self.catch_up_asked = hint[1]
        return [Send(hint[1], CatchUp(self.id, self.replica.applied_index))]

    # -- membership (``multi.membership``) ---------------------------------------------------

    def propose_membership_change(self, request_id: int, change: Change) -> list[Effect]:
        """Propose ``change`` to the membership: once the slot holding it is applied, ``Reply``
        with the new configuration (msgpack, ``membership.decode_configuration``); it governs
        from ``alpha_slots`` slots after its own.  Refused at once (``MembershipRefused``) when
        this node does not lead, another change is not yet in force, or the change is invalid."""

        def refuse(reason: RefusalReason, detail: str) -> list[Effect]:
            hint = self.leader_id if self.role is Role.FOLLOWER else None
            return [MembershipRefused(request_id, reason, detail, hint)]

        if not self.config.reconfigurable:
            return refuse(RefusalReason.NOT_LEADER, "this cluster's membership is fixed")
        if self.role is not Role.LEADER:
            return refuse(RefusalReason.NOT_LEADER, "not the leader")
        applied = self.replica.applied_index
        in_flight = self.leader.change_in_flight() or self.membership.change_pending(applied)
        if in_flight and LogBug.TWO_CHANGES_IN_FLIGHT not in self.bugs:
            return refuse(RefusalReason.CHANGE_IN_FLIGHT, "a membership change is not in force")
        if request_id in self.replica.awaiting:
            return []  # already taken: the first copy will be answered
        latest = self.membership.state.latest
        if LogBug.TWO_CHANGES_IN_FLIGHT in self.bugs:
            latest = self._latest_proposed(latest)
        config = next_configuration(latest, change)
        if isinstance(config, MembershipRefused):
            return refuse(config.reason, config.detail)
        promoted = promoted_by(change)
        if promoted is not None and LogBug.PROMOTE_BEFORE_CAUGHT_UP not in self.bugs:
            behind = applied - self.follower_applied.get(promoted, -1)
            if behind > self.config.promote_lag_max_slots:
                detail = f"learner {promoted} is {behind} slots behind (or never answered)"
                return refuse(RefusalReason.LEARNER_BEHIND, detail)
        entry = change_entry(request_id, MembershipChange(self.id, config))
        if not self.leader.enqueue(entry):
            return refuse(RefusalReason.BUSY, "the proposal queue is full")
        self.replica.awaiting.add(request_id)
        return self._finish([], applied)

    def _durable_floor(self) -> int:
        """What a promise reports as its ``log_start`` floor: our durable prefix of decided
        slots when the membership can change (``SlotAcceptor.prepare``), so that a leader
        whose own prefix is shorter learns those slots instead of filling them anew; a
        quorum of a configuration whose voters hold nothing older (the voters that did were
        removed) then still finds them (``_durable_hold``)."""
        return self.replica.durable_index if self.config.reconfigurable else 0

    def _durable_hold(self) -> list[Effect]:
        """Leader: propose nothing in the first slot of the latest configuration until a
        majority of its voters has every slot before it on its own disk (their reported
        ``durable_index``, ours counted too).

        The slots before a configuration are governed by older ones, whose voters may be
        removed by it and never start again; from then on they survive only where nodes wrote
        what they applied (``LearnedRecord``).  With this wait, any slot the configuration
        governs is decided only once a majority of its voters hold the ones before it, so
        every quorum of it (and, a change at a time, of the next one) meets a voter that does,
        and that voter's promise keeps them from being filled anew (``_durable_floor``).  Raft
        gets the same from its log matching (a follower that accepted an entry holds the ones
        before it: Ongaro's thesis, sections 3.5 and 4.1); Paxos slots are independent, hence
        the wait.  A leader's own votes get no ``LearnedRecord``, so it writes one for its
        applied prefix when the wait counts on it.  Every change waits, not only removals:
        one rule for every configuration, at the price of a heartbeat round."""
        leader, replica = self.leader, self.replica
        first = self.membership.state.pending_from
        done = first <= leader.hold_cleared or replica.applied_index > first
        if done or LogBug.REMOVAL_BEFORE_DURABLE in self.bugs:
            leader.hold_slot = None
            return []
        effects: list[Effect] = []
        if replica.durable_index < first <= replica.applied_index:
            effects += self._record_applied_prefix()
        durable = self.follower_durable
        voters = self.membership.state.config_at(first).voters
        holding = [
            v
            for v in voters
            if (replica.durable_index if v == self.id else durable.get(v, 0)) >= first
        ]
        if self.membership.quorum_at(first).is_phase2_quorum(holding):
            leader.hold_cleared = first
            leader.hold_slot = None
        else:
            leader.hold_slot = first
        return effects

    def _forget_applied(self) -> list[Effect]:
        """Over ``MultiConfig.log_memory_bytes_max``: let applied values go from memory, the
        replica's copy and our acceptor's votes alike (they share the values), but only those
        this node holds on its own disk (``durable_index``), so a promise that reports them as
        decided (``SlotAcceptor.forget_chosen``) still holds after a crash.  A leader's own
        votes get no ``LearnedRecord``; it writes one for its applied prefix first (once per
        quarter of the bound)."""
        replica = self.replica
        effects: list[Effect] = []
        if replica.durable_index < replica.applied_index:
            effects += self._record_applied_prefix()
        replica.forget_applied(replica.durable_index)
        floor = min(replica.retained_from, replica.applied_index, replica.durable_index)
        if floor > replica.snapshot_slot:
            self.acceptor.forget_chosen(floor)
        return effects

    def _record_applied_prefix(self) -> list[Effect]:
        """``LearnedRecord``s of the slots we applied past our durable prefix (``None`` where
        our own vote holds the value), for a leader whose own votes were not recorded; a new
        record past ``catch_up_max_bytes`` of copied commands, so each stays far below a log
        record's bound.  Nothing when some of them came with a peer's snapshot not saved yet
        (its save moves the prefix)."""
        replica = self.replica
        start, stop = replica.durable_index, replica.applied_index
        if start < replica.retained_from:
            return []
        accepted = self.acceptor.accepted
        runs: list[tuple[int, list[Batch | None]]] = [(start, [])]
        size_bytes = 0
        for slot in range(start, stop):
            value = replica.decided.get(slot)
            if value is None:
                return []
            vote = accepted.get(slot)
            if vote is not None and vote.value == value:
                runs[-1][1].append(None)
                continue
            size_bytes += batch_size_bytes(value)
            if size_bytes > self.config.catch_up_max_bytes and runs[-1][1]:
                runs.append((slot, []))
                size_bytes = batch_size_bytes(value)
            runs[-1][1].append(value)
        replica.note_durable(start, stop)
        if LogBug.LEARNED_NOT_PERSISTED in self.bugs:
            return []  # as if written
        return [Persist(LearnedRecord(first, tuple(values))) for first, values in runs]

    def _latest_proposed(self, latest: Configuration) -> Configuration:
        """The planted bug ``two-changes-in-flight``: build on a change not yet decided."""
        values = [f.value for f in self.leader.inflight.values()] + [(*self.leader.queue,)]
        for value in values:
            for entry in value:
                change = decode_change(entry.command) if entry.origin < 0 else None
                if change is not None and change.config.epoch > latest.epoch:
                    latest = change.config
        return latest

    def _own_changes(self, slot: int, value: Batch) -> list[int]:
        """Request ids of our own changes in ``value`` (answered when the slot applies)."""
        mine: list[int] = []
        for entry in value:
            if entry.origin != MEMBERSHIP_ORIGIN or entry.request_id not in self.replica.awaiting:
                continue
            change = decode_change(entry.command)
            if change is None or change.proposer != self.id:
                continue
            mine.append(entry.request_id)
            if LogBug.CONFIG_BEFORE_CHOSEN in self.bugs:
                self.membership.adopt_early(slot, change.config)
                self._refresh_membership()
        return mine

    def _refresh_membership(self) -> None:
        """Rebuild the views of the membership: peers, heartbeat audience, quorums."""
        membership = self.membership
        self.membership_seen = (membership.version, membership.changes_applied)
        configs = membership.state.governing_from(self.replica.applied_index)
        self.voters_seen = frozenset(c.voters for c in configs)
        start = self.replica.applied_index
        self.peers = tuple(p for p in membership.voters_from(start) if p != self.id)
        self.audience = tuple(p for p in membership.members_from(start) if p != self.id)
        self.quorum = membership.phase1_quorum(start)
        self.reads.quorum = self.quorum
        if self.role is not Role.CANDIDATE:  # a candidate keeps the quorum its Prepare asked
            self.leader.quorum = self.quorum

    def _membership_moved(self) -> list[Effect]:
        """A change was applied (or a snapshot brought another membership): new views; a leader
        runs phase 1 again in a higher ballot before it proposes where the change may govern
        (``Leader.take_over`` stopped its re-proposals there), and a leader or candidate that
        is no longer a voter steps down, so another takes over (its heartbeats stop)."""
        covered = self.voters_seen
        self._refresh_membership()
        if self.role is Role.FOLLOWER:
            return []
        if not self.membership.is_voter(self.id):
            return self._step_down(None)
        if not self.voters_seen <= covered:  # a configuration whose majority never promised
            return self._start_candidacy()
        return []
