"""Checks on a peer's message before it reaches a ``Node``: ids, ballots and slots in bounds.

A message that decoded is well typed, but its numbers may still be impossible: a ballot round
near the limit of what the log can encode (one ``next_for`` later it could not be persisted,
and a node that cannot persist its promise cannot start), a slot no log will reach, a ballot
owned by a node that is not a member.  ``Node.handle`` calls ``check_message`` first and
ignores what it refuses (counted, with the reason, for the shell's log), as it ignores what
depends on its own state (an unasked snapshot, a value contradicting a decided slot).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final

from pypaxos.core.types import NULL_BALLOT, Ballot
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

ROUND_MAX: Final = 2**62
"""The highest ballot round accepted from a peer: far beyond any real election count, and far
enough below 2**63 that every ballot derived from it still encodes."""
SLOT_MAX: Final = 2**62
"""The highest slot (or commit index) accepted from a peer."""


def check_message(msg: Message, members: Container[int]) -> str | None:
    """Why ``msg`` must be dropped, or ``None`` when its ids and numbers are in bounds."""
    if msg.sender not in members:
        return f"sender {msg.sender} is not a member"
    for ballot in _ballots(msg):
        if ballot == NULL_BALLOT:  # "none yet" is a value every field may carry
            continue
        if not 0 <= ballot.round <= ROUND_MAX:
            return f"ballot round {ballot.round} is outside [0, {ROUND_MAX}]"
        if ballot.node_id not in members:
            return f"ballot {ballot.round}.{ballot.node_id} is owned by a non-member"
    for name, slot in _slots(msg):
        if not 0 <= slot <= SLOT_MAX:
            return f"{name} {slot} is outside [0, {SLOT_MAX}]"
    return None


def _ballots(msg: Message) -> list[Ballot]:
    # The most frequent messages first: a class pattern is one isinstance test after another.
    match msg:
        case Accept() | Accepted() | Heartbeat() | HeartbeatAck() | Prepare():
            return [msg.ballot]
        case Promise():
            return [msg.ballot, *(vote.ballot for vote in msg.votes)]
        case Nack():
            return [msg.ballot, msg.promised]
        case PreVoteReply():
            return [msg.promised]
        case (
            CatchUp()
            | Decided()
            | SnapshotChunk()
            | SnapshotRequest()
            | ReadIndexRequest()
            | ReadIndexReply()
            | PreVoteRequest()
        ):
            return []


def _slots(msg: Message) -> list[tuple[str, int]]:
    match msg:  # the most frequent first, as in ``_ballots``
        case Accept():
            return [("slot", msg.slot), ("commit_index", msg.commit_index)]
        case Accepted():
            return [("slot", msg.slot)]
        case Heartbeat():
            return [("commit_index", msg.commit_index), ("read_round", msg.read_round)]
        case HeartbeatAck():
            slots = [("commit_index", msg.commit_index), ("read_round", msg.read_round)]
            return [*slots, ("durable_index", msg.durable_index)]
        case Prepare():
            return [("first_slot", msg.first_slot)]
        case Promise():
            slots = [("first_slot", msg.first_slot), ("log_start", msg.log_start)]
            slots.append(("commit_index", msg.commit_index))
            return slots + [("vote slot", vote.slot) for vote in msg.votes]
        case CatchUp():
            return [("from_slot", msg.from_slot)]
        case Decided():
            last = msg.first_slot + len(msg.values)
            slots = [("first_slot", msg.first_slot), ("last slot", last)]
            return [*slots, ("commit_index", msg.commit_index)]
        case SnapshotChunk():
            return [("slot", msg.slot), ("seq", msg.seq), ("chunk_count", msg.chunk_count)]
        case SnapshotRequest():
            return [("slot", msg.slot), ("first_seq", msg.first_seq), ("count", msg.count)]
        case ReadIndexRequest():
            return [("request_round", msg.request_round)]
        case ReadIndexReply():
            return [("request_round", msg.request_round), ("read_index", msg.read_index)]
        case PreVoteRequest() | PreVoteReply():
            return [("request_round", msg.request_round)]
        case Nack():
            return []
