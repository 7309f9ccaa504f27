"""Real network namespaces: reachability, partitions, loss, and that nothing is left behind.

Each test that touches namespaces is skipped, with the reason from ``NetnsHosts.available()``,
where they cannot be made (not root, no iproute2, no nft/iptables).  Every address used here is
used only from inside a namespace of the run.  Every process a test starts is stopped by pid.
The prefix ``pxtt`` keeps these runs apart from a harness's ``pxt``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pypaxos
from pypaxos.torture.netns import NFT_TABLE, NetnsHosts

PREFIX = "pxtt"
PORT = 7000
pytestmark = pytest.mark.timeout(120)
CONNECT_TIMEOUT_S = 0.5  # a blocked probe costs this; an open one takes well under 1 ms
PROC_TIMEOUT_S = 20.0
SRC_DIR = str(Path(pypaxos.__file__).resolve().parents[1])

# One agent per endpoint, inside its namespace: a TCP and UDP echo server on the endpoint's
# address, and a prober that takes one JSON command per stdin line and answers one JSON line.
AGENT = """
import json, socket, socketserver, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
addr, port = sys.argv[1], int(sys.argv[2])

class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(2)
        try:
            self.request.sendall(self.request.recv(64))
        except OSError:
            pass

class UdpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)

def tcp_round_trip(target, timeout):
    try:
        with socket.create_connection((target, port), timeout=timeout) as s:
            s.sendall(b"ping")
            return s.recv(4) == b"ping"
    except OSError:
        return False

def udp_echoed(target, count):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((target, port))
        for i in range(count):
            s.send(b"x")
            if i % 50 == 49:
                time.sleep(0.005)
        s.settimeout(0.5)
        echoed = 0
        try:
            while True:
                s.recv(16)
                echoed += 1
        except OSError:
            return echoed

socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
tcp = socketserver.ThreadingTCPServer((addr, port), TcpEcho)
udp = socketserver.UDPServer((addr, port), UdpEcho)
for server in (tcp, udp):
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
with ThreadPoolExecutor(16) as pool:
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "tcp":
            timeout = cmd["timeout"]
            answer = list(pool.map(lambda t: tcp_round_trip(t, timeout), cmd["targets"]))
        else:
            answer = udp_echoed(cmd["target"], cmd["count"])
        print(json.dumps(answer), flush=True)
"""

# A process that uses NetnsHosts, starts a sleeper inside a node namespace, reports, and waits
# for the test's signal.
HOLDER = """
import json, signal, subprocess, sys, time
from pypaxos.torture.netns import NetnsHosts
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
signal.signal(signal.SIGTERM, signal.SIG_DFL)

def hold(hosts):
    sleeper = subprocess.Popen(hosts.wrap(hosts.node_ns(1), ["sleep", "60"]))
    print(json.dumps({"namespaces": hosts.namespaces, "sleeper": sleeper.pid}), flush=True)
    time.sleep(60)

if sys.argv[2] == "with":
    with NetnsHosts(2, prefix=sys.argv[1]) as hosts:
        hold(hosts)
else:  # entered by hand and never exited: only the atexit hook can clean up
    hosts = NetnsHosts(2, prefix=sys.argv[1])
    hosts.__enter__()
    hold(hosts)
"""


# --- helpers -------------------------------------------------------------------------------------


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def root_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def in_netns(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) process: /proc/PID/ns/net resolves."""
    return os.path.exists(f"/proc/{pid}/ns/net")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=PROC_TIMEOUT_S)


def endpoints(hosts: NetnsHosts) -> dict[str, tuple[str, str]]:
    """Short name -> (namespace, address): "1".."n" for nodes, "c" for the clients."""
    ends = {str(i): (hosts.node_ns(i), hosts.node_address(i)) for i in range(1, hosts.n_nodes + 1)}
    ends["c"] = (hosts.client_ns, hosts.client_address())
    return ends


@dataclass
class Lab:
    """A running NetnsHosts and one agent process per endpoint (see AGENT)."""

    hosts: NetnsHosts
    agents: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def send(self, name: str, command: dict[str, object]) -> None:
        stdin = self.agents[name].stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()

    def answer(self, name: str) -> object:
        stdout = self.agents[name].stdout
        assert stdout is not None
        line = stdout.readline()
        assert line, f"agent {name} died"
        return json.loads(line)

    def reachability(self) -> dict[tuple[str, str], bool]:
        """Whether a TCP echo round trip works from every endpoint to every one (itself too)."""
        ends = endpoints(self.hosts)
        names = sorted(ends)
        command = {
            "op": "tcp",
            "timeout": CONNECT_TIMEOUT_S,
            "targets": [ends[name][1] for name in names],
        }
        for src in names:  # all probe at once
            self.send(src, command)
        result: dict[tuple[str, str], bool] = {}
        for src in names:
            answer = self.answer(src)
            assert isinstance(answer, list)
            for dst, ok in zip(names, answer, strict=True):
                result[(src, dst)] = bool(ok)
        return result


def expected(hosts: NetnsHosts, cut: set[frozenset[str]]) -> dict[tuple[str, str], bool]:
    names = sorted(endpoints(hosts))
    return {(a, b): frozenset((a, b)) not in cut for a in names for b in names}


def cut_pairs(*pairs: str) -> set[frozenset[str]]:
    return {frozenset(pair) for pair in pairs}


def start_holder(prefix: str, mode: str) -> tuple[subprocess.Popen[str], list[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, prefix, mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC_DIR},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop(proc)
        pytest.fail("the NetnsHosts holder process died before reporting")
    report = json.loads(line)
    return proc, list(report["namespaces"]), int(report["sleeper"])


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def netns_ok() -> None:
    ok, reason = NetnsHosts.available()
    if not ok:
        pytest.skip(reason)


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def running(netns_ok: None, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """Three nodes and the clients, an agent (echo servers and prober) on every endpoint."""
    packet_filter: str = request.param
    if shutil.which({"nftables": "nft", "iptables": "iptables-restore"}[packet_filter]) is None:
        pytest.skip(f"{packet_filter} is not installed")
    with NetnsHosts(3, prefix=PREFIX, packet_filter=packet_filter) as hosts:
        assert hosts.filter_name == packet_filter
        lab = Lab(hosts)
        try:
            for name, (ns, addr) in endpoints(hosts).items():
                lab.agents[name] = subprocess.Popen(
                    hosts.wrap(ns, [sys.executable, "-c", AGENT, addr, str(PORT)]),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            for agent in lab.agents.values():
                assert agent.stdout is not None
                assert agent.stdout.readline().strip() == "ready"
            yield lab
        finally:
            for agent in lab.agents.values():
                stop(agent)


@pytest.fixture
def lab(running: Lab) -> Iterator[Lab]:
    yield running
    running.hosts.heal()


# --- without namespaces --------------------------------------------------------------------------


def test_names_addresses_and_wrap() -> None:
    hosts = NetnsHosts(3, prefix="pxq")
    assert hosts.node_ns(2) == f"{hosts.run_name}-n2"
    assert hosts.run_name.startswith(f"pxq-{os.getpid()}-")
    assert hosts.node_address(1) == "10.77.0.11"
    assert hosts.client_address() == "10.77.0.5"
    assert hosts.wrap(hosts.client_ns, ["true"]) == ["ip", "netns", "exec", hosts.client_ns, "true"]
    assert NetnsHosts(3, prefix="pxq").run_name != hosts.run_name
    with pytest.raises(ValueError):
        hosts.node_ns(4)
    with pytest.raises(ValueError):
        hosts.wrap("elsewhere", ["true"])
    with pytest.raises(ValueError):
        hosts.partition([{1, 2}, {2, 3}])
    with pytest.raises(ValueError):
        hosts.set_loss(101)
    with pytest.raises(ValueError):
        NetnsHosts(2, prefix="bad-prefix")
    with pytest.raises(RuntimeError):
        hosts.heal()  # not entered


# --- with namespaces -----------------------------------------------------------------------------


def test_every_endpoint_reaches_every_endpoint(lab: Lab) -> None:
    assert lab.reachability() == expected(lab.hosts, set())


def test_partition_blocks_both_ways_and_heal_restores(lab: Lab) -> None:
    lab.hosts.partition([{1}, {2, 3}])
    assert lab.reachability() == expected(lab.hosts, cut_pairs("12", "13"))
    lab.hosts.heal()
    assert lab.reachability() == expected(lab.hosts, set())


def test_partition_leaves_unlisted_nodes_connected(lab: Lab) -> None:
    lab.hosts.partition([{1}, {2}])
    assert lab.reachability() == expected(lab.hosts, cut_pairs("12"))


def test_partition_can_isolate_clients(lab: Lab) -> None:
    lab.hosts.partition([], isolate_clients_from={2})
    assert lab.reachability() == expected(lab.hosts, cut_pairs("2c"))


def test_loss_100_blocks_and_0_passes(lab: Lab) -> None:
    lab.hosts.set_loss(100, {2})
    assert lab.reachability() == expected(lab.hosts, cut_pairs("12", "23", "2c"))
    lab.hosts.set_loss(0, {2})
    assert lab.reachability() == expected(lab.hosts, set())
    lab.hosts.set_loss(100)
    everything = cut_pairs("12", "13", "23", "1c", "2c", "3c")
    assert lab.reachability() == expected(lab.hosts, everything)


def test_loss_drops_about_that_share(lab: Lab) -> None:
    lab.hosts.set_loss(50, {2})
    lab.send("c", {"op": "udp", "target": lab.hosts.node_address(2), "count": 400})
    echoed = lab.answer("c")
    assert isinstance(echoed, int)
    assert 130 <= echoed <= 270, echoed  # binomial(400, 0.5): mean 200, sd 10


def test_no_default_route_and_nothing_in_the_root_namespace(lab: Lab) -> None:
    hosts = lab.hosts
    for ns in hosts.namespaces:
        for family in ("-4", "-6"):
            routes = subprocess.run(
                ["ip", family, "-n", ns, "route", "show", "default"],
                capture_output=True,
                text=True,
                check=True,
            )
            assert routes.stdout.strip() == "", (ns, routes.stdout)
    bridge_addrs = subprocess.run(
        ["ip", "-4", "-o", "-n", hosts.bridge_ns, "addr"], capture_output=True, text=True
    ).stdout
    assert "10.77." not in bridge_addrs
    root_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "10.77." not in root_addrs
    assert hosts.run_name not in root_links()
    if shutil.which("nft") is not None:  # the root namespace's ruleset is not touched
        root_tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        assert NFT_TABLE not in root_tables.stdout


def test_exception_inside_the_block_removes_everything(netns_ok: None) -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), NetnsHosts(2, prefix=PREFIX) as hosts:
        names = hosts.namespaces
        hosts.partition([{1}, {2}])
        assert set(names) <= netns_names()
        raise RuntimeError("boom")
    assert names
    assert not set(names) & netns_names()
    assert hosts.run_name not in root_links()
    hosts.cleanup()  # idempotent


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["with", "enter"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_owner_removes_everything(netns_ok: None, signum: int, mode: str) -> None:
    proc, names, sleeper = start_holder(PREFIX, mode)
    try:
        assert set(names) <= netns_names()
        assert in_netns(sleeper)
        proc.send_signal(signum)
        proc.wait(timeout=PROC_TIMEOUT_S)
    finally:
        stop(proc)
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)
    assert proc.returncode != 0
    assert not set(names) & netns_names()
    assert not in_netns(sleeper)
    assert names[0].rsplit("-", 1)[0] not in root_links()


@pytest.mark.timeout(60)
def test_sweep_removes_what_a_killed_run_left(netns_ok: None) -> None:
    # A prefix of this test process alone, so a parallel test run cannot sweep it first.
    prefix = f"pxs{os.getpid()}"
    proc, names, sleeper = start_holder(prefix, "with")
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=PROC_TIMEOUT_S)
        assert set(names) <= netns_names()  # SIGKILL: nothing could clean up
        assert in_netns(sleeper)
        removed = NetnsHosts.sweep(prefix)
    finally:
        stop(proc)
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)
    assert sorted(removed) == sorted(names)
    assert not set(names) & netns_names()
    assert not in_netns(sleeper)


def test_sweep_leaves_a_live_run_alone(running: Lab) -> None:
    removed = NetnsHosts.sweep(PREFIX)
    assert set(running.hosts.namespaces) <= netns_names()
    assert not set(running.hosts.namespaces) & set(removed)
    assert running.reachability() == expected(running.hosts, set())
