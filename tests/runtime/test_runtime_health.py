"""Health probes: the assessment on the pure node, then ``/health``, ``/ready``, ``/live`` and
``INFO`` on real nodes, and separate bind and advertise addresses."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from pypaxos.runtime.config import ConfigError, load_config, render_config
from pypaxos.runtime.health import assess
from pypaxos.runtime.heap import malloc_stats
from pypaxos.runtime.metrics import MetricsServer, NodeMetrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "multi"))
from multi_harness import Cluster
from runtime_helpers import RunningCluster, free_ports, port_of, write_cluster


def test_a_fresh_node_knows_no_leader_and_is_not_healthy() -> None:
    cluster = Cluster(3, seed=1)
    health = assess(cluster.nodes[1], serving=True)
    assert not health.leader_known and not health.healthy and not health.ready
    assert "no leader known" in health.reasons


def test_after_an_election_every_node_is_healthy_and_a_cut_off_one_stops_being() -> None:
    cluster = Cluster(3, seed=2)
    leader = cluster.elect()
    cluster.ticks(5)
    for node_id, node in cluster.nodes.items():
        health = assess(node, serving=True)
        assert health.healthy and health.ready, (node_id, health)
        assert health.leader_id == leader
    follower = next(i for i in cluster.nodes if i != leader)
    cluster.filter = lambda src, dst, msg: follower not in (src, dst)
    timeout = cluster.config.election_timeout_max_ticks
    for _ in range(timeout + 1):
        cluster.nodes[follower].detector.tick()  # its clock runs, no leader message arrives
    health = assess(cluster.nodes[follower], serving=True)
    assert not health.leader_known and not health.healthy
    assert assess(cluster.nodes[leader], serving=True).healthy


def test_lag_beyond_the_bound_is_unhealthy_and_not_serving_is_not_ready() -> None:
    cluster = Cluster(3, seed=3)
    leader = cluster.elect()
    for request_id in range(1, 4):
        cluster.propose(leader, request_id, b"x%d" % request_id)
    cluster.run_until(lambda: cluster.converged())
    follower = next(i for i in cluster.nodes if i != leader)
    node = cluster.nodes[follower]
    assert assess(node, serving=True, lag_slots_max=0).healthy
    node.commit_seen = node.applied_index + 2  # as a heartbeat advertising two more slots
    lagging = assess(node, serving=True, lag_slots_max=1)
    assert lagging.lag_slots == 2 and not lagging.healthy
    assert any("behind" in reason for reason in lagging.reasons)
    assert assess(node, serving=True, lag_slots_max=2).healthy
    stopping = assess(node, serving=False)
    assert stopping.healthy and not stopping.ready
    assert stopping.reasons == ("not serving clients",)


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.asyncio
async def test_probes_answer_on_real_nodes_and_turn_503_when_the_quorum_is_gone(
    tmp_path: Path,
) -> None:
    config = load_config(write_cluster(tmp_path, metrics=True))
    cluster = await RunningCluster.start(config)
    try:
        leader = await cluster.wait_leader()
        ports = {m.id: port_of(m.metrics or "") for m in config.members}

        async def all_healthy() -> bool:
            codes = [(await http_get(port, "/health"))[0] for port in ports.values()]
            return codes == [200] * len(codes)

        async with asyncio.timeout(10):
            while not await all_healthy():
                await asyncio.sleep(0.05)
        status, body = await http_get(ports[leader], "/ready")
        answer = json.loads(body)
        assert status == 200 and answer["ready"] and answer["role"] == "leader"
        assert answer["leader_id"] == leader and answer["reasons"] == []
        assert (await http_get(ports[leader], "/live"))[0] == 200
        assert (await http_get(ports[leader], "/nothing"))[0] == 404
        status, body = await http_get(ports[leader], "/health", method="HEAD")
        assert status == 200 and body == b""
        info = await cluster.client(leader).info("paxos")
        assert info["healthy"] == 1 and info["ready"] == 1 and info["leader_known"] == 1
        assert await cluster.client(leader).set("k", "v" * 100) is True
        memory = await cluster.client(leader).info("memory")
        assert memory["used_memory_rss"] > 0 and memory["maxmemory"] == 0
        # The breakdown: the write's slot is in the log kept, its client has a session.
        assert memory["log_retained_slots"] >= 1 and memory["log_retained_bytes"] > 100
        assert memory["sessions"] >= 1 and memory["log_votes_in_memory"] >= 1
        assert memory["heap_trims"] >= 0 and memory["heap_trim_last_ms"] >= 0  # runtime.heap
        if malloc_stats() is not None:  # glibc's counters after the start's trim
            assert memory["heap_last_trim_in_use_bytes"] > memory["heap_last_trim_mapped_bytes"]
            assert memory["heap_last_trim_arena_bytes"] >= memory["heap_last_trim_free_bytes"]
        _, metrics = await http_get(ports[leader], "/metrics")
        assert b"pypaxos_healthy 1.0" in metrics and b"process_resident_memory_bytes" in metrics
        assert b"pypaxos_log_retained_bytes" in metrics and b"pypaxos_sessions" in metrics
        # Two of three stopped: the last one loses its leader (or its quorum) and says so.
        survivor = leader
        for node_id, app in cluster.apps.items():
            if node_id != survivor:
                await app.stop()
        async with asyncio.timeout(15):
            while (await http_get(ports[survivor], "/health"))[0] != 503:
                await asyncio.sleep(0.05)
        status, body = await http_get(ports[survivor], "/ready")
        assert status == 503 and "no leader known" in json.loads(body)["reasons"]
        assert (await http_get(ports[survivor], "/live"))[0] == 200
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_without_a_health_source_the_probes_are_not_found() -> None:
    port = free_ports(1)[0]
    server = MetricsServer(NodeMetrics(1), f"127.0.0.1:{port}")
    await server.start()
    try:
        assert (await http_get(port, "/health"))[0] == 404
        assert (await http_get(port, "/metrics"))[0] == 200
    finally:
        await server.close()


def test_listen_addresses_round_trip_and_wildcards_may_repeat(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        'cluster_id = "c"\n'
        '[[members]]\nid = 1\npeer = "node-1.example:7001"\nclient = "node-1.example:6379"\n'
        'peer_listen = "0.0.0.0:7001"\nclient_listen = "0.0.0.0:6379"\n'
        '[[members]]\nid = 2\npeer = "node-2.example:7001"\nclient = "node-2.example:6379"\n'
        'peer_listen = "0.0.0.0:7001"\nclient_listen = "0.0.0.0:6379"\n'
    )
    config = load_config(path)
    member = config.member(1)
    assert member.peer_bind == "0.0.0.0:7001" and member.peer == "node-1.example:7001"
    assert member.client_bind == "0.0.0.0:6379" and member.client == "node-1.example:6379"
    path.write_text(render_config(config))
    assert load_config(path).members == config.members
    # Serving clients on every interface without users is what protected mode refuses.
    with pytest.raises(ConfigError) as refused:
        config.check_protected(1)
    assert refused.value.key == "protected_mode"


def test_an_advertised_address_may_not_repeat(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        'cluster_id = "c"\n'
        '[[members]]\nid = 1\npeer = "h:7001"\nclient = "h:6379"\n'
        '[[members]]\nid = 2\npeer = "h:7001"\nclient = "h2:6379"\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.key == "members[1].peer"


@pytest.mark.asyncio
async def test_nodes_bind_the_listen_address_and_peers_dial_the_advertised_one(
    tmp_path: Path,
) -> None:
    ports = free_ports(6)
    lines = ['cluster_id = "bind"', 'data_dir = "data"', 'fsync = "never"', "tick_ms = 10"]
    for i in range(3):
        peer, client = ports[2 * i], ports[2 * i + 1]
        lines += [
            "[[members]]",
            f"id = {i + 1}",
            f'peer = "localhost:{peer}"',  # advertised: a name, as in a container network
            f'client = "localhost:{client}"',
            f'peer_listen = "127.0.0.1:{peer}"',
            f'client_listen = "127.0.0.1:{client}"',
        ]
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(path)
    cluster = await RunningCluster.start(config)
    try:
        leader = await cluster.wait_leader()
        follower = next(i for i in cluster.apps if i != leader)
        client = cluster.client(follower)
        assert await client.set("k", "v")
        assert await cluster.client(leader).get("k") == b"v"
        info = await client.info("paxos")
        assert info["leader_client"] == f"localhost:{port_of(config.member(leader).client)}"
    finally:
        await cluster.close()
