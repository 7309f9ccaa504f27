"""Multi-Paxos as pure actors: a replicated log of batches applied to a state machine.

``Node`` composes a slot-wise ``SlotAcceptor``, a ``Replica`` (learner and applier) and a
``Leader`` (phase 1 once, then phase 2 per slot, with batching and a window of slots in flight).
It takes ``propose``/``handle``/``tick`` and returns effects; see ``effects`` for the records it
persists and the durability contract, ``bugs`` for the planted mistakes.
"""

from pypaxos.multi.acceptor import SlotAcceptor
from pypaxos.multi.bugs import LogBug
from pypaxos.multi.config import MultiConfig
from pypaxos.multi.effects import (
    AcceptRecord,
    Applied,
    Busy,
    CompactLog,
    Effect,
    LearnedRecord,
    LocalReply,
    PersistOwnVote,
    PromiseRecord,
    Record,
    Redirect,
    Reply,
    SendSnapshot,
    SnapshotRecord,
    TakeSnapshot,
)
from pypaxos.multi.leader import Leader
from pypaxos.multi.log import NOOP, Batch, Entry, Vote
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
from pypaxos.multi.node import Node, Role, Status
from pypaxos.multi.replica import Replica, StateMachine
from pypaxos.multi.snapshots import (
    SnapshotLoader,
    WholeStateSnapshots,
    capture,
    chunk_messages,
)

__all__ = [
    "NOOP",
    "Accept",
    "AcceptRecord",
    "Accepted",
    "Applied",
    "Batch",
    "Busy",
    "CatchUp",
    "CompactLog",
    "Decided",
    "Effect",
    "Entry",
    "Heartbeat",
    "HeartbeatAck",
    "Leader",
    "LearnedRecord",
    "LocalReply",
    "LogBug",
    "Message",
    "MultiConfig",
    "Nack",
    "Node",
    "PersistOwnVote",
    "PreVoteReply",
    "PreVoteRequest",
    "Prepare",
    "Promise",
    "PromiseRecord",
    "ReadIndexReply",
    "ReadIndexRequest",
    "Record",
    "Redirect",
    "Replica",
    "Reply",
    "Role",
    "SendSnapshot",
    "SlotAcceptor",
    "SnapshotChunk",
    "SnapshotLoader",
    "SnapshotRecord",
    "SnapshotRequest",
    "StateMachine",
    "Status",
    "TakeSnapshot",
    "Vote",
    "WholeStateSnapshots",
    "capture",
    "chunk_messages",
]
