"""``PAXOS.BACKUP`` on a real node with users: an admin saves a backup that loads back to the
node's state; a read-only user is refused; the node's spool is gone afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError
from runtime_helpers import port_of, retry, write_cluster

from pypaxos.cli.snapshot_save import SaveError, save
from pypaxos.kv import KVStateMachine
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.auth import hash_password
from pypaxos.runtime.backup import SPOOL_NAME, BackupPort
from pypaxos.runtime.config import load_config
from pypaxos.runtime.restore import load_backup
from pypaxos.runtime.router import Router

USERS = f"""
[[users]]
name = "ops"
role = "admin"
password_hash = "{hash_password("backup please")}"

[[users]]
name = "reader"
role = "read-only"
password_hash = "{hash_password("just looking")}"
"""


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[NodeApp]:
    config = load_config(write_cluster(tmp_path, nodes=1, extra="state_digest = true\n" + USERS))
    node = NodeApp(config, 1)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.mark.asyncio
async def test_an_admin_saves_what_the_node_holds(app: NodeApp, tmp_path: Path) -> None:
    port = port_of(app.member.client)
    client = aioredis.Redis(port=port, username="ops", password="backup please")
    try:
        await retry(lambda: client.set("k0", "v"))
        for i in range(1, 200):
            await client.set(f"k{i}", "v" * i)
        await client.rpush("list", "a", "b")
    finally:
        await client.aclose()
    path = tmp_path / "b.pxb"
    header, size = await save(path, [app.member.client], None, ("ops", "backup please"), 10.0)
    assert size == path.stat().st_size and header.keys == 201
    _, loaded = load_backup(path)
    assert app.driver is not None
    machine = app.driver.node.replica.machine
    assert isinstance(machine, KVStateMachine)
    assert loaded.get(b"k150") == b"v" * 150 and loaded.stored_keys == machine.stored_keys
    digest = machine.state_digest()
    assert digest is not None and header.state_digest == digest.hex()  # nothing written since
    spool = app.dir / SPOOL_NAME
    assert not spool.exists() or not any(spool.iterdir())


@pytest.mark.asyncio
async def test_a_read_only_user_may_not_take_a_backup(app: NodeApp, tmp_path: Path) -> None:
    port = port_of(app.member.client)
    client = aioredis.Redis(port=port, username="reader", password="just looking")
    try:
        with pytest.raises(NoPermissionError):
            await retry(lambda: client.execute_command("PAXOS.BACKUP", "BEGIN"))
    finally:
        await client.aclose()
    with pytest.raises(SaveError, match="refused"):
        await save(tmp_path / "b.pxb", [app.member.client], None, ("reader", "just looking"), 5)
    assert not list(tmp_path.glob("b.pxb*"))


@pytest.mark.asyncio
async def test_a_node_without_a_running_digest_still_backs_up_with_one(tmp_path: Path) -> None:
    """No running digest (the default): INFO shows none; the backup's child computes it."""
    config = load_config(write_cluster(tmp_path, nodes=1))
    assert not config.state_digest
    app = NodeApp(config, 1)
    await app.start()
    try:
        client = aioredis.Redis(port=port_of(app.member.client))
        try:
            await retry(lambda: client.set("k0", "v"))
            await client.sadd("set", "a", "b")
            info = await client.info("paxos")
        finally:
            await client.aclose()
        assert "state_digest" not in info and "paxos_role" in info
        header, _ = await save(tmp_path / "b.pxb", [app.member.client], None, None, 10.0)
        assert app.driver is not None
        machine = app.driver.node.replica.machine
        assert isinstance(machine, KVStateMachine) and machine.state_digest() is None
        assert header.state_digest == machine.full_digest().hex()
        _, loaded = load_backup(tmp_path / "b.pxb")  # checks the digest against the state
        assert loaded.stored_keys == 2
    finally:
        await app.stop()


def test_a_previous_runs_spool_is_removed_at_start_and_the_spool_at_close(
    tmp_path: Path,
) -> None:
    # Removal imports ``shutil`` on first use only; a leftover spool still goes at start.
    leftover = tmp_path / SPOOL_NAME / "old-backup"
    leftover.mkdir(parents=True)
    (leftover / "chunk").write_bytes(b"half a backup")
    port = BackupPort(1, "cluster", cast(Router, None), tmp_path)
    assert not (tmp_path / SPOOL_NAME).exists()
    (tmp_path / SPOOL_NAME).mkdir()
    port.close()
    assert not (tmp_path / SPOOL_NAME).exists()
    BackupPort(1, "cluster", cast(Router, None), tmp_path).close()  # nothing to remove: fine
