"""RESP planners for ``EVAL``, ``EVALSHA`` (and their ``_RO`` forms) and ``SCRIPT``, and the
rendering of a script's reply tree; the state machine's side is ``kv.scripts``.
``SCRIPT_COMMANDS`` maps each name to its ``KvSpec``."""

from __future__ import annotations

from collections.abc import Sequence

from pypaxos.kv import (
    Array,
    Integer,
    Ok,
    Result,
    Value,
)
from pypaxos.kv.commands import (
    Aborted,
    ErrorReply,
    Eval,
    Replies,
    ScriptExists,
    ScriptFlush,
    ScriptLoad,
    Status,
)
from pypaxos.runtime.plans import OK, Immediate, KvSpec, Ops, error, wrong_arity
from pypaxos.runtime.replies import NULL_ARRAY_RESP2, NULL_RESP3, result_error, unexpected
from pypaxos.runtime.string_commands import combine_ok, integer_arg
from pypaxos.transport.resp import (
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
)


def render(result: Result, null: bytes) -> bytes:
    """Any result as its RESP reply: what a script answers (nested arrays, statuses, errors)."""
    match result:
        case Value(value):
            return null if value is None else encode_bulk(value)
        case Integer(value):
            return encode_integer(value)
        case Ok():
            return OK
        case Status(text):
            return b"+" + text + b"\r\n"
        case ErrorReply(text):
            return b"-" + text + b"\r\n"
        case Replies(items):
            return b"*%d\r\n" % len(items) + b"".join(render(item, null) for item in items)
        case Aborted():
            return null if null == NULL_RESP3 else NULL_ARRAY_RESP2
        case Array(items):
            return encode_array(items)
        case _:
            return result_error(result) or unexpected(result)


def _combine_render(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return render(result, null)


def _script_args(args: list[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | Immediate:
    """``EVAL``/``EVALSHA``'s ``numkeys key... arg...``: the keys and the arguments."""
    count = integer_arg(args[2])
    if isinstance(count, Immediate):
        return count
    if count < 0:
        return error("ERR Number of keys can't be negative")
    if count > len(args) - 3:
        return error("ERR Number of keys can't be greater than number of args")
    return tuple(args[3 : 3 + count]), tuple(args[3 + count :])


def _eval(args: list[bytes]) -> Ops | Immediate:
    parsed = _script_args(args)
    if isinstance(parsed, Immediate):
        return parsed
    read_only = args[0].upper() == b"EVAL_RO"
    return Ops((Eval(args[1], b"", *parsed, read_only=read_only),), _combine_render)


NOSCRIPT_REPLY = encode_error("NOSCRIPT No matching script. Please use EVAL.")


def _evalsha(args: list[bytes]) -> Ops | Immediate:
    parsed = _script_args(args)
    if isinstance(parsed, Immediate):
        return parsed
    sha = args[1].lower()
    if len(sha) != 40:
        return Immediate(NOSCRIPT_REPLY)
    read_only = args[0].upper() == b"EVALSHA_RO"
    return Ops((Eval(None, sha, *parsed, read_only=read_only),), _combine_render)


def _script(args: list[bytes]) -> Ops | Immediate:
    """``SCRIPT LOAD body`` / ``EXISTS sha...`` / ``FLUSH [ASYNC|SYNC]`` / ``KILL``."""
    sub = args[1].upper()
    if sub == b"LOAD":
        if len(args) != 3:
            return wrong_arity(b"script|load")
        return Ops((ScriptLoad(args[2]),), _combine_render)
    if sub == b"EXISTS":
        if len(args) < 3:
            return wrong_arity(b"script|exists")
        return Ops((ScriptExists(tuple(sha.lower() for sha in args[2:])),), _combine_render)
    if sub == b"FLUSH":
        if len(args) > 3:
            return wrong_arity(b"script|flush")
        if len(args) == 3 and args[2].upper() not in (b"ASYNC", b"SYNC"):
            return error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        return Ops((ScriptFlush(),), combine_ok)
    if sub == b"KILL":  # a script never outlives its log entry (kv.scripts): nothing to kill
        return error("NOTBUSY No scripts in execution right now.")
    shown = args[1].decode(errors="replace")
    return error(f"ERR unknown subcommand '{shown}'. Try SCRIPT HELP.")


SCRIPT_COMMANDS: dict[bytes, KvSpec] = {
    b"EVAL": KvSpec(3, None, _eval),
    b"EVALSHA": KvSpec(3, None, _evalsha),
    b"EVAL_RO": KvSpec(3, None, _eval),
    b"EVALSHA_RO": KvSpec(3, None, _evalsha),
    b"SCRIPT": KvSpec(2, None, _script),
}
