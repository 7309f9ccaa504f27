"""A real 3-node cluster in one event loop with ``[tls]``: mutual TLS between the nodes, TLS on
the client port (redis-py over ``rediss``, pypaxos's clients, redis-cli and redis-benchmark
with ``--tls``) and on the metrics endpoint, and certificates reloaded without a restart."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from cryptography import x509
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from runtime_helpers import port_of, retry, write_cluster

from pypaxos.client import AsyncClient, Client
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import ClusterConfig, ConfigError, load_config
from pypaxos.transport.certs import issue_cluster

pytestmark = pytest.mark.asyncio

TLS_TABLE = """
[tls]
ca_file = "tls/ca.crt"
cert_file = "tls/node-{id}.crt"
key_file = "tls/node-{id}.key"
metrics = true
client_cert_file = "tls/client.crt"
client_key_file = "tls/client.key"
"""


class TlsCluster:
    def __init__(self, config: ClusterConfig, apps: dict[int, NodeApp], certs: Path) -> None:
        self.config = config
        self.apps = apps
        self.certs = certs
        self.clients: list[aioredis.Redis] = []

    def redis(self, node_id: int, *, certificate: bool = True, retries: int = 3) -> aioredis.Redis:
        port = port_of(self.apps[node_id].member.client)
        options: dict[str, object] = {"ssl_ca_certs": str(self.certs / "ca.crt")}
        if certificate:
            options["ssl_certfile"] = str(self.certs / "client.crt")
            options["ssl_keyfile"] = str(self.certs / "client.key")
        client = aioredis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            socket_timeout=10,
            retry=Retry(NoBackoff(), retries),
            **options,
        )
        self.clients.append(client)
        return client

    async def wait_leader(self, timeout_s: float = 15.0) -> int:
        async with asyncio.timeout(timeout_s):
            while True:
                leaders = [i for i, app in self.apps.items() if app.is_leader]
                if len(leaders) == 1:
                    return leaders[0]
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps.values():
            await app.stop()


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[TlsCluster]:
    config = load_config(write_cluster(tmp_path, metrics=True, extra=TLS_TABLE))
    certs = tmp_path / "tls"
    issue_cluster(certs, [(m.id, ["127.0.0.1"]) for m in config.members])
    apps = {m.id: NodeApp(config, m.id, request_timeout_s=3.0) for m in config.members}
    running = TlsCluster(config, apps, certs)
    try:
        for app in apps.values():
            await app.start()
        await running.wait_leader()
        yield running
    finally:
        await running.close()


async def test_a_tls_cluster_elects_a_leader_and_serves_rediss(cluster: TlsCluster) -> None:
    leader = await cluster.wait_leader()
    follower = next(i for i in cluster.apps if i != leader)
    writer, reader = cluster.redis(follower), cluster.redis(leader)
    assert await retry(lambda: writer.set("k", "v")) is True
    assert await reader.get("k") == b"v"
    assert await writer.incr("n") == 1
    # The peers really speak TLS 1.3 to each other.
    transport = cluster.apps[leader].transport
    assert transport is not None
    peer_writer = transport._peers[follower].writer
    assert peer_writer is not None
    assert peer_writer.get_extra_info("ssl_object").version() == "TLSv1.3"


async def test_clients_without_a_certificate_or_without_tls_are_refused(
    cluster: TlsCluster,
) -> None:
    anonymous = cluster.redis(1, certificate=False, retries=0)
    with pytest.raises((RedisConnectionError, OSError)):
        await anonymous.ping()
    plain = aioredis.Redis(
        host="127.0.0.1",
        port=port_of(cluster.apps[1].member.client),
        socket_timeout=3,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        with pytest.raises((RedisConnectionError, OSError)):
            await plain.ping()
    finally:
        await plain.aclose()


async def test_pypaxos_clients_take_an_ssl_context(cluster: TlsCluster) -> None:
    assert cluster.config.tls is not None
    context = cluster.config.tls.client_context()
    addresses = cluster.config.client_addresses
    async with AsyncClient(addresses, ssl=context, timeout_s=3.0) as client:
        await client.set("a", "1")
        assert await client.incr("c") == 1
        assert await client.get("a") == b"1"

    def blocking() -> bytes | None:
        with Client(addresses, ssl=context, timeout_s=3.0) as client:
            client.set("b", "2")
            return client.get("b")

    assert await asyncio.to_thread(blocking) == b"2"
    async with AsyncClient(addresses, timeout_s=0.5, retries=1) as plain:
        with pytest.raises(Exception):  # noqa: B017 - any failure: TLS is not spoken
            await plain.get("a")


async def test_metrics_are_served_over_https(cluster: TlsCluster) -> None:
    metrics = cluster.apps[1].member.metrics
    assert metrics is not None and cluster.config.tls is not None
    context = cluster.config.tls.client_context()

    def scrape() -> str:
        url = f"https://{metrics}/metrics"
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            body: bytes = response.read()
            return body.decode()

    assert "pypaxos_" in await asyncio.to_thread(scrape)


def _redis_tool_has_tls(tool: str) -> str | None:
    """Why ``tool`` cannot be used for the TLS tests, or None if it can."""
    path = shutil.which(tool)
    if path is None:
        return f"{tool} is not installed"
    run = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    if "--tls" not in run.stdout + run.stderr:
        return f"{tool} was built without TLS"
    return None


def _tool_tls_args(cluster: TlsCluster, node_id: int) -> list[str]:
    certs = cluster.certs
    return [
        "-h",
        "127.0.0.1",
        "-p",
        str(port_of(cluster.apps[node_id].member.client)),
        "--tls",
        "--cacert",
        str(certs / "ca.crt"),
        "--cert",
        str(certs / "client.crt"),
        "--key",
        str(certs / "client.key"),
    ]


async def _run(*argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_redis_cli_with_tls(cluster: TlsCluster) -> None:
    reason = _redis_tool_has_tls("redis-cli")
    if reason:
        pytest.skip(reason)
    leader = await cluster.wait_leader()
    args = _tool_tls_args(cluster, leader)
    code, output = await _run("redis-cli", *args, "SET", "cli", "yes")
    assert (code, output.strip()) == (0, "OK")
    code, output = await _run("redis-cli", *args, "GET", "cli")
    assert (code, output.strip()) == (0, "yes")


async def test_redis_benchmark_with_tls(cluster: TlsCluster) -> None:
    reason = _redis_tool_has_tls("redis-benchmark")
    if reason:
        pytest.skip(reason)
    leader = await cluster.wait_leader()
    args = _tool_tls_args(cluster, leader)
    bench = ("redis-benchmark", *args, "-t", "set,get", "-n", "2000", "-c", "4", "-P", "8")
    code, output = await _run(*bench, "--csv")
    assert code == 0, output
    rows = [line for line in output.splitlines() if line.startswith('"SET"') or '"GET"' in line]
    assert len(rows) == 2, output
    for row in rows:
        assert float(row.split(",")[1].strip('"')) > 0, row  # requests per second


async def _served_serial(address: str, context: ssl.SSLContext) -> int:
    host, port = address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()


async def test_reload_serves_a_renewed_certificate_without_a_restart(
    cluster: TlsCluster,
) -> None:
    assert cluster.config.tls is not None
    context = cluster.config.tls.client_context()
    app = cluster.apps[1]
    before = await _served_serial(app.member.client, context)
    kept = cluster.redis(1)
    assert await retry(lambda: kept.set("before", "1")) is True
    issue_cluster(cluster.certs, [(1, ["127.0.0.1"])], renew=True, client=False)
    assert await _served_serial(app.member.client, context) == before
    assert app.reload_tls()
    renewed = x509.load_pem_x509_certificate((cluster.certs / "node-1.crt").read_bytes())
    assert await _served_serial(app.member.client, context) == renewed.serial_number
    assert renewed.serial_number != before
    assert await kept.get("before") == b"1"  # the open connection carries on
    assert await retry(lambda: cluster.redis(1).set("after", "2")) is True


async def test_a_reload_from_bad_files_keeps_the_old_certificate(cluster: TlsCluster) -> None:
    assert cluster.config.tls is not None
    context = cluster.config.tls.client_context()
    app = cluster.apps[2]
    before = await _served_serial(app.member.client, context)
    (cluster.certs / "node-2.key").write_bytes((cluster.certs / "node-3.key").read_bytes())
    assert not app.reload_tls()
    assert await _served_serial(app.member.client, context) == before
    assert await retry(lambda: cluster.redis(2).set("still", "ok")) is True


async def test_an_unusable_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, extra=TLS_TABLE))
    with pytest.raises(ConfigError) as caught:
        NodeApp(config, 1)
    assert caught.value.key == "tls" and "node-1.crt" in str(caught.value)
