"""Effects of a Multi-Paxos node and the records it persists; the durability contract.

A node returns a list of effects after every input, every ``Persist`` first.  It reuses
``core.effects.Send`` and ``Persist`` and adds client-facing ones.  The contract, the core one
extended to client effects:

* ``Persist(record, sync=True)``: ``record`` is on stable storage before any ``Send``,
  ``Reply`` or ``Redirect`` of the same list is carried out.  Records are *appended* to a
  write-ahead log, never replace it: a ``Promise`` depends on its ``PromiseRecord`` (Paxos Made
  Simple, P1a), an ``Accepted`` and later promises on the ``AcceptRecord``; snapshots are not
  ``Persist`` effects: the shell writes them out of line (``TakeSnapshot``), and accepts below
  a snapshot may be discarded only once it is durable (``CompactLog``).
  ``Node.recover(records)`` rebuilds a node from them in append order.
* ``Persist(LearnedRecord)``: the values this node applied in the list, before the
  ``Applied`` effects are carried out; the shell's order (records synced first) makes them
  durable before anything applied from them leaves the node.
* ``PersistOwnVote(record)``: the leader's own ``AcceptRecord``, appended in list order, but
  nothing of the list depends on it; once durable the shell calls ``Node.synced(slot, ballot)``
  and only then does the leader count its vote.
* ``TakeSnapshot(slot)``: save the state machine as it is now, out of line (the node keeps
  serving); once it is durable call ``Node.snapshot_saved(slot)`` with the applied index the copy
  was taken at (``snapshot_failed()`` if it could not be written).  At most one is in flight.
* ``CompactLog(slot)``: durable records of slots below ``slot`` are covered by a durable snapshot
  and may be dropped; only ever emitted after ``snapshot_saved``.
* ``SendSnapshot(to, slot, first_seq, count)``: send chunks ``first_seq ..`` (at most
  ``count``) of the durable snapshot at ``slot`` to ``to`` as ``SnapshotChunk`` messages, or
  one ``SnapshotChunk`` with ``chunk_count=0`` if that snapshot is gone.
* ``Reply``: chosen and applied here (or a read answered, ``multi.reads``); ``LocalReply``: a
  ``LocalQuery`` read answered with the machine's own object, nothing encoded.  ``Redirect``:
  not executed by this proposal.  ``Busy``: dropped, queue full.  ``Send``: best effort.
  ``Applied``: for checkers and metrics.

More: docs/design.md, 'The durability contract'.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi.log import Batch
from pypaxos.multi.membership import MembershipRefused
from pypaxos.multi.messages import Message


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    result: bytes


@dataclass(frozen=True, slots=True)
class LocalReply:
    """The answer to a read made as a ``multi.reads.LocalQuery``: what its ``run`` returned."""

    request_id: int
    answer: object


@dataclass(frozen=True, slots=True)
class Redirect:
    request_id: int
    leader_id: int | None


@dataclass(frozen=True, slots=True)
class Busy:
    request_id: int


@dataclass(frozen=True, slots=True)
class Applied:
    slot: int
    value: Batch


@dataclass(frozen=True, slots=True)
class PersistOwnVote:
    """The leader's own ``AcceptRecord``: append it, but no effect of this list depends on it.

    The shell may carry out the list's ``Send``/``Reply`` before this record is durable, and
    must call ``Node.synced(record.slot, record.ballot)`` once it is; only then does the leader
    count its own vote (Raft thesis 10.2.1: the leader writes its log in parallel with
    replication and counts itself once its write is durable).
    """

    record: AcceptRecord


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Save the state machine as it is now, out of line (module docstring)."""

    slot: int  # the applied index when the node asked (the shell reports the one it took)


@dataclass(frozen=True, slots=True)
class CompactLog:
    """Durable records of slots below ``slot`` may be dropped: a durable snapshot covers them."""

    slot: int


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Send chunks of the durable snapshot at ``slot`` to ``to`` (module docstring)."""

    to: int
    slot: int
    first_seq: int
    count: int


class PromiseRecord(msgspec.Struct, frozen=True, tag="multi.PromiseRecord"):
    ballot: Ballot


class AcceptRecord(msgspec.Struct, frozen=True, tag="multi.AcceptRecord"):
    slot: int
    ballot: Ballot
    value: Batch


class SnapshotRecord(msgspec.Struct, frozen=True, tag="multi.SnapshotRecord"):
    """The state machine after applying every slot below ``slot``, as the machine's chunks
    (``StateMachine.snapshot_chunks``).  Empty ``chunks``: the shell loaded the machine itself
    (the runtime streams it from the snapshot file) and only the slot is recorded."""

    slot: int
    chunks: tuple[bytes, ...] = ()


class LearnedRecord(msgspec.Struct, frozen=True, tag="multi.LearnedRecord"):
    """Slots ``first_slot ..`` were applied here, decided with ``values``; a ``None`` value
    is the one this node's durable vote in that slot holds (no copy written).

    A node that learns a value without having voted for it (the follower a thrifty leader left
    out, a joiner catching up) would otherwise hold it nowhere durable: once the voters that
    accepted it are removed, a restart of the others loses the slot.  ``Node.recover`` replays
    these records into the replica's decided values (docs/design.md, 'What a node keeps
    durable')."""

    first_slot: int
    values: tuple[Batch | None, ...]


Record = PromiseRecord | AcceptRecord | SnapshotRecord | LearnedRecord

Effect = (
    Send[Message]
    | Persist[Record]
    | PersistOwnVote
    | Reply
    | LocalReply
    | Redirect
    | Busy
    | Applied
    | MembershipRefused
    | TakeSnapshot
    | CompactLog
    | SendSnapshot
)


_PERSISTS = (Persist, PersistOwnVote)


def persists_first(effects: list[Effect]) -> list[Effect]:
    """Move every ``Persist`` ahead of the other effects (stable): persisting early is safe."""
    for effect in effects:
        if isinstance(effect, _PERSISTS):
            break
    else:  # none (every heartbeat and acknowledgement): the list as it is
        return effects
    persists: list[Effect] = [e for e in effects if isinstance(e, _PERSISTS)]
    return persists + [e for e in effects if not isinstance(e, _PERSISTS)]
