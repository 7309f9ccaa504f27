"""How a refused ``kv`` result is spelled as a RESP error, shared by every command planner.

The planners (``runtime.string_commands``, ``script_commands``, ``admin_commands``,
``collection_commands``) all answer refusals through ``result_error``, so each error is spelled
in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pypaxos.kv import Error, Result, SessionExpired, Stale
from pypaxos.kv.values import WRONGTYPE
from pypaxos.transport.resp import encode_error

Combine = Callable[[Sequence[Result], bytes], bytes]
"""Results to the reply; the second argument is how the connection's protocol spells null."""

NULL_RESP2 = b"$-1\r\n"
NULL_RESP3 = b"_\r\n"
NULL_ARRAY_RESP2 = b"*-1\r\n"  # an aborted EXEC's (RESP3 sends its null)


def result_error(result: Result) -> bytes | None:
    """The RESP error for a result that is a refusal, or ``None``."""
    match result:
        case Error(message):
            if message == WRONGTYPE:  # its own error code, not ERR
                return encode_error(message)
            return encode_error(f"ERR {message}")
        case Stale(last_seq):
            return encode_error(f"ERR stale request: seq is below the last applied ({last_seq})")
        case SessionExpired():
            return encode_error("ERR session expired: start again with a new client_id")
        case _:
            return None


def unexpected(result: Result) -> bytes:
    """The reply for a result a command cannot have (a bug, answered rather than raised)."""
    return encode_error(f"ERR internal error: unexpected result {type(result).__name__}")
