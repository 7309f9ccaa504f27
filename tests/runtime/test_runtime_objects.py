"""Replicated objects on real nodes in this event loop: the ``PAXOS.CALL``/``PAXOS.QUERY``
port (``runtime.objects_port``), pypaxos's client ``call``/``query``/``proxy``, and the embedded
member (``runtime.embedded.serve_async``/``serve``).  Real TCP on loopback, real storage."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from runtime_helpers import port_of, write_cluster

from pypaxos.client import AsyncClient, Client
from pypaxos.objects import (
    CallRejected,
    CommandRaised,
    Counter,
    Dict,
    Group,
    List,
    ObjectMachine,
    encode_call,
    unwrap,
)
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.auth import hash_password
from pypaxos.runtime.config import ConfigError, load_config
from pypaxos.runtime.embedded import CallTimedOut, Replicated, serve, serve_async


async def start_apps(path: Path, factory: Any) -> dict[int, NodeApp]:
    config = load_config(path)
    apps = {
        m.id: NodeApp(config, m.id, request_timeout_s=3.0, machine_factory=factory)
        for m in config.members
    }
    for app in apps.values():
        await app.start()
    return apps


async def stop_apps(apps: dict[int, NodeApp]) -> None:
    for app in apps.values():
        await app.stop()


def addresses(apps: dict[int, NodeApp]) -> list[str]:
    return [app.member.client for app in apps.values()]


@pytest.mark.asyncio
async def test_a_client_calls_a_served_counter_through_any_node(tmp_path: Path) -> None:
    apps = await start_apps(write_cluster(tmp_path), lambda: ObjectMachine(Counter()))
    try:
        # A client of one follower only: every call is forwarded to the leader.
        async with AsyncClient([addresses(apps)[2]], follow_leader=False, timeout_s=5) as client:
            assert await client.call("add", 5) == 5
            assert await client.call("add", 2) == 7
            assert await client.query("get") == 7
            proxy = client.proxy(Counter)
            assert await proxy.add(1) == 8
            assert await proxy.get() == 8
            with pytest.raises(CallRejected):
                await client.call("no_such_method")
        counts = [app.objects.calls for app in apps.values() if app.objects is not None]
        assert sum(counts) == 4
    finally:
        await stop_apps(apps)


@pytest.mark.asyncio
async def test_a_retried_call_is_applied_once(tmp_path: Path) -> None:
    apps = await start_apps(write_cluster(tmp_path), lambda: ObjectMachine(Counter()))
    try:
        port = port_of(addresses(apps)[0])
        redis = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        call = encode_call(77, 1, "add", (3,))
        first = await redis.execute_command("PAXOS.CALL", call)
        again = await redis.execute_command("PAXOS.CALL", call)  # the same bytes: a retry
        assert first == again
        query = encode_call(77, 0, "get")
        assert unwrap(await redis.execute_command("PAXOS.QUERY", query)) == 3
        await redis.aclose()
    finally:
        await stop_apps(apps)


@pytest.mark.asyncio
async def test_a_non_kv_node_refuses_kv_commands_and_bad_calls(tmp_path: Path) -> None:
    apps = await start_apps(write_cluster(tmp_path), lambda: ObjectMachine(Counter()))
    try:
        port = port_of(addresses(apps)[0])
        redis = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        assert await redis.ping()
        with pytest.raises(ResponseError, match=r"PAXOS\.CALL"):
            await redis.set("k", "v")
        with pytest.raises(ResponseError, match=r"PAXOS\.CALL"):
            await redis.execute_command("PAXOS.REQ", 1, 1, "SET", "k", "v")
        with pytest.raises(ResponseError, match="not a call"):
            await redis.execute_command("PAXOS.CALL", b"\xff\x00garbage")
        with pytest.raises(ResponseError, match="seq"):
            await redis.execute_command("PAXOS.CALL", encode_call(5, 0, "add", (1,)))
        with pytest.raises(ResponseError, match="wrong number"):
            await redis.execute_command("PAXOS.QUERY")
        info = await redis.info("paxos")
        assert info["paxos_role"] in ("leader", "follower", "candidate")
        assert info["machine"] == "replicated objects"
        await redis.aclose()
    finally:
        await stop_apps(apps)


@pytest.mark.asyncio
async def test_embedded_members_on_the_applications_loop(tmp_path: Path) -> None:
    path = write_cluster(tmp_path)
    async with (
        serve_async(Counter(), config=path, node_id=1) as one,
        serve_async(Counter(), config=path, node_id=2) as two,
        serve_async(Counter(), config=path, node_id=3) as three,
    ):
        assert await one.add(2) == 2
        assert await two.add(3) == 5
        assert await three.linearizable().get() == 5  # the read path: sees both
        results: list[tuple[Any, BaseException | None]] = []
        done = asyncio.Event()

        def callback(value: Any, error: BaseException | None) -> None:
            results.append((value, error))
            done.set()

        assert one.add(10, callback=callback) is None  # fire and forget
        await asyncio.wait_for(done.wait(), 10)
        assert results == [(15, None)]
        assert await one.linearizable().get() == 15
        await asyncio.wait_for(_until_local(three, 15), 10)  # applied there too, in time


async def _until_local(member: Replicated, value: int) -> None:
    while await member.get() != value:
        await asyncio.sleep(0.02)


def test_embedded_members_on_background_threads(tmp_path: Path) -> None:
    path = write_cluster(tmp_path)
    ready = threading.Barrier(3)
    finished = threading.Barrier(3)
    totals: dict[int, int] = {}
    errors: list[BaseException] = []

    def member(node_id: int) -> None:
        try:
            group = Group(hits=Counter(), names=Dict())
            with serve(group, config=path, node_id=node_id) as replicated:
                ready.wait(30)
                hits = replicated.member("hits")
                for _ in range(5):
                    hits.add(1)
                replicated.member("names").set(f"node{node_id}", node_id)
                finished.wait(30)
                totals[node_id] = hits.linearizable().get()
                ready.wait(30)  # nobody stops before everyone has read
        except BaseException as error:  # reported to the test thread below
            errors.append(error)
            ready.abort()
            finished.abort()

    threads = [threading.Thread(target=member, args=(n,)) for n in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert totals == {1: 15, 2: 15, 3: 15}


def test_a_command_that_raises_is_reported_and_a_blocking_client_calls(tmp_path: Path) -> None:
    path = write_cluster(tmp_path)

    async def main() -> None:
        apps = await start_apps(path, lambda: Group(store=Dict(), items=List()))
        try:
            done = asyncio.get_running_loop().run_in_executor(None, use_blocking_client, apps)
            await done
        finally:
            await stop_apps(apps)

    def use_blocking_client(apps: dict[int, NodeApp]) -> None:
        with Client(addresses(apps), timeout_s=5) as client:
            client.call("set", "a", 1, target="store")
            assert client.query("get", "a", target="store") == 1
            proxy = client.proxy(Dict, target="store")
            assert proxy.pop("a") == 1
            assert proxy.pop("a", "gone") == "gone"
            items = client.proxy(List, target="items")
            with pytest.raises(CommandRaised) as raised:
                items.pop()  # an IndexError in the method: a result, the same everywhere
            assert raised.value.type_name == "IndexError"

    asyncio.run(main())


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


@pytest.mark.asyncio
async def test_calls_need_a_user_that_may_write_and_queries_one_that_may_read(
    tmp_path: Path,
) -> None:
    apps = await start_apps(
        write_cluster(tmp_path, nodes=1, extra=USERS), lambda: ObjectMachine(Counter())
    )
    try:
        port = port_of(addresses(apps)[0])
        anonymous = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        with pytest.raises(AuthenticationError):
            await anonymous.execute_command("PAXOS.QUERY", encode_call(9, 0, "get"))
        await anonymous.aclose()
        reader = aioredis.Redis(
            host="127.0.0.1", port=port, username="reader", password="just looking"
        )
        assert unwrap(await reader.execute_command("PAXOS.QUERY", encode_call(9, 0, "get"))) == 0
        with pytest.raises(NoPermissionError):
            await reader.execute_command("PAXOS.CALL", encode_call(9, 1, "add", (1,)))
        await reader.aclose()
        writer = aioredis.Redis(host="127.0.0.1", port=port, password="open sesame")
        call = encode_call(9, 1, "add", (4,))
        assert unwrap(await writer.execute_command("PAXOS.CALL", call)) == 4
        with pytest.raises(ResponseError, match="key-value command"):
            await writer.get("k")
        await writer.aclose()
    finally:
        await stop_apps(apps)


@pytest.mark.asyncio
async def test_queries_take_the_read_path_whatever_the_reads_setting(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, extra='reads = "log"')
    apps = await start_apps(path, lambda: ObjectMachine(Counter()))
    try:
        async with AsyncClient(addresses(apps), timeout_s=5) as client:
            assert await client.call("add", 6) == 6
            assert await client.query("get") == 6
    finally:
        await stop_apps(apps)


@pytest.mark.asyncio
async def test_a_client_renews_an_expired_session_and_runs_the_call_once(tmp_path: Path) -> None:
    apps = await start_apps(
        write_cluster(tmp_path), lambda: ObjectMachine(Counter(), session_ttl_commands=3)
    )
    try:
        async with (
            AsyncClient(addresses(apps), timeout_s=5) as idle,
            AsyncClient(addresses(apps), timeout_s=5) as busy,
        ):
            proxy = idle.proxy(Counter)
            assert await proxy.add(1) == 1
            assert await idle.call("add", 10) == 11
            for expected in (12, 13, 14, 15):  # four commands: both idle sessions expire
                assert await busy.call("add", 1) == expected
            assert await proxy.add(100) == 115  # refused as expired, then run once, renewed
            assert await idle.call("add", 1000) == 1115
            assert await busy.query("get") == 1115
    finally:
        await stop_apps(apps)


def test_without_a_majority_a_call_times_out_and_a_bad_member_does_not_start(
    tmp_path: Path,
) -> None:
    path = write_cluster(tmp_path)
    with pytest.raises(ConfigError), serve(Counter(), config=path, node_id=9):
        pass
    with serve(Counter(), config=path, node_id=1) as alone:  # two of three members never start
        with pytest.raises(CallTimedOut):
            alone.add(1, timeout_s=0.5)
        assert alone.get() == 0  # a local read needs no quorum
        answers: list[tuple[Any, BaseException | None]] = []
        finished = threading.Event()

        def callback(value: Any, error: BaseException | None) -> None:
            answers.append((value, error))
            finished.set()

        alone.add(1, timeout_s=0.3, callback=callback)
        assert finished.wait(10)
        assert answers[0][0] is None and isinstance(answers[0][1], CallTimedOut)

        nested: list[BaseException] = []
        nested_done = threading.Event()

        def calls_back_in(value: Any, error: BaseException | None) -> None:
            try:
                alone.get()  # a blocking call on the node's thread: refused, not a deadlock
            except RuntimeError as refused:
                nested.append(refused)
            nested_done.set()

        alone.get(callback=calls_back_in)
        assert nested_done.wait(10)
        assert len(nested) == 1
