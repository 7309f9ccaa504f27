"""Effects of a Multi-Paxos node and the records it persists; the durability contract.

A node returns a list of effects after every input.  It reuses ``pypaxos.core.effects.Send`` and
``Persist`` and adds client-facing ones.  Within one list, every ``Persist`` comes first (the
node sorts them there) and the contract is the core one, extended to client effects:

* ``Persist(record, sync=True)``: ``record`` must be on stable storage before any ``Send``,
  ``Reply`` or ``Redirect`` of the same list is carried out.  Records are small and meant to be
  *appended* to a write-ahead log, never to replace it:

  - ``PromiseRecord(ballot)``: the acceptor promised ``ballot``.  A ``Promise`` reply depends
    on it (Paxos Made Simple, P1a): forgetting it lets a lower ballot be accepted afterwards.
  - ``AcceptRecord(slot, ballot, value)``: the acceptor accepted ``value`` in ``slot`` at
    ``ballot``; an ``Accepted`` reply depends on it, and so do later promises, which report it.
    The latest record of a slot wins; the highest ballot in any record also counts as promised.
  - ``SnapshotRecord(slot, data)``: the state machine after applying every slot below ``slot``.
    No reply depends on it.  A storage layer may discard ``AcceptRecord`` s below ``slot`` only
    after this record is durable (a node that lost the snapshot must still have the accepts).

  ``Node.recover(records)`` rebuilds a node from the records in the order they were appended.
* ``PersistOwnVote(record)``: the leader's own ``AcceptRecord``.  Append it to the same log, in
  list order, but **no** ``Send``/``Reply``/``Redirect`` of the list depends on it: they may be
  carried out before it is durable.  Once it is, the shell calls ``Node.synced(slot, ballot)``;
  the leader counts its own vote only then (see ``node``: nothing a node sends or answers ever
  rests on a vote a crash could lose).  The other ``Persist`` s of a list still come first.
* ``Send(to, msg)``: best effort; the protocol survives loss, duplication and reordering.
* ``Reply(request_id, result)``: the command of ``request_id`` was chosen and applied here, at
  the node the client proposed it to; ``result`` is what the state machine returned.
* ``Redirect(request_id, leader_id)``: this node will not (or could not) get the command
  chosen; it was not executed by this proposal.  ``leader_id`` is a hint (``None``: unknown).
* ``Busy(request_id)``: the proposal queue is full; the command was dropped, retry later.
* ``Applied(slot, value)``: the node applied ``slot`` (for checkers and metrics).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi.log import Batch
from pypaxos.multi.messages import Message


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    result: bytes


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


class PromiseRecord(msgspec.Struct, frozen=True, tag="multi.PromiseRecord"):
    ballot: Ballot


class AcceptRecord(msgspec.Struct, frozen=True, tag="multi.AcceptRecord"):
    slot: int
    ballot: Ballot
    value: Batch


class SnapshotRecord(msgspec.Struct, frozen=True, tag="multi.SnapshotRecord"):
    slot: int
    data: bytes


Record = PromiseRecord | AcceptRecord | SnapshotRecord

Effect = Send[Message] | Persist[Record] | PersistOwnVote | Reply | Redirect | Busy | Applied


def persists_first(effects: list[Effect]) -> list[Effect]:
    """Move every ``Persist`` ahead of the other effects (stable): persisting early is safe."""
    persists: list[Effect] = [e for e in effects if isinstance(e, Persist | PersistOwnVote)]
    return persists + [e for e in effects if not isinstance(e, Persist | PersistOwnVote)]
