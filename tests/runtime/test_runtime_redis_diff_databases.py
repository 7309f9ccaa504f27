"""Differential test of databases: two clients send the same random sequences to a real
redis-server and to the server's planning over one state machine (``PlannedStore``), drawing
``SELECT``, ``MOVE``, ``SWAPDB``, ``FLUSHDB``, ``FLUSHALL``, ``COPY ... DB`` among the string and
collection commands, ``WATCH``/``MULTI``/``EXEC`` (with ``SELECT`` queued inside) and scripts
that ``SELECT`` (their own database only, Redis 7); every reply must be equal, byte for byte,
in RESP2 and in RESP3, and at the end every database must hold the same keys and values.
``PYPAXOS_DIFF_SEEDS=n`` runs more seeds.

Left out on purpose, as in the other differential tests: ``TTL``/``PTTL`` (compared by kind),
``SCAN``/``RANDOMKEY`` (our order), ``KEYS`` inside ``EXEC`` (compared sorted only alone).
"""

from __future__ import annotations

import os
import random
import shlex

import pytest
from planned_store import PlannedStore
from test_runtime_redis_diff import REDIS_SERVER, RawRedis, random_command, redis_port
from test_runtime_redis_diff_collections import Resp3Redis
from test_runtime_redis_diff_tx import collection_command, compare

from pypaxos.runtime.replies import NULL_RESP2, NULL_RESP3

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
__all__ = ["redis_port"]  # the fixture, imported for this module's tests

KEYS = ["a", "b", "c", "n"]
DBS = ["0", "1", "2", "3", "1", "2", "15", "16", "-1", "x", "01"]  # mostly in range
LOOSE = {"TTL", "PTTL", "SCAN", "RANDOMKEY"}
SCRIPTS = [
    "redis.call('select', ARGV[1]) return redis.call('incr', KEYS[1])",
    "redis.call('select', ARGV[1]) redis.call('set', KEYS[1], 'x') return redis.call('dbsize')",
    "return redis.pcall('select', 'x')",
    "return redis.pcall('select', '99')",
    "return redis.call('get', KEYS[1])",
]


def database_command(rng: random.Random) -> list[str]:
    key, other, db = rng.choice(KEYS), rng.choice(KEYS), rng.choice(DBS)
    commands = [
        ["SELECT", db],
        ["SELECT", db],
        ["MOVE", key, db],
        ["SWAPDB", rng.choice(DBS), rng.choice(DBS)],
        ["COPY", key, other, "DB", db],
        ["COPY", key, other, "DB", db, "REPLACE"],
        ["COPY", key, other],
        ["DBSIZE"],
        ["KEYS", "*"],
        ["EXISTS", key],
        ["FLUSHDB"] if rng.random() < 0.3 else ["DBSIZE"],
        ["FLUSHALL"] if rng.random() < 0.1 else ["DBSIZE"],
        ["EVAL", rng.choice(SCRIPTS), "1", key, rng.choice(DBS[:4])],
    ]
    return rng.choice(commands)


def body_command(rng: random.Random, in_multi: bool = False) -> list[str]:
    while True:
        draw = rng.random()
        if draw < 0.4:
            command = database_command(rng)
        elif draw < 0.6:
            command = collection_command(rng)
        else:
            command = random_command(rng)
        if command[0] in LOOSE:
            continue
        if in_multi and command[0] == "KEYS":  # inside EXEC's array: not sorted by compare
            continue
        if command[0] == "RENAME" or command[0] == "RENAMENX":
            command = [command[0], command[1], rng.choice(KEYS)]
        return command


def random_steps(rng: random.Random, count: int) -> list[tuple[int, list[str]]]:
    steps: list[tuple[int, list[str]]] = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind < 3:
            steps.append((rng.randrange(2), body_command(rng)))
            continue
        who = rng.randrange(2)
        if kind == 3:
            steps.append((who, ["WATCH", *rng.sample(KEYS, rng.randrange(1, 3))]))
            if rng.random() < 0.6:  # the other client writes, maybe in another database
                steps.append((1 - who, body_command(rng)))
        steps.append((who, ["MULTI"]))
        for _ in range(rng.randrange(5)):
            steps.append((who, body_command(rng, in_multi=True)))
        steps.append((who, ["DISCARD"] if rng.random() < 0.1 else ["EXEC"]))
    return steps


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("seed", range(int(os.environ.get("PYPAXOS_DIFF_SEEDS", "3"))))
def test_same_replies_as_redis(redis_port: int, seed: int, protocol: int) -> None:
    rng = random.Random(seed)
    redis = [Resp3Redis(redis_port, protocol), Resp3Redis(redis_port, protocol)]
    null = NULL_RESP3 if protocol == 3 else NULL_RESP2
    first = PlannedStore(null=null)
    ours = [first, PlannedStore(first.machine, client_id=2, null=null)]
    try:
        assert redis[0].call("FLUSHALL") == b"+OK\r\n"
        for step, (who, command) in enumerate(random_steps(rng, 200)):
            expected, got = redis[who].call(*command), ours[who].call(*command)
            compare(command, expected, got, (seed, step, who, command))
        for db in range(16):
            assert ours[0].call("SELECT", str(db)) == redis[0].call("SELECT", str(db))
            assert ours[0].call("DBSIZE") == redis[0].call("DBSIZE"), db
            for key in KEYS:
                assert ours[0].call("TYPE", key) == redis[0].call("TYPE", key), (db, key)
                if ours[0].call("TYPE", key) == b"+string\r\n":
                    assert ours[0].call("GET", key) == redis[0].call("GET", key), (db, key)
    finally:
        for connection in redis:
            connection.close()


@pytest.mark.parametrize(
    "script",
    [
        "SELECT 16; SELECT -1; SELECT x; SELECT 2147483648; SELECT -2147483648",
        "SET k 1; MOVE k 0; MOVE k 16; MOVE k 1; MOVE k 2147483648",
        "SET k 1; MOVE k 1; SET k 2; MOVE k 1; SELECT 1; GET k",
        "SWAPDB 0 16; SWAPDB x 0; SWAPDB 0 y; SWAPDB 3 3; SWAPDB 2147483648 0",
        "SET k 1; COPY k k; COPY k k DB 0; COPY k k DB 1; COPY k k DB 1; COPY k j DB 99",
        "SET k 1; EXPIRE k 1000; MOVE k 2; SELECT 2; TTL k",
        "MULTI; SELECT 1; SET k v; SELECT 99; EXEC; GET k",
        "WATCH k; SET k v; MULTI; SELECT 1; SET a 1; EXEC; SET x 1; DBSIZE; SELECT 1; DBSIZE",
        "WATCH k; MULTI; SELECT 1; SET a 1; EXEC; SET x 1; DBSIZE; SELECT 0; DBSIZE",
        "SELECT 1; SET k v; SWAPDB 1 0; GET k; SELECT 0; GET k",
        "SELECT 4; SET k v; FLUSHDB x; FLUSHALL ASYNC; DBSIZE",
        "SELECT 1; EVAL \"redis.call('select', '2') return redis.call('set', 'k', 'v')\" 0; GET k",
    ],
)
def test_edge_replies_as_redis(redis_port: int, script: str) -> None:
    redis = RawRedis(redis_port)
    ours = PlannedStore()
    try:
        assert redis.call("FLUSHALL") == b"+OK\r\n"
        for command in [shlex.split(part) for part in script.split("; ")]:
            assert ours.call(*command) == redis.call(*command), command
    finally:
        redis.close()
