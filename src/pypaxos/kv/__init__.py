"""The replicated key-value store: commands, results and the deterministic state machine.

Pure (no I/O, clock, randomness or threads): the Multi-Paxos log hands ``apply`` the decided
command bytes in slot order; see ``state_machine`` for the exactly-once rules.
"""

from pypaxos.kv.commands import (
    NOOP,
    Cas,
    Command,
    Delete,
    Error,
    Get,
    Incr,
    Integer,
    LogEntry,
    Mismatch,
    NoOp,
    Ok,
    Request,
    Result,
    SessionExpired,
    Set,
    Stale,
    Value,
    decode_entry,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
    parse_int64,
)
from pypaxos.kv.state_machine import (
    DEFAULT_SESSION_TTL_COMMANDS,
    KVStateMachine,
    Session,
    StateMachine,
)

__all__ = [
    "DEFAULT_SESSION_TTL_COMMANDS",
    "NOOP",
    "Cas",
    "Command",
    "Delete",
    "Error",
    "Get",
    "Incr",
    "Integer",
    "KVStateMachine",
    "LogEntry",
    "Mismatch",
    "NoOp",
    "Ok",
    "Request",
    "Result",
    "Session",
    "SessionExpired",
    "Set",
    "Stale",
    "StateMachine",
    "Value",
    "decode_entry",
    "decode_request",
    "decode_result",
    "encode_request",
    "encode_result",
    "parse_int64",
]
