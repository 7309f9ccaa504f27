"""``SELECT``, ``MOVE``, ``SWAPDB``, ``FLUSHDB``, ``FLUSHALL``: the commands about databases.

Redis 7.0's replies.  A connection's database is the connection's own (``SELECT``; 0 when it
opens and after ``RESET``); every key-value command it sends carries it (``kv.InDb``, added by
the server when it encodes the request), so the state machine runs it in that database
(``kv.databases``).  Which indexes exist is the store's (``kv.DATABASES``: 0 to 15); the
``databases`` setting may allow fewer for ``SELECT``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pypaxos.kv import Command, Result, parse_int64
from pypaxos.kv.commands import FlushAll, FlushDb, Move, Ok, Select, SwapDb
from pypaxos.runtime.replies import Combine, result_error, unexpected
from pypaxos.transport.resp import encode_error, encode_integer, encode_simple

NOT_AN_INTEGER = encode_error("ERR value is not an integer or out of range")
OUT_OF_RANGE = encode_error("ERR DB index is out of range")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
OK = encode_simple("OK")


@dataclass(frozen=True, slots=True)
class SelectDb:
    """``SELECT index``: the connection switches database (``index`` may be out of range:
    the connection checks it against its ``databases`` setting)."""

    index: int


NOT_AN_INT32 = encode_error(
    f"ERR value is out of range, value must between {INT32_MIN} and {INT32_MAX}"
)


def db_index(raw: bytes, refusal: bytes | None = None) -> int | bytes:
    """A database index argument as Redis reads one (a C ``int``), or the error reply
    (``refusal`` for any bad index if given, as ``SWAPDB`` has)."""
    number = parse_int64(raw)
    if number is None:
        return refusal or NOT_AN_INTEGER
    if not INT32_MIN <= number <= INT32_MAX:
        return refusal or NOT_AN_INT32
    return number


def plan_select(args: list[bytes]) -> SelectDb | bytes:
    index = db_index(args[1])
    return SelectDb(index) if isinstance(index, int) else index


def select_in_script(argv: list[bytes]) -> Select | bytes:
    """A script's ``redis.call('SELECT', n)``: switches the script's database only."""
    index = db_index(argv[1])
    if isinstance(index, bytes):
        return index
    return Select(index)


def _combine_ok(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return result_error(result) or (OK if type(result) is Ok else unexpected(result))


def _combine_integer(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    refused = result_error(result)
    if refused is not None:
        return refused
    value = getattr(result, "value", None)
    return encode_integer(value) if isinstance(value, int) else unexpected(result)


Planned = tuple[tuple[Command, ...], Combine] | bytes
"""A command's log commands and how to combine their results, or an error reply."""


def plan_flush(args: list[bytes]) -> Planned:
    """``FLUSHDB``/``FLUSHALL [ASYNC|SYNC]`` (both run at once: one log command)."""
    if len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC"):
        return encode_error("ERR syntax error")
    return ((FlushAll() if args[0].upper() == b"FLUSHALL" else FlushDb()),), _combine_ok


def plan_move(args: list[bytes]) -> Planned:
    """``MOVE key db``: the range and ``db`` being the current one are the log's to judge."""
    index = db_index(args[2])
    if isinstance(index, bytes):
        return index
    return (Move(args[1], index),), _combine_integer


def plan_swapdb(args: list[bytes]) -> Planned:
    first = db_index(args[1], encode_error("ERR invalid first DB index"))
    if isinstance(first, bytes):
        return first
    second = db_index(args[2], encode_error("ERR invalid second DB index"))
    if isinstance(second, bytes):
        return second
    return (SwapDb(first, second),), _combine_ok


DATABASE_COMMANDS: dict[bytes, tuple[int, int, Callable[[list[bytes]], Planned]]] = {
    b"FLUSHDB": (1, 2, plan_flush),
    b"FLUSHALL": (1, 2, plan_flush),
    b"MOVE": (3, 3, plan_move),
    b"SWAPDB": (3, 3, plan_swapdb),
}
"""Name -> (fewest arguments, most, planner), as ``collection_commands.COLLECTION_COMMANDS``."""
