"""Configuration of a Multi-Paxos cluster: membership, tick lengths and every bound.

All durations are in ticks (``Node.tick()`` calls); all sizes carry their unit in the name.
The checks in ``__post_init__`` encode the relations the protocol relies on:

* ``leader_stickiness_ticks < election_timeout_min_ticks``: a follower stops defending its
  leader before it would itself time out, so a dead leader is always replaced;
* ``log_window_slots >= window_slots + snapshot_every_slots``: an acceptor keeps room for every
  slot a leader may have in flight above its last snapshot, so correct runs never hit the bound.

``thrifty``: the leader sends each ``Accept`` only to the fewest peers that make a phase-2
quorum with it, not to every peer (``multi.leader``, "Thrifty").  Off here, so the simulator and
the model checker keep exploring the classic protocol unless a run asks for it; on by default in
the runtime (``runtime.config``).

``thrifty_reads``: a read-index confirmation round started for reads goes only to the fewest
peers that make a quorum with the leader, those that acknowledged the latest round first
(``multi.reads``, step 2); periodic heartbeats still go to every peer.  Off by default here
and in the runtime (``thrifty_reads`` in ``runtime.config``): it halves a read's messages and
the followers' work in a cluster of three, but a read then waits for its one target instead
of the quicker of two.

``pre_vote``: a node whose election timer fires runs phase 1 only after a quorum of voters
said they too lost the leader (``multi.election``, "Pre-vote"), so a node back from a
partition does not depose a healthy leader.  On by default; the golden log scripts and the
model checker switch it off to keep exploring the classic election.

Membership (``multi.membership``): ``node_ids`` are the voters and ``learner_ids`` the learners
of the genesis configuration (epoch 0), the same on every node.  With ``reconfigurable`` the
membership can change through the log (``Node.propose_membership_change``) and peer messages
are checked against an id range instead of the genesis members (a node cannot know members
added after its applied index); a node may then also start outside the genesis configuration,
waiting to be added.  ``promote_lag_max_slots``: how far behind the leader's applied index a
learner may be and still be promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pypaxos.core.bugs import require_family
from pypaxos.core.quorum import Majority
from pypaxos.multi.bugs import LogBug

# Above this a node would keep more log than state between snapshots (its memory and its
# restart's replay both grow with the interval).
SNAPSHOT_GROWTH_PERCENT_MAX = 100


@dataclass(frozen=True)
class MultiConfig:
    node_ids: tuple[int, ...] = (1, 2, 3)
    heartbeat_ticks: int = 3
    election_timeout_min_ticks: int = 15
    election_timeout_max_ticks: int = 30
    leader_stickiness_ticks: int = 10
    step_down_ticks: int = 20
    window_slots: int = 8
    batch_max_commands: int = 32
    batch_max_bytes: int = 64 * 1024
    queue_max_commands: int = 256
    snapshot_every_slots: int = 64
    # The decided log kept in memory stays within about this many bytes of commands: a snapshot
    # also once half of it was applied since the last one, and the interval kept before that
    # snapshot (catch-up from the log) cut to the other half (``multi.replica``).
    log_retained_bytes_max: int = 16 * 1024 * 1024
    # The decided log's own memory bound, 0 off (``Replica.forget_applied``): past it, applied
    # values this node holds on disk are let go from memory oldest first, above the durable
    # snapshot too (the replica's copy and the acceptor's votes), and a peer that needs them
    # is sent a snapshot taken for it.  The snapshot interval then no longer sets the memory.
    log_memory_bytes_max: int = 0
    log_window_slots: int = 256
    # How many bytes of commands a node may apply beyond its last durable snapshot and still
    # accept new slots: the acceptor's window is counted from the applied index while the
    # snapshot is being written (a large state takes long to write), not from the snapshot,
    # up to this backstop; past it, new slots wait for the snapshot (``multi.acceptor``).
    snapshot_lag_bytes_max: int = 64 * 1024 * 1024
    # The growth schedule (``Replica.snapshot_interval_bytes``), 0 off: a snapshot is due once
    # the commands applied since the last one reach this percentage of its size (at least half
    # of ``log_retained_bytes_max``; ``snapshot_every_slots`` stretched alike), and the
    # backstop above is at least twice that interval.  A snapshot copies the whole state, so
    # a fixed interval costs per write in proportion to the state; this one does not.
    snapshot_growth_percent: int = 0
    catch_up_max_slots: int = 64
    catch_up_max_bytes: int = 1024 * 1024
    catch_up_retry_ticks: int = 5
    # At most about this many commands applied per input (whole slots, one at least; 0: no
    # bound): the rest of a long run of decided slots is applied by the next inputs
    # (``Node.apply_pending``), so no single step of a node is a whole window of commands.
    apply_max_commands: int = 0
    # Snapshot transfer: chunks a receiver keeps outstanding, and the size a shell cuts a
    # machine's snapshot into (``StateMachine.snapshot_chunks``; one entry may exceed it).
    snapshot_window_chunks: int = 4
    snapshot_chunk_bytes_max: int = 1024 * 1024
    thrifty: bool = False
    thrifty_reads: bool = False  # a read's confirmation round to a quorum's worth of peers only
    pre_vote: bool = True  # ask the voters before a ballot is raised (``multi.election``)
    follower_reads: bool = False  # followers answer reads too, after asking for a read index
    # Leader leases (``multi.lease``): 0 is off.  A follower that acknowledges a heartbeat votes
    # for no other leader for ``lease_ticks``; the leader serves reads for ``lease_serve_ticks``
    # after the round left.  ``clock_drift_ppm``: how much faster one node's ticks may run than
    # another's, in millionths (the stated assumption the lease is shortened for).
    # ``lease_clock_lag_ticks``: how many ticks a follower's clock may step right after it
    # acknowledged a heartbeat (a shell that steps a batch's messages before the ticks due, as
    # the runtime's driver does, lets its clock lag that much at the acknowledgement and then
    # catch up): its promise is that much shorter in real time, so the leader serves that
    # much less.
    lease_ticks: int = 0
    clock_drift_ppm: int = 0
    lease_clock_lag_ticks: int = 0
    learner_ids: tuple[int, ...] = ()
    reconfigurable: bool = False
    promote_lag_max_slots: int = 16
    # A leader with nothing queued proposes empty batches up to a decided change's first slot,
    # so the change comes into force on an idle log too (the runtime's choice; off for the
    # simulator and the model checker, whose runs always have commands).
    fill_to_pending_change: bool = False
    bugs: frozenset[LogBug] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.node_ids or len(set(self.node_ids)) != len(self.node_ids):
            raise ValueError("node_ids must be non-empty and distinct")
        if min(self.node_ids + self.learner_ids) < 0:
            raise ValueError("node ids must be >= 0 (they go into ballots)")
        if set(self.node_ids) & set(self.learner_ids) or len(set(self.learner_ids)) != len(
            self.learner_ids
        ):
            raise ValueError("learner_ids must be distinct and not voters")
        if self.learner_ids and not self.reconfigurable:
            raise ValueError("learner_ids need reconfigurable = True")
        if self.promote_lag_max_slots < 0:
            raise ValueError("promote_lag_max_slots must be >= 0")
        if not 1 <= self.election_timeout_min_ticks <= self.election_timeout_max_ticks:
            raise ValueError("need 1 <= election_timeout_min_ticks <= election_timeout_max_ticks")
        if self.leader_stickiness_ticks >= self.election_timeout_min_ticks:
            raise ValueError("leader_stickiness_ticks must be below election_timeout_min_ticks")
        positive = (
            self.heartbeat_ticks,
            self.step_down_ticks,
            self.window_slots,
            self.batch_max_commands,
            self.batch_max_bytes,
            self.queue_max_commands,
            self.snapshot_every_slots,
            self.log_retained_bytes_max,
            self.snapshot_lag_bytes_max,
            self.catch_up_max_slots,
            self.catch_up_max_bytes,
            self.catch_up_retry_ticks,
            self.snapshot_window_chunks,
            self.snapshot_chunk_bytes_max,
        )
        if min(positive) < 1:
            raise ValueError("tick lengths, windows, batches, queues must all be >= 1")
        if self.log_window_slots < self.window_slots + self.snapshot_every_slots:
            raise ValueError("log_window_slots must be >= window_slots + snapshot_every_slots")
        if not 0 <= self.snapshot_growth_percent <= SNAPSHOT_GROWTH_PERCENT_MAX:
            raise ValueError(
                f"snapshot_growth_percent must be in [0, {SNAPSHOT_GROWTH_PERCENT_MAX}] (0: off)"
            )
        if self.log_memory_bytes_max < 0:
            raise ValueError("log_memory_bytes_max must be >= 0 (0: off)")
        if self.apply_max_commands < 0:
            raise ValueError("apply_max_commands must be >= 0 (0: no bound)")
        if self.lease_ticks < 0 or self.clock_drift_ppm < 0 or self.lease_clock_lag_ticks < 0:
            raise ValueError("lease_ticks, clock_drift_ppm, lease_clock_lag_ticks must be >= 0")
        if self.lease_ticks and self.lease_serve_ticks() < 1:
            raise ValueError("lease_ticks too short for the drift bound: it would never serve")
        require_family(self.bugs, LogBug)

    @property
    def leases(self) -> bool:
        return self.lease_ticks > 0

    def lease_serve_ticks(self) -> int:
        """How long after a round left the leader may serve on it (``multi.lease``): one tick
        of granularity and the followers' clock lag off, then shortened for the drift bound."""
        bound = self.lease_ticks - 1 - self.lease_clock_lag_ticks
        if LogBug.LEASE_IGNORES_DRIFT in self.bugs:
            return bound
        return bound * 1_000_000 // (1_000_000 + self.clock_drift_ppm)

    @property
    def alpha_slots(self) -> int:
        """How many slots after its own a change takes effect (``multi.membership``): the
        leader's window, so a leader knows the configuration of every slot it has in flight."""
        return self.window_slots

    def quorum(self) -> Majority:
        return Majority(self.node_ids)

    def peers_of(self, node_id: int) -> tuple[int, ...]:
        return tuple(sorted(n for n in self.node_ids if n != node_id))
