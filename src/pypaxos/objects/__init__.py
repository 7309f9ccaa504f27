"""Replicate your own Python objects: mark the methods that change state ``@command``.

``ObjectMachine(obj)`` (one object) or ``Group(name=obj, ...)`` (several) is a
``multi.StateMachine``: the log carries ``Call`` s encoded with msgspec, every replica runs the
same commands in the same order, with exactly-once client sessions, and snapshots carry the
objects' declared fields (or what their ``snapshot_state``/``restore_state`` hooks return).
``Caller``/``Stub`` build and check calls on the caller's side; ``batteries`` holds ready-made
counters, maps, lists, sets, queues and a lock manager.  Pure: no clock, no I/O, no threads.

More: docs/guide.md, 'Replicating your own objects'.
"""

from pypaxos.objects.api import command, is_command, log_time_ms
from pypaxos.objects.batteries import (
    Counter,
    Dict,
    List,
    LockManager,
    PriorityQueue,
    Queue,
    Set,
)
from pypaxos.objects.codec import (
    REJECT_REASONS,
    Call,
    Raised,
    Rejected,
    Result,
    Returned,
    SessionExpired,
    Stale,
    decode_call,
    decode_result,
    encode_call,
)
from pypaxos.objects.errors import (
    CallFailed,
    CallRejected,
    CommandRaised,
    DefinitionError,
    NotACommand,
    NotEncodable,
    ObjectsError,
    SessionLost,
    StaleCall,
)
from pypaxos.objects.machine import Group, ObjectMachine
from pypaxos.objects.stub import AsyncStub, AsyncSubmit, Caller, Stub, Submit, unwrap

__all__ = [
    "REJECT_REASONS",
    "AsyncStub",
    "AsyncSubmit",
    "Call",
    "CallFailed",
    "CallRejected",
    "Caller",
    "CommandRaised",
    "Counter",
    "DefinitionError",
    "Dict",
    "Group",
    "List",
    "LockManager",
    "NotACommand",
    "NotEncodable",
    "ObjectMachine",
    "ObjectsError",
    "PriorityQueue",
    "Queue",
    "Raised",
    "Rejected",
    "Result",
    "Returned",
    "SessionExpired",
    "SessionLost",
    "Set",
    "Stale",
    "StaleCall",
    "Stub",
    "Submit",
    "command",
    "decode_call",
    "decode_result",
    "encode_call",
    "is_command",
    "log_time_ms",
    "unwrap",
]
