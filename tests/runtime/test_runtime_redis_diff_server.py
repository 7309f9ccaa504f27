"""Differential test of the server and connection commands: the same commands to a real
redis-server and to a one-node pypaxos cluster, replies compared byte for byte in RESP2 and
RESP3, and every command pypaxos implements described by ``COMMAND INFO`` as Redis describes it
(arity, ``write``/``readonly``, key positions).

Exceptions, on purpose: ``COMMAND COUNT`` / ``LIST`` (pypaxos has fewer commands),
``CLIENT LIST|INFO`` (ids, addresses, ages), ``TIME``, ``INFO`` figures and ``CONFIG SET`` of
a setting Redis may change but pypaxos fixes at start (``appendonly``, ``save``...), and
``WAIT`` (Redis counts connected replicas; a one-node cluster and a replica-less Redis both
answer 0), and ``CLIENT SETINFO`` / ``CLIENT NO-TOUCH``, which pypaxos accepts as Redis 7.2
does (redis-py sends ``SETINFO`` on connect) where 7.0 answers an unknown subcommand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from runtime_helpers import port_of, write_cluster
from test_runtime_redis_diff import REDIS_SERVER, redis_port  # noqa: F401  (the fixture)
from test_runtime_redis_diff_collections import Resp3Redis

from pypaxos.runtime.admin_commands import command_names
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

COMMANDS: list[list[str]] = [
    ["ECHO", "hello"],
    ["ECHO"],
    ["PING", "x"],
    ["GETEX", "k"],
    ["SET", "k", "v"],
    ["GETEX", "k", "EX", "100"],
    ["TTL", "k"],
    ["GETEX", "k", "PERSIST"],
    ["TTL", "k"],
    ["GETEX", "k", "PX", "0"],
    ["GETEX", "k", "EX", "10", "PX", "5"],
    ["GETEX", "k", "FOO"],
    ["GETEX", "k", "PXAT", "1"],
    ["EXISTS", "k"],
    ["GETEX", "missing", "EX", "5"],
    ["LPUSH", "l", "a"],
    ["GETEX", "l"],
    ["CLIENT", "SETNAME", "me"],
    ["CLIENT", "GETNAME"],
    ["CLIENT", "NO-EVICT", "on"],
    ["CLIENT", "NO-EVICT", "maybe"],
    ["CLIENT", "KILL", "ID", "999999"],
    ["CLIENT", "KILL", "127.0.0.1:1"],
    ["CLIENT", "SETNAME", "a b"],
    ["CONFIG", "GET", "maxmemory-policy"],
    ["CONFIG", "GET", "save"],
    ["CONFIG", "SET", "maxclients", "100"],
    ["CONFIG", "GET", "maxclients"],
    ["CONFIG", "SET", "maxclients"],
    ["CONFIG", "SET", "no-such-setting", "1"],
    ["CONFIG", "SET", "notify-keyspace-events", "Kx"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "E$gKm"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "Kq"],
    ["CONFIG", "SET", "notify-keyspace-events", ""],
    ["CONFIG", "SET", "maxclients", "100", "maxclients", "200"],
    ["CONFIG", "SET", "maxclients", "0"],
    ["CLIENT", "LIST", "ID", "x"],
    ["CLIENT", "KILL", "ID", "0"],
    ["CLIENT", "KILL", "SKIPME", "maybe"],
    ["CLIENT", "KILL", "ID"],
    ["RESET", "x"],
    ["TIME", "x"],
    ["CONFIG", "RESETSTAT"],
    ["WAIT", "0", "0"],
    ["WAIT", "0", "-1"],
    ["WAIT", "x", "0"],
    ["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
    ["COMMAND", "GETKEYS", "GET", "a"],
    ["COMMAND", "GETKEYS", "EVAL", "return 1", "2", "x", "y", "z"],
    ["COMMAND", "GETKEYS", "RENAME", "a", "b"],
    ["COMMAND", "GETKEYS", "BLPOP", "a", "b", "0"],
    ["COMMAND", "GETKEYS", "PING"],
    ["RESET"],
    ["CLIENT", "GETNAME"],
    ["MULTI"],
    ["SET", "t", "1"],
    ["RESET"],  # runs at once, discarding the transaction
    ["EXEC"],
    ["EXISTS", "t"],
]


@pytest_asyncio.fixture
async def pypaxos_port(tmp_path: Path) -> AsyncIterator[int]:
    app = NodeApp(load_config(write_cluster(tmp_path, nodes=1)), 1)
    await app.start()
    try:
        async with asyncio.timeout(10):
            while not app.is_leader:
                await asyncio.sleep(0.02)
        yield port_of(app.member.client)
    finally:
        await app.stop()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_same_replies_as_redis(redis_port: int, pypaxos_port: int, protocol: int) -> None:  # noqa: F811
    def run(port: int) -> list[bytes]:
        client = Resp3Redis(port, protocol)
        try:
            client.call("FLUSHALL")
            return [client.call(*command) for command in COMMANDS]
        finally:
            client.close()

    expected = await asyncio.to_thread(run, redis_port)
    got = await asyncio.to_thread(run, pypaxos_port)
    for command, theirs, ours in zip(COMMANDS, expected, got, strict=True):
        assert ours == theirs, command


def _info_fields(reply: bytes) -> tuple[bytes, int, set[bytes], tuple[int, int, int]]:
    """(name, arity, write/readonly flags, key positions) from one RESP2 ``COMMAND INFO``."""
    lines = reply.split(b"\r\n")
    name, arity = lines[3], int(lines[4][1:])  # lines 0-2: "*1", "*10", the name's "$n"
    flag_count = int(lines[5][1:])
    flags = {line[1:] for line in lines[6 : 6 + flag_count]} & {b"write", b"readonly"}
    first, last, step = (int(line[1:]) for line in lines[6 + flag_count : 9 + flag_count])
    return name, arity, flags, (first, last, step)


async def test_command_info_describes_commands_as_redis(
    redis_port: int,  # noqa: F811
    pypaxos_port: int,
) -> None:
    names = [n.decode() for n in command_names() if not n.startswith(b"paxos.") and n != b"cas"]

    def run(port: int) -> list[bytes]:
        client = Resp3Redis(port, 2)
        try:
            return [client.call("COMMAND", "INFO", name) for name in names]
        finally:
            client.close()

    expected = await asyncio.to_thread(run, redis_port)
    got = await asyncio.to_thread(run, pypaxos_port)
    different = []
    for name, theirs, ours in zip(names, expected, got, strict=True):
        if theirs == b"*1\r\n*-1\r\n":
            continue  # not a Redis 7.0 command
        if _info_fields(theirs) != _info_fields(ours):
            different.append((name, _info_fields(theirs), _info_fields(ours)))
    assert different == [], "\n".join(map(str, different))
