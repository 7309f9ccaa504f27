"""Messages between Multi-Paxos nodes (Paxos Made Simple, section 3).

Every message names its ``sender`` and is a frozen, tagged msgspec struct, ready for the wire
(tags are prefixed ``multi.`` so they never clash with the single-decree messages).

* ``Prepare(ballot, first_slot)``: phase 1a for *every* slot from ``first_slot`` on at once.
* ``Promise``: phase 1b; the acceptor's ``Vote`` s for slots ``>= first_slot``, its ``log_start``
  (slots below it were compacted into a snapshot: decided, no votes left to report; when the
  membership can change, the node's durable applied index if higher: decided and on its disk,
  to be learned from it rather than proposed again) and its
  ``commit_index`` (so a lagging new leader knows where to catch up).
* ``Accept(ballot, slot, value, commit_index)`` / ``Accepted(ballot, slot)``: phase 2 for one
  slot.  ``commit_index`` piggybacks the leader's decided prefix: an acceptor that accepted
  ``slot`` *in that same ballot* knows the value there is decided.
* ``Nack(ballot, promised)``: the request at ``ballot`` was refused; ``promised`` is higher.
* ``Heartbeat(ballot, commit_index, read_round)`` / ``HeartbeatAck``: failure detection, commit
  propagation, and the leader's confirmation rounds for read-index reads (``multi.reads``).
  The ack also reports the follower's ``durable_index``: every slot below it comes back from
  its own disk after a crash; a new configuration comes into force only once a majority of its
  voters reported one past the slots before it (``Node._durable_hold``).
* ``CatchUp(from_slot)``: "send me the decided values from ``from_slot``"; answered with
  ``Decided(first_slot, values, commit_index)`` (a run of consecutive decided slots, bounded in
  slots and bytes, and the sender's decided prefix, so the asker knows whether to ask again at
  once) or, when compacted, with the first chunks of the sender's durable snapshot.
* ``SnapshotChunk(slot, seq, chunk_count, data)``: chunk ``seq`` of ``chunk_count`` of the
  sender's snapshot at ``slot`` (``chunk_count=0``: that snapshot is gone, ask again).  The
  receiver pulls the rest with ``SnapshotRequest(slot, first_seq, count)``: it keeps
  ``snapshot_window_chunks`` chunks outstanding (one request per chunk taken), and after a
  silence re-asks from the first chunk it lacks, so a transfer resumes where it stopped.
* ``ReadIndexRequest(request_round)`` / ``ReadIndexReply(request_round, read_index)``: a
  follower asks the leader for a read index for the reads it holds (``multi.reads``, "Follower
  reads"); the leader answers after its own confirmation round.
* ``PreVoteRequest(request_round)`` / ``PreVoteReply(request_round, granted, promised)``: a node
  whose election timer fired asks the voters whether they too lost the leader before it runs
  phase 1 (``multi.election``, "Pre-vote"); the reply's ``promised`` is the voter's promised
  ballot, so the Prepare that may follow goes above it.  Neither touches an acceptor.
"""

from __future__ import annotations

import msgspec

from pypaxos.core.types import Ballot
from pypaxos.multi.log import Batch, Vote


class Prepare(msgspec.Struct, frozen=True, tag="multi.Prepare"):
    sender: int
    ballot: Ballot
    first_slot: int


class Promise(msgspec.Struct, frozen=True, tag="multi.Promise"):
    sender: int
    ballot: Ballot
    first_slot: int
    log_start: int
    commit_index: int
    votes: tuple[Vote, ...] = ()


class Accept(msgspec.Struct, frozen=True, tag="multi.Accept"):
    sender: int
    ballot: Ballot
    slot: int
    value: Batch
    commit_index: int


class Accepted(msgspec.Struct, frozen=True, tag="multi.Accepted"):
    sender: int
    ballot: Ballot
    slot: int


class Nack(msgspec.Struct, frozen=True, tag="multi.Nack"):
    sender: int
    ballot: Ballot
    promised: Ballot


class Heartbeat(msgspec.Struct, frozen=True, tag="multi.Heartbeat"):
    sender: int
    ballot: Ballot
    commit_index: int
    read_round: int = 0  # the leader's latest read-index confirmation round (``multi.reads``)


class HeartbeatAck(msgspec.Struct, frozen=True, tag="multi.HeartbeatAck"):
    sender: int
    ballot: Ballot
    commit_index: int
    read_round: int = 0  # the heartbeat's ``read_round``, echoed
    durable_index: int = 0  # the sender's prefix of slots on its own disk (``Node._durable_hold``)


class CatchUp(msgspec.Struct, frozen=True, tag="multi.CatchUp"):
    sender: int
    from_slot: int


class Decided(msgspec.Struct, frozen=True, tag="multi.Decided"):
    sender: int
    first_slot: int
    values: tuple[Batch, ...]
    commit_index: int = 0  # the sender's decided prefix (0: unknown, asks nothing more)


class SnapshotChunk(msgspec.Struct, frozen=True, tag="multi.SnapshotChunk"):
    sender: int
    slot: int
    seq: int
    chunk_count: int  # 0: the snapshot at ``slot`` is gone
    data: bytes = b""


class SnapshotRequest(msgspec.Struct, frozen=True, tag="multi.SnapshotRequest"):
    sender: int
    slot: int
    first_seq: int
    count: int


class ReadIndexRequest(msgspec.Struct, frozen=True, tag="multi.ReadIndexRequest"):
    sender: int
    request_round: int


class ReadIndexReply(msgspec.Struct, frozen=True, tag="multi.ReadIndexReply"):
    sender: int
    request_round: int
    read_index: int


class PreVoteRequest(msgspec.Struct, frozen=True, tag="multi.PreVoteRequest"):
    sender: int
    request_round: int


class PreVoteReply(msgspec.Struct, frozen=True, tag="multi.PreVoteReply"):
    sender: int
    request_round: int  # the request's, echoed
    granted: bool  # the voter heard from no live leader lately and is bound by no lease
    promised: Ballot


Message = (
    Prepare
    | Promise
    | Accept
    | Accepted
    | Nack
    | Heartbeat
    | HeartbeatAck
    | CatchUp
    | Decided
    | SnapshotChunk
    | SnapshotRequest
    | ReadIndexRequest
    | ReadIndexReply
    | PreVoteRequest
    | PreVoteReply
)
