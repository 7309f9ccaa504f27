"""A script's ``redis.call``/``redis.pcall``: the command table it runs through, and the
conversions between a command's RESP2 reply, Lua values and the script's reply (``kv.scripts``
runs the script).

Conversions follow Redis 7.0's RESP2 rules.  A command's reply to Lua: bulk -> string, null ->
``false``, integer -> number, status -> ``{ok=...}``, error -> ``{err=...}`` (``redis.pcall``)
or raised (``redis.call``), array -> table.  The script's value to a reply: string -> bulk,
number -> integer (truncated), ``true`` -> 1, ``false``/``nil`` -> null, ``{err=...}`` ->
error, ``{ok=...}`` -> status, other tables -> array up to the first ``nil``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the Lua runtime is loaded with the first script (``kv.scripts``)
    import lupa.lua51 as lua

from pypaxos.kv.commands import (
    INT64_MAX,
    INT64_MIN,
    Command,
    ErrorReply,
    Integer,
    Replies,
    Result,
    Status,
    Value,
)

CALL_INSTRUCTIONS = 1_000
"""What one ``redis.call`` counts against the budget at least (its Python work is not Lua
instructions); its bytes and the keys it visits count on top (``CommandRunner``)."""


class CommandRunner(Protocol):
    """Runs one ``redis.call`` for a script: the command's arguments in, its RESP2 reply and
    the keys it visited out (beyond the ones it names: a whole-keyspace command's count).

    The state machine implements it over a ``CommandTable`` (the server's own command
    planning), so a command answers a script exactly as it answers a client."""

    def __call__(self, argv: list[bytes]) -> tuple[bytes, int]: ...


ScriptCall = tuple[tuple[Command, ...], Callable[[Sequence[Result]], bytes]]


class CommandTable(Protocol):
    """What a ``redis.call`` means: the ops to execute and how their results make the RESP2
    reply, or the reply itself (an error, a constant).  Deterministic: every replica must be
    given the same table (``runtime.commands.script_command``)."""

    def __call__(self, argv: list[bytes]) -> ScriptCall | bytes: ...


def invoke_call(
    runtime: lua.LuaRuntime, call: CommandRunner, args: tuple[object, ...]
) -> tuple[bool, object, int]:
    """One ``redis.call``/``redis.pcall``: ``(True, value for Lua, cost)`` or ``(False, error
    text, cost)``; the cost (in instructions) is what the call counts against the budget."""
    if not args:
        return False, b"ERR Please specify at least one argument for this redis lib call", 0
    argv: list[bytes] = []
    for arg in args:
        if isinstance(arg, bytes):
            argv.append(arg)
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            argv.append(b"%.17g" % arg)
        else:
            return False, b"ERR Lua redis lib command arguments must be strings or integers", 0
    reply, visited = call(argv)
    cost = CALL_INSTRUCTIONS + sum(map(len, argv)) + len(reply) + visited
    value, _ = _parse_reply(reply, 0)
    if isinstance(value, _ErrorText):
        return False, value.text, cost
    return True, _to_lua(runtime, value), cost


class _ErrorText:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


class _StatusText:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


_Parsed = bytes | int | bool | _ErrorText | _StatusText | list["_Parsed"]


def _parse_reply(data: bytes, position: int) -> tuple[_Parsed, int]:
    """One RESP2 reply from ``data`` at ``position`` (our own server's, so well formed)."""
    end = data.index(b"\r\n", position)
    kind, line = data[position : position + 1], data[position + 1 : end]
    after = end + 2
    if kind == b"+":
        return _StatusText(line), after
    if kind == b"-":
        return _ErrorText(line), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return False, after
        return data[after : after + length], after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return False, after
        items: list[_Parsed] = []
        for _ in range(count):
            item, after = _parse_reply(data, after)
            items.append(item)
        return items, after
    if kind == b"_":  # RESP3 null, should a planner answer one
        return False, after
    raise ValueError(f"unexpected reply {data[position : position + 16]!r}")


def _to_lua(runtime: Any, value: _Parsed) -> object:
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    if isinstance(value, _StatusText):
        return runtime.table_from({b"ok": value.text})
    if isinstance(value, _ErrorText):
        return runtime.table_from({b"err": value.text})
    return value


def script_result(table: Any) -> Result:
    """A shaped Lua value (``shape`` in the sandbox: a plain table ``{kind, payload...}``) as a
    result.  ``Any``: a Lua table, typed by its contents only."""
    kind = table[1]
    if kind == b"b":
        return Value(table[2])
    if kind == b"n":
        return Integer(_to_integer(table[2]))
    if kind == b"e":
        return ErrorReply(clean_line(table[2]))
    if kind == b"s":
        return Status(clean_line(table[2]))
    if kind == b"a":
        items: list[Result] = []
        index = 2
        while (item := table[index]) is not None:
            items.append(script_result(item))
            index += 1
        return Replies(tuple(items))
    return Value(None)


def _to_integer(number: int | float) -> int:
    """A Lua number as Redis replies it: truncated to a 64-bit integer (C's cast on x86-64:
    out of range and NaN give the lowest integer)."""
    if isinstance(number, int):
        return number if INT64_MIN <= number <= INT64_MAX else INT64_MIN
    if not math.isfinite(number) or not INT64_MIN <= number < 2.0**63:
        return INT64_MIN
    return int(number)


def clean_line(text: bytes) -> bytes:
    """An error or status line: Redis replaces its CR and LF with spaces."""
    return text.replace(b"\r", b" ").replace(b"\n", b" ")
