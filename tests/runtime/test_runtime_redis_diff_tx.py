"""Differential test of transactions and scripts: two clients send the same random sequences
(``MULTI``/``EXEC``/``DISCARD``, ``WATCH`` with the other client writing in between, ``EVAL``,
``EVALSHA``, ``SCRIPT``, mixed with the string commands) to a real redis-server and to the
server's planning over one state machine; every reply must be equal, byte for byte.

Left out on purpose: ``TTL``/``PTTL``/``KEYS`` inside a transaction (compared loosely alone, see
``test_runtime_redis_diff``), scripts using ``math.random`` or ``tostring`` of a table (the
generator's seed and the serial numbers are pypaxos's, see ``kv.scripts``), unknown command
names (Redis 7.0 adds the first arguments to its error).
"""

from __future__ import annotations

import random
from hashlib import sha1

import pytest
from planned_store import PlannedStore
from test_runtime_redis_diff import (
    REDIS_SERVER,
    RawRedis,
    random_command,
    redis_port,
    sorted_array,
    ttl_kind,
)

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
__all__ = ["redis_port"]  # the fixture, imported for this module's tests

KEYS = ["a", "b", "c", "n"]
SCRIPTS = [
    "return redis.call('incr', KEYS[1])",
    "return redis.pcall('incr', KEYS[1])",
    "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])",
    "return {KEYS[1], ARGV[1], 3.7, -2.5, true, false, {ok='fine'}, {1, {2, 'x'}}}",
    "return {1, 2, nil, 4}",
    "return redis.call('mget', KEYS[1], 'zz')",
    "return redis.error_reply('MY bad')",
    "return redis.error_reply('bad')",
    "return redis.status_reply('FINE')",
    "return {err='custom error'}",
    "return redis.call('nosuchcommand')",
    "return redis.call('get')",
    "return redis.call('set', KEYS[1], {})",
    "error('boom')",
    "error({err='MINE custom'})",
    "local v = redis.call('get', KEYS[1])\nif v then return #v else return -1 end",
    "return redis.call('del', KEYS[1])",
    "return redis.call('exists', KEYS[1], KEYS[1])",
    "return redis.call('set', KEYS[1], 1.5)",
    "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'XX')",
    "x = 1",
    "return os",
    "return tostring(redis.call('get', KEYS[1]))",
    "return redis.call('expire', KEYS[1], 1000)",
    "return type(redis.call('get', 'nokey'))",
    "local ok, e = pcall(redis.call, 'incr', KEYS[1])\nreturn {ok and 1 or 0, e}",
    "return redis.call('ping')",
    "return redis.call('multi')",
    "return redis.sha1hex(ARGV[1])",
    "return string.format('%d-%s', #ARGV, string.upper(ARGV[1]))",
    "return tonumber(ARGV[1])",
    "if syntax error",
]
LOOSE = {"TTL", "PTTL", "KEYS", "SCAN", "RANDOMKEY"}


def script_command(rng: random.Random) -> list[str]:
    body = rng.choice(SCRIPTS)
    key, value = rng.choice(KEYS), rng.choice(["1", "x", "10", "abc"])
    kind = rng.randrange(10)
    if kind < 5:
        return ["EVAL", body, "1", key, value]
    if kind < 8:
        return ["EVALSHA", sha1(body.encode()).hexdigest(), "1", key, value]
    if kind == 8:
        return ["SCRIPT", "LOAD", body]
    if rng.random() < 0.3:
        return ["SCRIPT", "FLUSH"]
    return ["SCRIPT", "EXISTS", sha1(body.encode()).hexdigest(), "ff" * 20]


COLLECTION_WRITES = [
    ["HSET", "{key}", "f", "{value}"],
    ["HDEL", "{key}", "f"],
    ["LPUSH", "{key}", "{value}"],
    ["RPOP", "{key}"],
    ["SADD", "{key}", "{value}"],
    ["SREM", "{key}", "{value}"],
    ["ZADD", "{key}", "1", "{value}"],
    ["ZPOPMIN", "{key}"],
    ["BLPOP", "{key}", "0.01"],  # inside MULTI: one attempt, null if empty
    ["HGETALL", "{key}"],
    ["LRANGE", "{key}", "0", "-1"],
    ["ZRANGE", "{key}", "0", "-1", "WITHSCORES"],
    ["TYPE", "{key}"],
]


def collection_command(rng: random.Random) -> list[str]:
    """A collection write or read on the same keys: WATCH must see writes of every type,
    WRONGTYPE must match inside EXEC, and a blocking pop inside MULTI must not wait."""
    key, value = rng.choice(KEYS), rng.choice(["1", "x", "abc"])
    return [arg.format(key=key, value=value) for arg in rng.choice(COLLECTION_WRITES)]


def body_command(rng: random.Random) -> list[str]:
    while True:
        draw = rng.random()
        if draw < 0.25:
            command = script_command(rng)
        elif draw < 0.45:
            command = collection_command(rng)
        else:
            command = random_command(rng)
        if command[0] not in LOOSE:
            return command


def compare(command: list[str], expected: bytes, got: bytes, where: object) -> None:
    if command[0] in ("KEYS",):
        assert sorted_array(got) == sorted_array(expected), where
    elif command[0] in ("TTL", "PTTL"):
        assert ttl_kind(got) == ttl_kind(expected), where
    else:
        assert got == expected, where


@pytest.mark.parametrize("seed", range(4))
def test_same_replies_as_redis(redis_port: int, seed: int) -> None:
    rng = random.Random(seed)
    redis = [RawRedis(redis_port), RawRedis(redis_port)]
    first = PlannedStore()
    ours = [first, PlannedStore(first.machine, client_id=2)]
    try:
        assert redis[0].call("FLUSHALL") == b"+OK\r\n"
        assert redis[0].call("SCRIPT", "FLUSH") == b"+OK\r\n"
        steps: list[tuple[int, list[str]]] = []
        for _ in range(150):
            kind = rng.randrange(4)
            if kind == 0:
                steps.append((rng.randrange(2), body_command(rng)))
                continue
            who = rng.randrange(2)
            if kind == 1 or rng.random() < 0.5:
                steps.append((who, ["WATCH", *rng.sample(KEYS, rng.randrange(1, 3))]))
                if rng.random() < 0.5:  # the other client writes before or after MULTI
                    steps.append((1 - who, body_command(rng)))
                if rng.random() < 0.1:
                    steps.append((who, ["UNWATCH"]))
            steps.append((who, ["MULTI"]))
            for _ in range(rng.randrange(4)):
                steps.append((who, body_command(rng)))
                if rng.random() < 0.2:
                    steps.append((1 - who, body_command(rng)))
            if rng.random() < 0.1:
                steps.append((who, rng.choice([["GET"], ["MULTI"], ["WATCH", "a"]])))
            steps.append((who, ["DISCARD"] if rng.random() < 0.15 else ["EXEC"]))
        for step, (who, command) in enumerate(steps):
            expected, got = redis[who].call(*command), ours[who].call(*command)
            compare(command, expected, got, (seed, step, who, command))
        for key in KEYS:
            assert ours[0].call("GET", key) == redis[0].call("GET", key)
    finally:
        for connection in redis:
            connection.close()


@pytest.mark.parametrize(
    "command",
    [
        ["EXEC"],
        ["DISCARD"],
        ["UNWATCH"],
        ["EVAL", "return 1", "-1"],
        ["EVAL", "return 1", "x"],
        ["EVAL", "return 1", "3", "a"],
        ["EVALSHA", "abc", "0"],
        ["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
        ["SCRIPT", "FLUSH", "bad"],
        ["SCRIPT", "LOAD"],
        ["SCRIPT", "bad"],
        ["SCRIPT"],
        ["SCRIPT", "KILL"],
        ["SCRIPT", "LOAD", "syntax error"],
        ["EVAL", "return redis.call('set', 'a', 2^53)", "0"],
        ["EVAL", "return redis.call('set', 'a', 0.1)", "0"],
        ["EVAL_RO", "return redis.call('set', 'a', '1')", "0"],
        ["EVAL_RO", "return redis.pcall('set', 'a', '1')", "0"],
        ["EVAL_RO", "return {redis.call('get', 'a'), redis.call('ping')}", "0"],
        ["EVALSHA_RO", "ffffffffffffffffffffffffffffffffffffffff", "0"],
    ],
)
def test_edge_replies_as_redis(redis_port: int, command: list[str]) -> None:
    redis = RawRedis(redis_port)
    try:
        assert redis.call(*command) == PlannedStore().call(*command)
    finally:
        redis.close()
