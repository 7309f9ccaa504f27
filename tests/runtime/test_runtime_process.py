"""Real ``pypaxos node`` processes on loopback, driven with redis-py.

A killed node (SIGKILL, by pid) is replaced by an election, the others keep taking writes, and
once restarted it catches up from its own log and its peers.  A whole cluster stopped with
SIGTERM exits 0, removes its pid files and comes back with its data.  A damaged log segment
makes the node refuse to start (exit 1, naming the file and byte offset); a bad config exits 2.
Every process started here is stopped by pid at teardown.  Nodes fsync ("always").
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TryAgainError
from runtime_helpers import port_of, write_cluster

from pypaxos.runtime.config import ClusterConfig, load_config

T = TypeVar("T")
START_TIMEOUT_S = 30.0


class Node:
    def __init__(self, config: ClusterConfig, node_id: int, log_dir: Path) -> None:
        self.config = config
        self.id = node_id
        self.stderr_path = log_dir / f"node-{node_id}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = port_of(config.member(node_id).client)

    def start(self) -> None:
        with self.stderr_path.open("ab") as stderr:
            command = ["node", "--config", str(self.config.path), "--id", str(self.id)]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pypaxos", *command],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def pid_file(self) -> Path:
        return self.config.node_dir(self.id) / "node.pid"

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.id} exited: {self.stderr()}")
            if self.pid_file.exists() and self.pid_file.read_text().strip() == str(
                self.process.pid
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"node {self.id} did not start: {self.stderr()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def wait(self, timeout_s: float = 20.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, protocol=2, socket_timeout=10)

    def stop_hard(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop_hard()


def launch(started: list[Node], config: ClusterConfig, tmp_path: Path) -> dict[int, Node]:
    cluster = {m.id: Node(config, m.id, tmp_path) for m in config.members}
    for node in cluster.values():
        started.append(node)
        node.start()
    for node in cluster.values():
        node.wait_ready()
    return cluster


def retry(action: Callable[[], T], timeout_s: float = 20.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except (TryAgainError, RedisConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def info(node: Node) -> dict[str, object]:
    with node.client() as client:
        result: dict[str, object] = client.info()
        return result


def test_a_killed_node_is_replaced_and_catches_up_and_the_cluster_restarts(
    nodes: list[Node], tmp_path: Path
) -> None:
    config = load_config(write_cluster(tmp_path, fsync="always"))
    cluster = launch(nodes, config, tmp_path)
    with cluster[1].client() as client:
        for i in range(30):
            assert retry(lambda i=i: client.set(f"k{i}", i)) is True
    leader_id = int(str(info(cluster[1])["leader_id"]))
    leader = cluster[leader_id]
    leader.signal(signal.SIGKILL)
    assert leader.wait() == -signal.SIGKILL
    survivor = cluster[next(i for i in cluster if i != leader_id)]
    with survivor.client() as client:
        for i in range(30, 60):
            assert retry(lambda i=i: client.set(f"k{i}", i)) is True
        assert retry(lambda: client.incr("counter")) == 1
    target = int(str(info(survivor)["applied_index"]))
    leader.start()
    leader.wait_ready()
    deadline = time.monotonic() + 20
    while int(str(info(leader)["applied_index"])) < target:
        assert time.monotonic() < deadline, f"node {leader_id} did not catch up"
        time.sleep(0.1)
    with leader.client() as client:
        assert client.mget("k0", "k59") == [b"0", b"59"]

    # Whole-cluster restart: SIGTERM is a clean stop (exit 0, pid file removed), data survives.
    for node in cluster.values():
        node.signal(signal.SIGTERM)
    for node in cluster.values():
        assert node.wait() == 0, node.stderr()
        assert not node.pid_file.exists()
        assert f"node {node.id}: stopped" in node.stderr()
    for node in cluster.values():
        node.start()
    for node in cluster.values():
        node.wait_ready()
    with cluster[3].client() as client:
        assert retry(lambda: client.mget("k0", "k31", "k59")) == [b"0", b"31", b"59"]
        assert retry(lambda: client.incr("counter")) == 2


def test_a_corrupt_segment_stops_the_node_with_file_and_offset(
    nodes: list[Node], tmp_path: Path
) -> None:
    config = load_config(write_cluster(tmp_path, nodes=1, fsync="always"))
    (node,) = launch(nodes, config, tmp_path).values()
    with node.client() as client:
        for i in range(5):
            assert retry(lambda i=i: client.set(f"k{i}", "v" * 50)) is True
    node.signal(signal.SIGTERM)
    assert node.wait() == 0
    (segment,) = config.node_dir(1).glob("wal-*.log")
    data = bytearray(segment.read_bytes())
    (first_length,) = struct.unpack_from("<I", data, 0)
    second = 8 + first_length  # [u32 length][u32 crc][payload]: the second record starts here
    data[second + 9] ^= 0xFF  # a payload byte of the second record; valid records follow it
    segment.write_bytes(bytes(data))
    node.start()
    assert node.wait() == 1
    assert f"corrupt write-ahead log {segment} at byte offset {second}" in node.stderr()


def test_bad_usage_and_bad_config_exit_2(tmp_path: Path) -> None:
    config_path = write_cluster(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(config_path.read_text().replace("tick_ms = 10", "tick_ms = -1"))
    runs = [
        (["--config", str(bad), "--id", "1"], f"{bad}: tick_ms: must be in"),
        (["--config", str(config_path), "--id", "9"], "no member with id 9"),
        (["--config", str(config_path)], "--id"),
    ]
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "pypaxos", "node", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for args, _ in runs
    ]
    try:
        for child, (_, message) in zip(children, runs, strict=True):
            _, stderr = child.communicate(timeout=60)
            assert child.returncode == 2
            assert message in stderr.decode()
    finally:
        for child in children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
