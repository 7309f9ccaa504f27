"""Server and connection commands on a real 3-node cluster through redis-py: ``INFO``'s
Redis sections, ``CONFIG SET|RESETSTAT``, ``CLIENT LIST|INFO|KILL|SETINFO``, ``RESET``,
``WAIT``, ``GETEX`` and the unsupported families' unknown-command error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.exceptions import ResponseError
from runtime_helpers import RunningCluster, port_of, retry, write_cluster

from pypaxos.client.replies import parse_info
from pypaxos.runtime.config import load_config
from pypaxos.runtime.server_commands import UNSUPPORTED_FAMILIES

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RunningCluster]:
    running = await RunningCluster.start(load_config(write_cluster(tmp_path)))
    try:
        await running.wait_leader()
        yield running
    finally:
        await running.close()


async def _raw_info(port: int, *section: str) -> str:
    """``INFO`` as the server sends it (redis-py parses it into a dict)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(" ".join(("INFO", *section)).encode() + b"\r\n")
        size = int((await reader.readline())[1:])
        return (await reader.readexactly(size + 2))[:-2].decode()
    finally:
        writer.close()


async def test_info_has_redis_sections(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    port = port_of(cluster.apps[leader].member.client)
    client = cluster.client(leader)
    await retry(lambda: client.set("k", "v"))
    lines = (await _raw_info(port)).split("\r\n")
    headers = [line for line in lines if line.startswith("# ")]
    assert headers == [
        f"# {name}"
        for name in (
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "CPU",
            "Keyspace",
            "Paxos",
        )
    ]
    # Every field appears once: Replication's "role" is Redis's (master), Paxos's is its own.
    fields = [line.partition(":")[0] for line in lines if ":" in line]
    assert len(fields) == len(set(fields))
    parsed = parse_info("\r\n".join(lines))
    assert parsed["role"] == "master" and parsed["paxos_role"] == "leader"
    two = (await _raw_info(port, "clients", "CPU", "nosuch")).split("\r\n")
    assert [line for line in two if line.startswith("# ")] == ["# Clients", "# CPU"]
    info = await client.info("server")
    assert str(info["redis_version"]).startswith("7.")
    assert len(str(info["run_id"])) == 40
    assert info["arch_bits"] in (32, 64)
    assert info["tcp_port"] == port
    persistence = await client.info("persistence")
    assert persistence["aof_enabled"] == 1 and persistence["loading"] == 0
    assert (await client.info("replication"))["role"] == "master"
    before = (await client.info("stats"))["total_commands_processed"]
    for _ in range(5):
        await client.ping()
    after = (await client.info("stats"))["total_commands_processed"]
    assert after >= before + 6  # the pings and the INFO
    assert (await client.info("stats"))["total_connections_received"] >= 1
    await client.execute_command("CONFIG", "RESETSTAT")
    assert (await client.info("stats"))["total_commands_processed"] < after
    assert float((await client.info("cpu"))["used_cpu_user"]) > 0


async def test_config_get_set(cluster: RunningCluster) -> None:
    client = cluster.client(await cluster.wait_leader())
    assert await client.config_get("save") == {"save": ""}
    assert await client.config_get("appendonly") == {"appendonly": "yes"}
    assert await client.config_set("maxclients", 50) is True
    assert await client.config_get("maxclients") == {"maxclients": "50"}
    assert (await client.info("clients"))["maxclients"] == 50
    with pytest.raises(ResponseError, match="immutable"):
        await client.config_set("appendonly", "no")
    with pytest.raises(ResponseError, match="Unknown option"):
        await client.config_set("no-such-setting", "1")
    with pytest.raises(ResponseError, match="maxclients"):
        await client.config_set("maxclients", "lots")
    assert await client.config_set("notify-keyspace-events", "KEA") is True
    assert await client.config_get("notify-keyspace-events") == {
        "notify-keyspace-events": "AKE"
    }  # canonical


async def test_client_list_info_kill(cluster: RunningCluster) -> None:
    leader = await cluster.wait_leader()
    me = cluster.client(leader)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port_of(cluster.apps[leader].member.client)
    )
    try:
        writer.write(b"CLIENT SETNAME other\r\n")
        assert await reader.readline() == b"+OK\r\n"
        await me.client_setname("me")
        await me.execute_command("CLIENT", "SETINFO", "LIB-NAME", "tester")
        names = {entry["name"]: entry for entry in await me.client_list()}
        assert {"me", "other"} <= set(names)
        assert names["me"]["lib-name"] == "tester"
        mine = await me.client_info()
        assert mine["name"] == "me" and str(mine["id"]) == names["me"]["id"]
        assert await me.client_kill_filter(_id=names["other"]["id"]) == 1
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server
        assert "other" not in {entry["name"] for entry in await me.client_list()}
    finally:
        writer.close()
    # SKIPME yes (the default) spares the caller.
    assert await me.execute_command("CLIENT", "KILL", "ID", names["me"]["id"]) == 0
    with pytest.raises(ResponseError, match="No such client"):
        await me.execute_command("CLIENT", "KILL", "127.0.0.1:1")
    with pytest.raises(ResponseError, match="unknown subcommand"):
        await me.execute_command("CLIENT", "NO-SUCH")


async def test_reset_and_wait(cluster: RunningCluster) -> None:
    client = cluster.client(await cluster.wait_leader())
    await client.client_setname("named")
    assert await client.execute_command("RESET") in ("RESET", b"RESET")
    assert await client.client_getname() is None
    await retry(lambda: client.set("w", "1"))
    assert await client.execute_command("WAIT", 2, 0) == 1  # a majority of 3: one replica
    with pytest.raises(ResponseError, match="negative"):
        await client.execute_command("WAIT", 1, -1)


async def test_getex(cluster: RunningCluster) -> None:
    client = cluster.client(await cluster.wait_leader())
    await retry(lambda: client.set("g", "v"))
    assert await client.getex("g") == b"v"
    assert await client.ttl("g") == -1
    assert await client.getex("g", ex=100) == b"v"
    assert 0 < await client.ttl("g") <= 100
    assert await client.getex("g", persist=True) == b"v"
    assert await client.ttl("g") == -1
    assert await client.getex("g", pxat=1) == b"v"  # a past deadline deletes the key
    assert await client.exists("g") == 0
    assert await client.getex("missing", ex=5) is None
    with pytest.raises(ResponseError, match="syntax"):
        await client.execute_command("GETEX", "g", "EX")


async def test_unsupported_families_say_so(cluster: RunningCluster) -> None:
    client = cluster.client(await cluster.wait_leader())
    for name in (b"XADD", b"GEOADD", b"PFADD", b"SETBIT"):
        with pytest.raises(ResponseError) as raised:
            await client.execute_command(name.decode(), "k", "1", "2")
        assert UNSUPPORTED_FAMILIES[name] in str(raised.value)
    with pytest.raises(ResponseError) as raised:
        await client.execute_command("NOSUCHCOMMAND")
    assert "not supported" not in str(raised.value)
