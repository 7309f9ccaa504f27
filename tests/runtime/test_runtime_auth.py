"""Client authentication on a real node, with redis-py and raw RESP: AUTH, HELLO AUTH, roles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from runtime_helpers import port_of, retry, write_cluster

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.auth import Role, User, Users, hash_password, password_matches
from pypaxos.runtime.config import ConfigError, load_config

USERS = f"""
[[users]]
name = "default"
role = "read-write"
password_hash = "{hash_password("open sesame")}"

[[users]]
name = "reader"
role = "read-only"
password_hash = "{hash_password("just looking")}"
"""


@pytest_asyncio.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    config = load_config(write_cluster(tmp_path, nodes=1, extra=USERS))
    app = NodeApp(config, 1)
    await app.start()
    try:
        yield port_of(app.member.client)
    finally:
        await app.stop()


@pytest.mark.asyncio
async def test_nothing_runs_before_authentication(port: int) -> None:
    client = aioredis.Redis(port=port)
    try:
        with pytest.raises(AuthenticationError):
            await client.get("k")
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_the_password_of_the_default_user_opens_it(port: int) -> None:
    client = aioredis.Redis(port=port, password="open sesame")
    try:
        assert await retry(lambda: client.set("k", "v"))
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_wrong_password_is_refused(port: int, protocol: int) -> None:
    client = aioredis.Redis(port=port, username="default", password="guess", protocol=protocol)
    try:
        with pytest.raises(AuthenticationError):
            await client.ping()
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_hello_auth_and_a_read_only_role(port: int) -> None:
    writer = aioredis.Redis(port=port, password="open sesame")
    reader = aioredis.Redis(port=port, username="reader", password="just looking", protocol=3)
    try:
        assert await retry(lambda: writer.set("k", "v"))
        assert await reader.get("k") == b"v"
        with pytest.raises(NoPermissionError):
            await reader.set("k", "w")
        with pytest.raises(NoPermissionError):
            await reader.execute_command("PAXOS.REQ", 1, 1, "SET", "k", "w")
        assert await writer.get("k") == b"v"
    finally:
        await writer.aclose()
        await reader.aclose()


@pytest.mark.asyncio
async def test_commands_pipelined_behind_auth_wait_for_its_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET k\r\nAUTH nope\r\nGET k\r\nAUTH reader just\\ looking\r\n"
            b"AUTH reader justlooking\r\n*2\r\n$4\r\nAUTH\r\n$11\r\nopen sesame\r\n"
            b"SET k v\r\nGET k\r\n"
        )
        expected = [
            b"-NOAUTH",
            b"-WRONGPASS",
            b"-NOAUTH",
            b"-ERR wrong number",
            b"-WRONGPASS",
            b"+OK",
            b"+OK",
            b"$1",
        ]
        for prefix in expected:
            async with asyncio.timeout(10):
                line = await reader.readline()
            assert line.startswith(prefix), (prefix, line)
        assert await reader.readline() == b"v\r\n"
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_auth_on_a_cluster_without_users_is_an_error_not_a_pass(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, nodes=1))
    app = NodeApp(config, 1)
    await app.start()
    client = aioredis.Redis(port=port_of(app.member.client), password="anything")
    try:
        with pytest.raises(ResponseError):
            await client.ping()
    finally:
        await client.aclose()
        await app.stop()


def test_passwords_are_hashed_and_checked_in_constant_form() -> None:
    stored = hash_password("pw")
    assert "pw" not in stored.split("$")[-1] and stored != hash_password("pw")  # salted
    assert password_matches(stored, b"pw") and not password_matches(stored, b"pW")
    users = Users((User("a", Role.ADMIN, stored),))
    assert users.authenticate("a", b"pw") == User("a", Role.ADMIN, stored)
    assert users.authenticate("b", b"pw") is None
    assert users.authenticate(None, b"pw") is None  # no user named default


def test_protected_mode_refuses_an_open_port_without_users(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, nodes=1)
    text = path.read_text().replace('client = "127.0.0.1:', 'client = "0.0.0.0:')
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path).check_protected(1)
    assert caught.value.key == "protected_mode"
    path.write_text("protected_mode = false\n" + text)
    load_config(path).check_protected(1)
    head, tail = text.split("[[members]]", 1)
    path.write_text(head + USERS + "\n[[members]]" + tail)
    load_config(path).check_protected(1)


@pytest.mark.asyncio
async def test_a_read_only_user_cannot_write_through_a_transaction_or_a_script(port: int) -> None:
    writer = aioredis.Redis(port=port, password="open sesame")
    reader = aioredis.Redis(port=port, username="reader", password="just looking")
    try:
        assert await retry(lambda: writer.set("k", "v"))
        async with reader.pipeline() as pipe:  # SET is refused when queued: EXEC aborts
            pipe.get("k").set("k", "mine")
            with pytest.raises((NoPermissionError, ResponseError)):
                await pipe.execute()
        async with reader.pipeline() as pipe:
            pipe.get("k")
            assert await pipe.execute() == [b"v"]
        with pytest.raises(NoPermissionError):
            await reader.eval("return redis.call('set', 'k', 'mine')", 0)
        assert await reader.eval_ro("return redis.call('get', KEYS[1])", 1, "k") == b"v"
        with pytest.raises(ResponseError, match="read-only scripts"):
            await reader.eval_ro("return redis.call('set', KEYS[1], 'mine')", 1, "k")
        assert await writer.get("k") == b"v"
    finally:
        await writer.aclose()
        await reader.aclose()
