"""Writes through stock redis-py and through ``pypaxos.client`` against real node processes,
and the exactly-once rule on the wire: a repeated ``PAXOS.REQ`` pair is applied once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import redis
from conftest import Clusters

from pypaxos.client import Client, ReplyParser
from pypaxos.cluster import LocalCluster
from pypaxos.transport.resp import encode_command


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, node_available: None
) -> Iterator[LocalCluster]:
    """One cluster for this module's tests: they write disjoint keys."""
    clusters = Clusters(tmp_path_factory.mktemp("client-real"))
    try:
        made = clusters.make(3)
        asyncio.run(made.up(timeout_s=30))
        yield made
    finally:
        clusters.cleanup()


def test_redis_py_and_pypaxos_client_on_every_node(cluster: LocalCluster) -> None:
    for member in cluster.spec.members:  # followers forward to the leader
        host, port = member.client.split(":")
        # redis-py 8 opens with HELLO 3 (RESP3) unless told protocol=2: try both.
        protocol = 2 if member.id % 2 else 3
        with redis.Redis(host=host, port=int(port), socket_timeout=10, protocol=protocol) as r:
            key = f"redis:{member.id}"
            assert r.ping()
            assert r.set(key, "v1")
            assert r.get(key) == b"v1"
            assert r.incr(f"n:{member.id}") == 1  # sent as INCRBY n 1
            assert r.execute_command("INCR", f"n:{member.id}") == 2
            assert r.exists(key, "absent") == 1
            assert r.mget(key, "absent") == [b"v1", None]
            assert r.execute_command("CAS", key, "v1", "v2") == 1
            assert r.execute_command("CAS", key, "v1", "v3") == 0
            assert r.get(key) == b"v2"
            assert r.delete(key) == 1
    with Client(cluster.spec.client_addresses) as client:
        info = client.info()
        assert info["paxos_role"] == "leader" and client.connected_to == info["leader_client"]
        for i in range(50):
            client.set(f"c:{i}", str(i))
        assert client.mget(*(f"c:{i}" for i in range(50))) == [str(i).encode() for i in range(50)]
        assert client.incr("counter") == 1 and client.incr("counter") == 2
        assert client.cas("c:0", "0", "zero") and not client.cas("c:0", "0", "again")
        assert client.get("c:0") == b"zero"
        assert client.seq == 54  # 50 sets, 2 incrs, 2 cas: one session slot each


def roundtrip(sock: socket.socket, parser: ReplyParser, *args: str) -> object:
    sock.sendall(encode_command(*args))
    while True:
        replies = parser.feed(sock.recv(65536))
        if replies:
            assert len(replies) == 1
            return replies[0]


def test_a_repeated_paxos_req_pair_increments_once(cluster: LocalCluster) -> None:
    follower, leader = cluster.spec.members[-1], cluster.spec.members[0]
    client_id = "4242424242"
    parser = ReplyParser()
    for member in (leader, follower):  # the retry may well land on another node
        with socket.create_connection(_pair(member.client), timeout=10) as sock:
            assert roundtrip(sock, parser, "PAXOS.REQ", client_id, "1", "INCR", "once") == 1
            assert roundtrip(sock, parser, "PAXOS.REQ", client_id, "1", "INCR", "once") == 1
    with socket.create_connection(_pair(follower.client), timeout=10) as sock:
        assert roundtrip(sock, parser, "GET", "once") == b"1"
        assert roundtrip(sock, parser, "PAXOS.REQ", client_id, "2", "INCR", "once") == 2
        assert roundtrip(sock, parser, "PAXOS.REQ", client_id, "2", "INCR", "once") == 2
        assert roundtrip(sock, parser, "GET", "once") == b"2"


def _pair(address: str) -> tuple[str, int]:
    host, port = address.split(":")
    return host, int(port)
