"""What a node puts on the peer wire and on its disk, besides the Multi-Paxos messages.

Peer wire.  Nodes speak ``pypaxos.multi`` messages over ``pypaxos.transport``; the runtime adds
two of its own on the same connections, so a follower can hand a client command to the leader
without a second socket or protocol:

* ``Forward(forward_id, command, read)``: "propose this encoded ``kv.Request`` for me", or with
  ``read`` "answer this read-only request on the read-index path" (``Node.read``).
* ``ForwardReply(forward_id, outcome, result, leader_id)``: the leader's answer; ``outcome`` is
  ``reply`` (``result`` holds the state machine's result bytes), ``busy`` (queue full, the
  command was dropped) or ``redirect`` (not executed by this proposal; ``leader_id`` is a hint).

Forwarding keeps exactly-once because the command carries its ``(client_id, seq)``: the state
machine answers a repeated pair from its session table instead of applying it again, so the
follower may resend a command to a new leader whenever the old one is gone.

Disk.  Every ``Persist`` record is one msgpack-encoded ``multi.Record`` in the write-ahead log.
A storage snapshot (format 2, chunked) holds the state machine's chunks
(``StateMachine.snapshot_chunks``), led by the replicated membership's chunk when the meta
says so (``Replica.snapshot_chunks``: every runtime node now), and, as its last chunk, a
``SnapshotMeta``: the replica's snapshot slot and the acceptor's durable state (promise and
votes).  Recovery loads the machine
chunk by chunk, then folds "these records, then the log after them" (``Node.recover``).  A
format-1 snapshot (older versions) holds one ``SnapshotState``: the same records, the machine's
whole state inside the snapshot record; it is still read.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from pypaxos.core.types import Ballot
from pypaxos.multi import (
    AcceptRecord,
    LearnedRecord,
    Message,
    Node,
    PromiseRecord,
    Record,
    SnapshotRecord,
)
from pypaxos.transport import Codec

Outcome = Literal["reply", "busy", "redirect"]

FRAME_BYTES_MAX = 64 * 1024 * 1024
"""The peer frame bound: a ``Decided`` catch-up answer carries up to ``catch_up_max_bytes`` of
commands and a ``SnapshotChunk`` about ``snapshot_chunk_bytes_max``, but either may hold one
large value whole, so it is well above the transport's default."""


class Forward(msgspec.Struct, frozen=True, tag="runtime.Forward"):
    sender: int
    forward_id: int
    command: bytes
    read: bool = False  # a read-only request for ``Node.read``, not a proposal


class ForwardReply(msgspec.Struct, frozen=True, tag="runtime.ForwardReply"):
    sender: int
    forward_id: int
    outcome: Outcome
    result: bytes = b""
    leader_id: int | None = None


WireMessage = Message | Forward | ForwardReply

CODEC: Codec[WireMessage] = Codec(WireMessage, frame_bytes_max=FRAME_BYTES_MAX)


class SnapshotMeta(msgspec.Struct, frozen=True, tag="runtime.SnapshotMeta"):
    """The last chunk of a format-2 storage snapshot: what rebuilds the node besides its
    machine (whose chunks come before it)."""

    slot: int  # the machine has applied every slot below
    promised: Ballot
    votes: list[AcceptRecord]
    # The first chunk is the replicated membership (``Replica.snapshot_chunks`` of a
    # reconfigurable node), not the machine's; older snapshots lack the field.
    membership: bool = False


class _WholeSnapshotRecord(msgspec.Struct, frozen=True, tag="multi.SnapshotRecord"):
    """A format-1 snapshot's record: the machine's whole state in ``data``."""

    slot: int
    data: bytes


class SnapshotState(msgspec.Struct, frozen=True):
    """The content of a format-1 storage snapshot (older versions): records that rebuild the
    node up to its index."""

    version: int
    records: list[PromiseRecord | AcceptRecord | _WholeSnapshotRecord]


SNAPSHOT_STATE_VERSION = 1

_ENCODER = msgspec.msgpack.Encoder()
_RECORD_DECODER: msgspec.msgpack.Decoder[Record] = msgspec.msgpack.Decoder(Record)
_STATE_DECODER = msgspec.msgpack.Decoder(SnapshotState)
_META_DECODER = msgspec.msgpack.Decoder(SnapshotMeta)


def encode_record(record: Record) -> bytes:
    return _ENCODER.encode(record)


def decode_record(data: bytes) -> Record:
    """Raises ``msgspec.DecodeError`` (a ``ValueError``) for bytes that are not a record, and
    ``RecursionError`` for a deeply nested value (msgspec recurses to skip an unknown field)."""
    return _RECORD_DECODER.decode(data)


def snapshot_meta(node: Node) -> bytes:
    """The node's durable state besides its machine, now: the applied index (the slot the
    machine's snapshot taken now covers), the promise and the live votes.

    Taken only when every record appended so far is synced, so with the machine it equals the
    fold of the log it replaces (votes below the slot are decided and in the machine).
    """
    replica, acceptor = node.replica, node.acceptor
    slot = replica.applied_index
    votes = [
        AcceptRecord(v.slot, v.ballot, v.value)
        for s, v in sorted(acceptor.accepted.items())
        if s >= slot
    ]
    membership = replica.membership is not None
    return _ENCODER.encode(SnapshotMeta(slot, acceptor.promised, votes, membership))


def decode_snapshot_meta(data: bytes) -> list[Record]:
    """The records a ``SnapshotMeta`` stands for (the snapshot record without chunks: the
    machine was loaded from the chunks before it).  Raises ``ValueError`` as ``decode_record``."""
    meta = _META_DECODER.decode(data)
    return [PromiseRecord(meta.promised), SnapshotRecord(meta.slot), *meta.votes]


def snapshot_has_membership(meta_chunk: bytes) -> bool:
    """Whether the snapshot whose last chunk is ``meta_chunk`` starts with the membership.
    Raises ``ValueError`` as ``decode_record``."""
    return _META_DECODER.decode(meta_chunk).membership


def decode_snapshot_state(data: bytes) -> list[Record]:
    """A format-1 snapshot's records (the machine's whole state as the snapshot record's one
    chunk).  Raises ``ValueError`` for a payload that is not a ``SnapshotState`` of this
    version (``RecursionError`` for a deeply nested one, as ``decode_record``)."""
    state = _STATE_DECODER.decode(data)
    if state.version != SNAPSHOT_STATE_VERSION:
        raise ValueError(f"unsupported snapshot state version {state.version}")
    records: list[Record] = []
    for record in state.records:
        if isinstance(record, _WholeSnapshotRecord):
            records.append(SnapshotRecord(record.slot, (record.data,)))
        else:
            records.append(record)
    return records


def encode_snapshot_state(records: list[Record]) -> bytes:
    """A format-1 snapshot's payload, as older versions wrote it (tests of old data dirs)."""
    old: list[PromiseRecord | AcceptRecord | _WholeSnapshotRecord] = []
    for record in records:
        if isinstance(record, SnapshotRecord):
            old.append(_WholeSnapshotRecord(record.slot, b"".join(record.chunks)))
        elif isinstance(record, LearnedRecord):
            continue  # the format predates them (a snapshot's own slots never need them)
        else:
            old.append(record)
    return _ENCODER.encode(SnapshotState(SNAPSHOT_STATE_VERSION, old))
