"""The RESP command table, without a server: plans, arity, limits and reply encodings."""

from __future__ import annotations

import pytest

from pypaxos.kv import (
    VALUE_BYTES_MAX,
    Cas,
    Delete,
    Error,
    Get,
    Incr,
    Integer,
    Mismatch,
    Ok,
    Set,
    Stale,
    Value,
)
from pypaxos.runtime.admin_commands import ADMIN, ADMIN_ARITY, command_names
from pypaxos.runtime.commands import plain_single, plan, single_reply
from pypaxos.runtime.databases import SelectDb
from pypaxos.runtime.plans import KEY_BYTES_MAX, ConfigGet, Hello, Immediate, Info, Ops, ReadMode
from pypaxos.runtime.replies import NULL_RESP2, NULL_RESP3
from pypaxos.runtime.server_commands import NodeCommand


def ops(*args: bytes) -> Ops:
    planned = plan(list(args))
    assert isinstance(planned, Ops), planned
    return planned


def reply(*args: bytes) -> bytes:
    planned = plan(list(args))
    assert isinstance(planned, Immediate), planned
    return planned.reply


def test_key_value_commands_become_log_commands() -> None:
    assert ops(b"get", b"k").ops == (Get(b"k"),)
    assert ops(b"SET", b"k", b"v").ops == (Set(b"k", b"v"),)
    assert ops(b"Incr", b"k").ops == (Incr(b"k"),)
    assert ops(b"INCRBY", b"k", b"1").ops == (Incr(b"k"),)
    assert ops(b"CAS", b"k", b"a", b"b").ops == (Cas(b"k", b"a", b"b"),)
    assert ops(b"DEL", b"a", b"b").ops == (Delete(b"a"), Delete(b"b"))
    assert ops(b"MGET", b"a", b"b").session is None
    paxos = ops(b"PAXOS.REQ", b"7", b"3", b"SET", b"k", b"v")
    assert paxos.ops == (Set(b"k", b"v"),) and paxos.session == (7, 3)


def test_results_become_replies() -> None:
    assert ops(b"GET", b"k").combine([Value(None)], NULL_RESP2) == b"$-1\r\n"
    assert ops(b"GET", b"k").combine([Value(None)], NULL_RESP3) == b"_\r\n"
    assert ops(b"GET", b"k").combine([Value(b"v")], NULL_RESP2) == b"$1\r\nv\r\n"
    assert ops(b"SET", b"k", b"v").combine([Ok()], NULL_RESP2) == b"+OK\r\n"
    cas = ops(b"CAS", b"k", b"a", b"b")
    assert cas.combine([Ok()], NULL_RESP2) == b":1\r\n"
    assert cas.combine([Mismatch(b"z")], NULL_RESP2) == b":0\r\n"
    assert ops(b"DEL", b"a", b"b").combine([Integer(1), Integer(0)], NULL_RESP2) == b":1\r\n"
    exists = ops(b"EXISTS", b"a", b"b").combine([Value(b"x"), Value(None)], NULL_RESP2)
    assert exists == b":1\r\n"
    mget = ops(b"MGET", b"a", b"b").combine([Value(b"x"), Value(None)], NULL_RESP3)
    assert mget == b"*2\r\n$1\r\nx\r\n_\r\n"
    incr = ops(b"INCR", b"k")
    assert incr.combine([Error("value is not an integer or out of range")], NULL_RESP2) == (
        b"-ERR value is not an integer or out of range\r\n"
    )
    assert incr.combine([Stale(4)], NULL_RESP2).startswith(b"-ERR stale request")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"NOPE",), b"-ERR unknown command 'NOPE'"),
        ((b"GET",), b"-ERR wrong number of arguments for 'get' command"),
        ((b"GET", b"a", b"b"), b"-ERR wrong number of arguments for 'get' command"),
        ((b"CAS", b"k", b"a"), b"-ERR wrong number of arguments for 'cas' command"),
        ((b"INCRBY", b"k", b"x"), b"-ERR value is not an integer or out of range"),
        ((b"SET", b"k", b"v" * (VALUE_BYTES_MAX + 1)), b"-ERR value too large"),
        ((b"GET", b"k" * (KEY_BYTES_MAX + 1)), b"-ERR key too large"),
        ((b"PAXOS.REQ", b"1", b"x", b"GET", b"k"), b"-ERR PAXOS.REQ client_id and seq"),
        ((b"PAXOS.REQ", b"1", b"9223372036854775808", b"GET", b"k"), b"-ERR PAXOS.REQ"),
        ((b"PAXOS.REQ", b"1", b"1", b"DEL", b"a", b"b"), b"-ERR PAXOS.REQ takes one key"),
        ((b"PAXOS.REQ", b"1", b"1"), b"-ERR wrong number of arguments for 'paxos.req'"),
        ((b"PAXOS.REQ", b"1", b"1", b"GET"), b"-ERR wrong number of arguments for 'get'"),
        ((b"SELECT", b"x"), b"-ERR value is not an integer or out of range"),
        ((b"SELECT", b"2147483648"), b"-ERR value is out of range, value must between"),
        ((b"SWAPDB", b"x", b"1"), b"-ERR invalid first DB index"),
        ((b"SWAPDB", b"1", b"01"), b"-ERR invalid second DB index"),
        ((b"MOVE", b"k", b"x"), b"-ERR value is not an integer or out of range"),
        ((b"COPY", b"a", b"b", b"DB", b"16"), b"-ERR DB index is out of range"),
        ((b"HELLO", b"4"), b"-NOPROTO unsupported protocol version"),
        ((b"CONFIG", b"SET", b"a"), b"-ERR wrong number of arguments for 'config|set'"),
        ((b"CONFIG", b"NOPE"), b"-ERR unknown subcommand 'NOPE'"),
        ((b"CLIENT", b"NOPE"), b"-ERR unknown subcommand 'NOPE'"),
        ((b"XADD", b"s", b"*", b"f", b"v"), b"-ERR unknown command 'XADD': streams"),
    ],
)
def test_bad_commands_get_redis_style_errors(args: tuple[bytes, ...], message: bytes) -> None:
    assert reply(*args).startswith(message)


def test_connection_setup_commands() -> None:
    assert reply(b"PING") == b"+PONG\r\n"
    assert reply(b"PING", b"hi") == b"$2\r\nhi\r\n"
    assert reply(b"COMMAND", b"DOCS", b"nosuch") == b"*0\r\n"
    assert reply(b"COMMAND", b"DOCS", b"get") == b"*2\r\n$3\r\nget\r\n*0\r\n"
    assert int(reply(b"COMMAND", b"COUNT")[1:]) == len(command_names()) > 100
    assert reply(b"COMMAND", b"GETKEYS", b"MSET", b"a", b"1", b"b", b"2").startswith(b"*2\r\n")
    assert plan([b"CONFIG", b"GET", b"save"]) == ConfigGet((b"save",))  # the server answers
    assert plan([b"CLIENT", b"SETINFO", b"LIB-NAME", b"x"]) == NodeCommand(
        "CLIENT SETINFO", (b"LIB-NAME", b"x")
    )
    assert plan([b"SELECT", b"0"]) == SelectDb(0)  # the connection checks the range
    assert plan([b"SELECT", b"-1"]) == SelectDb(-1)
    quit_plan = plan([b"QUIT"])
    assert isinstance(quit_plan, Immediate) and quit_plan.close
    assert plan([b"INFO"]) == Info(None)
    assert plan([b"info", b"Paxos"]) == Info("paxos")
    assert plan([b"HELLO"]) == Hello(None)
    assert plan([b"HELLO", b"3", b"SETNAME", b"x"]) == Hello(3)


@pytest.mark.parametrize(
    "args",
    [
        [b"SET", b"k", b"v"],
        [b"set", b"k", b"v" * 1000],
        [b"GET", b"k"],
        [b"get", b"k"],
        [b"INCR", b"n"],
        [b"incr", b"n"],
    ],
)
def test_the_fast_path_plans_what_plan_plans(args: list[bytes]) -> None:
    fast = plain_single(args)
    planned = plan(args)
    assert fast is not None and isinstance(planned, Ops)
    assert (fast[0],) == planned.ops and fast[1] is single_reply(planned.combine)


@pytest.mark.parametrize(
    "args",
    [
        [b"SET", b"k"],
        [b"GET", b"k", b"x"],
        [b"Set", b"k", b"v"],  # mixed case: the general path upper-cases it
        [b"SET", b"k", b"v" * (KEY_BYTES_MAX + 1)],
        [b"DEL", b"k"],
        [b"PING"],
    ],
)
def test_the_fast_path_leaves_the_rest_to_plan(args: list[bytes]) -> None:
    assert plain_single(args) is None


def test_readonly_and_readwrite_switch_the_stale_mode() -> None:
    assert plan([b"READONLY"]) == ReadMode(stale=True)
    assert plan([b"readwrite"]) == ReadMode(stale=False)
    assert reply(b"READONLY", b"x").startswith(b"-ERR wrong number of arguments")


def test_command_table_covers_every_planned_command() -> None:
    """``COMMAND`` is derived from the planner tables: every command outside the key-value
    table needs its arity written down, or ``COMMAND INFO`` would answer -1 for it."""

    assert set(ADMIN) <= set(ADMIN_ARITY)
    for name in command_names():
        info = reply(b"COMMAND", b"INFO", name)
        assert info.startswith(b"*1\r\n*10\r\n"), name
        assert b"\r\n:-1\r\n:0\r\n" not in info[:40] or name == b"paxos.req", name
