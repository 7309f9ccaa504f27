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
A storage snapshot holds a ``SnapshotState``: the acceptor's durable state (promise and votes)
and the replica's snapshot, as records again, so recovery is always "fold these records, then
the log after them" (``Node.recover``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from pypaxos.multi import (
    AcceptRecord,
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
commands and a ``Snapshot`` the whole store, so it is well above the transport's default."""


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


class SnapshotState(msgspec.Struct, frozen=True):
    """The content of a storage snapshot: records that rebuild the node up to its index."""

    version: int
    records: list[Record]


SNAPSHOT_STATE_VERSION = 1

_ENCODER = msgspec.msgpack.Encoder()
_RECORD_DECODER: msgspec.msgpack.Decoder[Record] = msgspec.msgpack.Decoder(Record)
_STATE_DECODER = msgspec.msgpack.Decoder(SnapshotState)


def encode_record(record: Record) -> bytes:
    return _ENCODER.encode(record)


def decode_record(data: bytes) -> Record:
    """Raises ``msgspec.DecodeError`` (a ``ValueError``) for bytes that are not a record, and
    ``RecursionError`` for a deeply nested value (msgspec recurses to skip an unknown field)."""
    return _RECORD_DECODER.decode(data)


def snapshot_state(node: Node) -> bytes:
    """The node's durable state now: promise, the replica's snapshot, and every live vote.

    Written only when every record appended so far is synced, so it equals the fold of the log
    it replaces (votes below the snapshot slot were compacted: they are decided and in it).
    """
    replica, acceptor = node.replica, node.acceptor
    records: list[Record] = [
        PromiseRecord(acceptor.promised),
        SnapshotRecord(replica.snapshot_slot, replica.snapshot_data),
    ]
    records += [
        AcceptRecord(v.slot, v.ballot, v.value) for _, v in sorted(acceptor.accepted.items())
    ]
    return _ENCODER.encode(SnapshotState(SNAPSHOT_STATE_VERSION, records))


def decode_snapshot_state(data: bytes) -> list[Record]:
    """Raises ``ValueError`` for a payload that is not a ``SnapshotState`` of this version
    (``RecursionError`` for a deeply nested one, as ``decode_record``)."""
    state = _STATE_DECODER.decode(data)
    if state.version != SNAPSHOT_STATE_VERSION:
        raise ValueError(f"unsupported snapshot state version {state.version}")
    return state.records
