"""PySyncObj's README examples on real ``pypaxos node --machine`` processes.

Three node processes on loopback (real TCP, fsync "always") serve a replicated class; this test
process (and, for the dict, a separate client process) calls them with pypaxos's client while
each node in turn is killed with SIGKILL and restarted.  No acknowledged call may be lost or
applied twice, and every member ends with the same state (read on each member with follower
reads, i.e. from that member's own state).  Also: a bad ``--machine`` exits 2 with a message,
and a wiped member is rebuilt from a peer's snapshot of the user's state.  Every process started
here is killed by pid at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from objects_apps import MyCounter

from pypaxos.client import Client, OutcomeUnknownError, UnavailableError
from pypaxos.objects import Dict
from pypaxos.runtime.config import ClusterConfig, load_config

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 30.0
COUNTER = "objects_apps:MyCounter"
DICT = "pypaxos.objects:Dict"


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_cluster(tmp_path: Path, snapshot_every_slots: int = 1024) -> ClusterConfig:
    ports = free_ports(6)
    lines = [
        'cluster_id = "objects-test"',
        'data_dir = "data"',
        'fsync = "always"',
        "tick_ms = 10",
        "follower_reads = true",
    ]
    for i in range(3):
        lines += [
            "[[members]]",
            f"id = {i + 1}",
            f'peer = "127.0.0.1:{ports[2 * i]}"',
            f'client = "127.0.0.1:{ports[2 * i + 1]}"',
        ]
    lines += ["[limits]", f"snapshot_every_slots = {snapshot_every_slots}"]
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


class NodeProcess:
    def __init__(self, config: ClusterConfig, node_id: int, machine: str, log_dir: Path) -> None:
        self.config = config
        self.id = node_id
        self.machine = machine
        self.address = config.member(node_id).client
        self.stderr_path = log_dir / f"node-{node_id}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["node", "--config", str(self.config.path), "--id", str(self.id)]
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pypaxos", *command, "--machine", self.machine],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=child_env(),
            )

    def wait_ready(self) -> None:
        assert self.process is not None
        pid_file = self.config.pid_file(self.id)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.id} exited: {self.stderr()}")
            if pid_file.exists() and pid_file.read_text().strip() == str(self.process.pid):
                return
            time.sleep(0.05)
        raise AssertionError(f"node {self.id} did not start: {self.stderr()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def started() -> Iterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    yield nodes
    for node in nodes:
        node.kill()


def launch(
    started: list[NodeProcess], config: ClusterConfig, machine: str, tmp_path: Path
) -> dict[int, NodeProcess]:
    cluster = {m.id: NodeProcess(config, m.id, machine, tmp_path) for m in config.members}
    for node in cluster.values():
        started.append(node)
        node.start()
    for node in cluster.values():
        node.wait_ready()
    return cluster


def member_query(node: NodeProcess, method: str, *args: object) -> object:
    """``method`` answered by ``node`` itself (a follower read: its own applied state)."""
    with Client([node.address], follow_leader=False, timeout_s=5, retries=40) as client:
        return client.query(method, *args)


def wait_snapshot(node: NodeProcess, timeout_s: float = 30.0) -> None:
    """Until ``node`` reports a snapshot (``INFO``'s ``snapshot_slot`` above 0) and has cut
    the log it keeps behind it (fewer decided values kept than applied: a peer asking from
    slot 0 then gets the snapshot, not the log)."""
    deadline = time.monotonic() + timeout_s
    with Client([node.address], follow_leader=False, timeout_s=5) as direct:
        while True:
            info = direct.info()
            snapshot_slot = int(info.get("snapshot_slot", 0))
            kept = int(info.get("log_retained_slots", 0))
            if snapshot_slot > 0 and kept < int(info.get("applied_index", 0)):
                return
            assert time.monotonic() < deadline, f"{node} took no snapshot and compacted nothing"
            time.sleep(0.1)


def wait_converged(
    cluster: dict[int, NodeProcess], method: str, timeout_s: float = 30.0
) -> list[object]:
    """Each member's answer to ``method`` once they agree (follower reads wait for the
    leader's read index, so they agree as soon as every member caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answers = [member_query(node, method) for node in cluster.values()]
        if all(a == answers[0] for a in answers) or time.monotonic() > deadline:
            return answers
        time.sleep(0.1)


class CounterCalls:
    """Increments from a thread of this process until stopped, counting what was
    acknowledged (each acknowledged call returned the counter's new value)."""

    def __init__(self, addresses: list[str]) -> None:
        self.client = Client(addresses, timeout_s=2, retries=40, backoff_max_s=0.5)
        self.proxy = self.client.proxy(MyCounter)
        self.returned: list[int] = []
        self.unknown = 0
        self.unavailable = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.returned.append(self.proxy.inc_counter())
            except OutcomeUnknownError:
                self.unknown += 1
            except UnavailableError:
                self.unavailable += 1

    def __enter__(self) -> CounterCalls:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(120)
        self.client.close()


def test_the_counter_survives_killing_and_restarting_each_process(
    tmp_path: Path, started: list[NodeProcess]
) -> None:
    config = write_cluster(tmp_path, snapshot_every_slots=40)  # snapshots during the run
    cluster = launch(started, config, COUNTER, tmp_path)
    addresses = [node.address for node in cluster.values()]
    with CounterCalls(addresses) as calls:
        for victim in (1, 2, 3):
            time.sleep(1.0)
            before = len(calls.returned)
            cluster[victim].kill()
            time.sleep(1.0)
            cluster[victim].start()
            cluster[victim].wait_ready()
            time.sleep(1.0)
            assert len(calls.returned) > before, "no call got through while a node was down"
    acknowledged = len(calls.returned)
    assert acknowledged > 0
    assert len(set(calls.returned)) == acknowledged, "a call was applied twice"
    finals = wait_converged(cluster, "get_counter")
    final = finals[0]
    assert finals == [final] * 3, finals
    assert isinstance(final, int)
    # Every acknowledged call is in the state; a call whose outcome stayed unknown may be too.
    assert acknowledged <= final <= acknowledged + calls.unknown, (acknowledged, calls.unknown)
    assert max(calls.returned) <= final


CLIENT_SCRIPT = """
import json, pathlib, sys
from pypaxos.client import Client, OutcomeUnknownError
from pypaxos.objects import Dict
addresses, stop = sys.argv[1].split(","), pathlib.Path(sys.argv[2])
acked, unknown, i = {}, [], 0
with Client(addresses, timeout_s=2, retries=40) as client:
    d = client.proxy(Dict)
    while not stop.exists():
        try:
            d.set(f"testKey{i}", f"testValue{i}")
            acked[f"testKey{i}"] = f"testValue{i}"
        except OutcomeUnknownError:
            unknown.append(f"testKey{i}")
        i += 1
    assert d.get("testKey0") == acked.pop("testKey0")
    assert d.pop("testKey0") == "testValue0"
    print(json.dumps({"acked": acked, "unknown": unknown}))
"""


def test_the_dict_from_a_separate_client_process_while_each_node_restarts(
    tmp_path: Path, started: list[NodeProcess]
) -> None:
    config = write_cluster(tmp_path, snapshot_every_slots=40)
    cluster = launch(started, config, DICT, tmp_path)
    addresses = ",".join(node.address for node in cluster.values())
    stop = tmp_path / "stop-client"
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, addresses, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        for victim in (1, 2, 3):
            time.sleep(1.0)
            cluster[victim].kill()
            time.sleep(1.0)
            cluster[victim].start()
            cluster[victim].wait_ready()
        time.sleep(1.0)
        stop.touch()
        out, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err.decode(errors="replace")
    report = json.loads(out)
    acked, unknown = report["acked"], set(report["unknown"])
    assert len(acked) > 10
    states = wait_converged(cluster, "to_dict")
    assert states[0] == states[1] == states[2]
    final = states[0]
    assert isinstance(final, dict)
    assert acked.items() <= final.items(), "an acknowledged set is missing"
    assert set(final) - set(acked) <= unknown  # anything else was a call of unknown outcome
    with Client([cluster[2].address], timeout_s=5) as client_here:
        proxy = client_here.proxy(Dict)
        assert proxy.get("testKey7") == "testValue7"
        assert proxy.get("testKey0") is None


@pytest.mark.parametrize(
    ("machine", "said"),
    [
        ("objects_apps", "MODULE:NAME"),
        ("no_such_module_here:X", "cannot import"),
        ("objects_apps:Missing", "has no Missing"),
        ("objects_apps:NotReplicable", "undeclared attributes"),
    ],
)
def test_a_bad_machine_exits_2_with_a_clear_message(
    tmp_path: Path, machine: str, said: str
) -> None:
    config = write_cluster(tmp_path)
    node = ["node", "--config", str(config.path), "--id", "1", "--machine", machine]
    result = subprocess.run(
        [sys.executable, "-m", "pypaxos", *node],
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "--machine" in stderr
    assert said in stderr
    assert not config.pid_file(1).exists()


def test_a_wiped_member_is_rebuilt_from_a_snapshot_of_the_user_state(
    tmp_path: Path, started: list[NodeProcess]
) -> None:
    config = write_cluster(tmp_path, snapshot_every_slots=20)
    cluster = launch(started, config, COUNTER, tmp_path)
    addresses = [node.address for node in cluster.values()]
    with Client(addresses, timeout_s=2, retries=40) as client:
        counter = client.proxy(MyCounter)
        for _ in range(30):
            counter.inc_counter()
        cluster[3].kill()
        shutil.rmtree(config.node_dir(3))
        for _ in range(60):  # the others snapshot and compact past what node 3 could ask for
            counter.inc_counter()
        assert counter.add_value(10) == 100
    # The survivors' snapshots are written by forked children, in their own time: start node 3
    # only once both have one (and compacted their logs behind it), or it may catch up from
    # the log alone.
    for survivor in (cluster[1], cluster[2]):
        wait_snapshot(survivor)
    cluster[3].start()
    cluster[3].wait_ready()
    finals = wait_converged(cluster, "get_counter")
    assert finals == [100, 100, 100]
    with Client([cluster[3].address], follow_leader=False, timeout_s=5) as client_of_3:
        info = client_of_3.info()
    # Node 3's own snapshot of the installed state is written by a forked child in its own
    # time, so the install itself is what is counted.
    assert int(info["snapshots_installed"]) >= 1, "node 3 was not rebuilt from a snapshot"
    assert info["machine"] == "MyCounter"
