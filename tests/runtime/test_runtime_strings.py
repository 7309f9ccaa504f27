"""The string and keyspace commands from RESP to reply: planning, arguments, Redis's errors."""

from __future__ import annotations

import pytest
from planned_store import PlannedStore

from pypaxos.kv import Get, Incr, IncrBy, MSet, SetWith
from pypaxos.kv.store import shard_of
from pypaxos.runtime.auth import Access
from pypaxos.runtime.commands import plan, required_access
from pypaxos.runtime.plans import Ops
from pypaxos.runtime.string_commands import redis_substring


def test_set_options() -> None:
    store = PlannedStore()
    assert store.call("SET", "k", "v", "XX") == b"$-1\r\n"
    assert store.call("SET", "k", "v", "nx") == b"+OK\r\n"
    assert store.call("SET", "k", "w", "NX") == b"$-1\r\n"
    assert store.call("SET", "k", "w", "XX", "GET") == b"$1\r\nv\r\n"
    assert store.call("SET", "k", "x", "GET", "KEEPTTL") == b"$1\r\nw\r\n"
    assert store.call("SET", "k", "x", "NX", "XX") == b"-ERR syntax error\r\n"
    assert store.call("SET", "k", "x", "BOGUS") == b"-ERR syntax error\r\n"
    assert store.call("SET", "k", "x", "EX", "0") == (
        b"-ERR invalid expire time in 'set' command\r\n"
    )
    assert store.call("SET", "k", "x", "EX", "1", "PX", "5") == b"-ERR syntax error\r\n"
    assert store.call("SET", "k", "x", "EX", "1", "KEEPTTL") == b"-ERR syntax error\r\n"
    assert store.call("SET", "k", "x", "PX") == b"-ERR syntax error\r\n"
    assert store.call("SETNX", "k", "y") == b":0\r\n"
    assert store.call("SETNX", "n", "y") == b":1\r\n"
    assert store.call("GETSET", "n", "z") == b"$1\r\ny\r\n"
    assert store.call("GETDEL", "n") == b"$1\r\nz\r\n"
    assert store.call("GETDEL", "n") == b"$-1\r\n"


def test_plans_are_one_log_command() -> None:
    def ops(*args: bytes) -> tuple[object, ...]:
        planned = plan(list(args))
        assert isinstance(planned, Ops)
        return planned.ops

    assert ops(b"MSET", b"a", b"1", b"b", b"2") == (MSet(((b"a", b"1"), (b"b", b"2"))),)
    assert ops(b"SET", b"k", b"v", b"NX", b"GET") == (SetWith(b"k", b"v", 1, True),)
    assert ops(b"INCRBY", b"k", b"1") == (Incr(b"k"),)  # what redis-py's incr() sends
    assert ops(b"INCRBY", b"k", b"5") == (IncrBy(b"k", 5),)
    assert ops(b"DECRBY", b"k", b"5") == (IncrBy(b"k", -5),)
    assert ops(b"STRLEN", b"k") == (Get(b"k"),)  # reads take the read path


def test_access_reads_and_writes() -> None:
    for args in ([b"KEYS", b"*"], [b"DBSIZE"], [b"SCAN", b"0"], [b"STRLEN", b"k"], [b"TYPE", b"k"]):
        assert required_access(args[0], plan(args)) is Access.READ
    for args in ([b"FLUSHDB"], [b"MSET", b"a", b"b"], [b"RENAME", b"a", b"b"]):
        assert required_access(args[0], plan(args)) is Access.WRITE


def test_counters() -> None:
    store = PlannedStore()
    assert store.call("INCRBY", "n", "5") == b":5\r\n"
    assert store.call("DECR", "n") == b":4\r\n"
    assert store.call("DECRBY", "n", "10") == b":-6\r\n"
    assert store.call("DECRBY", "n", "-9223372036854775808") == (
        b"-ERR decrement would overflow\r\n"
    )
    assert store.call("INCRBY", "n", "1.5") == b"-ERR value is not an integer or out of range\r\n"
    assert store.call("INCRBYFLOAT", "n", "0.5") == b"$4\r\n-5.5\r\n"
    assert store.call("INCRBYFLOAT", "n", "x") == b"-ERR value is not a valid float\r\n"
    assert store.call("INCR", "n") == b"-ERR value is not an integer or out of range\r\n"


def test_string_ranges() -> None:
    store = PlannedStore()
    assert store.call("APPEND", "s", "Hello") == b":5\r\n"
    assert store.call("APPEND", "s", " World") == b":11\r\n"
    assert store.call("STRLEN", "s") == b":11\r\n"
    assert store.call("STRLEN", "none") == b":0\r\n"
    assert store.call("GETRANGE", "s", "0", "4") == b"$5\r\nHello\r\n"
    assert store.call("GETRANGE", "s", "-5", "-1") == b"$5\r\nWorld\r\n"
    assert store.call("GETRANGE", "none", "0", "-1") == b"$0\r\n\r\n"
    assert store.call("SETRANGE", "s", "6", "Redis") == b":11\r\n"
    assert store.call("GET", "s") == b"$11\r\nHello Redis\r\n"
    assert store.call("SETRANGE", "s", "-1", "x") == b"-ERR offset is out of range\r\n"
    assert store.call("GETRANGE", "s", "a", "1") == (
        b"-ERR value is not an integer or out of range\r\n"
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, -1, b"abcd"), (-100, 100, b"abcd"), (2, 1, b""), (-1, -2, b""), (3, 3, b"d"), (5, 9, b"")],
)
def test_redis_substring(start: int, end: int, expected: bytes) -> None:
    assert redis_substring(b"abcd", start, end) == expected


def test_keys_commands() -> None:
    store = PlannedStore()
    assert (
        store.call("MSET", "a", "1", "b")
        == b"-ERR wrong number of arguments for 'mset' command\r\n"
    )
    assert store.call("MSET", "a", "1", "b", "2") == b"+OK\r\n"
    assert store.call("MSETNX", "b", "3", "c", "4") == b":0\r\n"
    assert store.call("TYPE", "a") == b"+string\r\n"
    assert store.call("TYPE", "z") == b"+none\r\n"
    assert store.call("DBSIZE") == b":2\r\n"
    assert store.call("KEYS", "*") == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert store.call("RENAME", "z", "y") == b"-ERR no such key\r\n"
    assert store.call("RENAMENX", "a", "b") == b":0\r\n"
    assert store.call("RENAME", "a", "c") == b"+OK\r\n"
    first = min([b"b", b"c"], key=shard_of)  # the store's order: by shard (b is older)
    assert store.call("RANDOMKEY") == b"$1\r\n" + first + b"\r\n"
    assert store.call("UNLINK", "b", "c", "nope") == b":2\r\n"
    assert store.call("RANDOMKEY") == b"$-1\r\n"
    assert store.call("SET", "x", "1") == b"+OK\r\n"
    assert store.call("FLUSHDB", "ASYNC") == b"+OK\r\n"
    assert store.call("FLUSHALL", "NOW") == b"-ERR syntax error\r\n"
    assert store.call("DBSIZE") == b":0\r\n"


def test_scan_replies_and_options() -> None:
    store = PlannedStore()
    store.call("MSET", "a", "1", "b", "2")
    assert (
        store.call("SCAN", "0", "MATCH", "a", "COUNT", "100")
        == b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"
    )
    assert store.call("SCAN", "0", "TYPE", "hash") == b"*2\r\n$1\r\n0\r\n*0\r\n"
    assert store.call("SCAN", "x") == b"-ERR invalid cursor\r\n"
    assert store.call("SCAN", "0", "COUNT", "0") == b"-ERR syntax error\r\n"
    assert store.call("SCAN", "0", "COUNT") == b"-ERR syntax error\r\n"
    assert store.call("SCAN", "0", "LIMIT", "1") == b"-ERR syntax error\r\n"


def test_expiry_commands() -> None:
    store = PlannedStore()
    assert store.call("SET", "k", "v", "EX", "10") == b"+OK\r\n"
    assert store.call("TTL", "k") == b":10\r\n"
    assert store.call("PTTL", "k") == b":10000\r\n"
    store.now_ms += 9_400
    assert store.call("TTL", "k") == b":1\r\n"  # 600 ms left: Redis rounds to the nearest
    store.now_ms += 600
    assert store.call("GET", "k") == b"$-1\r\n"
    assert store.call("TTL", "k") == b":-2\r\n"
    assert store.call("SETEX", "s", "0", "v") == b"-ERR invalid expire time in 'setex' command\r\n"
    assert store.call("PSETEX", "s", "1500", "v") == b"+OK\r\n"
    assert store.call("PTTL", "s") == b":1500\r\n"
    assert store.call("PERSIST", "s") == b":1\r\n"
    assert store.call("TTL", "s") == b":-1\r\n"
    assert store.call("EXPIRE", "s", "x") == b"-ERR value is not an integer or out of range\r\n"
    assert store.call("EXPIRE", "s", "5", "XX") == b":0\r\n"  # no deadline yet
    assert store.call("EXPIRE", "s", "5", "GT") == b":0\r\n"  # none counts as infinite
    assert store.call("EXPIRE", "s", "5", "NX") == b":1\r\n"
    assert store.call("EXPIRE", "s", "9", "NX") == b":0\r\n"
    assert store.call("EXPIRE", "s", "9", "XX", "LT") == b":0\r\n"
    assert store.call("EXPIRE", "s", "9", "gt") == b":1\r\n"
    assert store.call("TTL", "s") == b":9\r\n"
    assert store.call("EXPIRE", "s", "1", "NX", "GT") == (
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
    )
    assert store.call("EXPIRE", "s", "1", "GT", "LT") == (
        b"-ERR GT and LT options at the same time are not compatible\r\n"
    )
    assert store.call("EXPIRE", "s", "1", "NOW") == b"-ERR Unsupported option NOW\r\n"
    assert store.call("PEXPIREAT", "s", str(store.now_ms + 250)) == b":1\r\n"
    assert store.call("PTTL", "s") == b":250\r\n"
    assert store.call("EXPIREAT", "s", "1") == b":1\r\n"  # in the past: deleted
    assert store.call("EXISTS", "s") == b":0\r\n"
    assert store.call("EXPIRE", "s", "5") == b":0\r\n"
    at = str(store.now_ms // 1000 + 100)
    assert store.call("SET", "a", "v", "EXAT", at, "GET") == b"$-1\r\n"
    assert store.call("SET", "a", "w", "KEEPTTL") == b"+OK\r\n"
    assert store.call("TTL", "a") in (b":100\r\n", b":99\r\n")
