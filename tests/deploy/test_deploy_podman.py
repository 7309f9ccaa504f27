"""The node image and the generated pod manifests, run for real: three pods under ``podman
kube play`` on a network this test creates, written to through redis-py; a fourth pod added
as a member (it joins by itself, then is promoted), one pod killed and restarted on its volume,
one whose volume was lost refused, removed from the membership, then joining again as a new
member; nothing acknowledged lost.

The pods come from ``pypaxos deploy podman --max-nodes 4``, the pod template the Kubernetes
StatefulSet uses too (the fourth pod's manifest, ``pod-3.yaml``, is a scaled-up ordinal).
Clients reach the pods through client ports published on loopback only; the peers, the probes'
answers and the membership commands are reached by pod name inside the network.  Everything
made here (pods, containers, volumes, the network) is removed at the end; the base and node
images are kept as a cache (``podman_env``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from podman_env import (
    Podman,
    containers_conf,
    ensure_base_image,
    ensure_node_image,
    why_unavailable,
)

from pypaxos.cli.main import main

NODES = 3
MAX_NODES = 4  # the fourth pod joins as a member
READY_TIMEOUT_S = 120.0
REASON = why_unavailable()
# The first run makes the base image and builds the node image (minutes, mostly downloads).
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
    pytest.mark.timeout(1800),
]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    runner = Podman(containers_conf(tmp_path_factory.mktemp("podman")))
    try:
        yield runner
    finally:
        problems = runner.cleanup()
        assert not problems, problems


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    started = time.monotonic()
    base_made = ensure_base_image(podman)
    name, built = ensure_node_image(podman)
    print(
        f"\nbase image {'made' if base_made else 'cached'}, node image {name} "
        f"{'built' if built else 'cached'}: {time.monotonic() - started:.0f} s"
    )
    return name


def _free_port_run(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                held = socket.socket()
                sockets.append(held)
                held.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for held in sockets:
                held.close()
    raise AssertionError("no run of free loopback ports")


@dataclass
class PodCluster:
    podman: Podman
    name: str
    out: Path
    port_base: int
    password: str

    def pod(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}"

    def client(self, ordinal: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port_base + ordinal,
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=5,
        )

    def probe(self, asker: int, ordinal: int, path: str) -> dict[str, Any] | None:
        """``path`` on pod ``ordinal``'s metrics address, asked from inside pod ``asker`` by
        name (so the answer also shows the pod names resolve on the network)."""
        script = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    body = urllib.request.urlopen('http://{self.pod(ordinal)}:7201{path}', "
            "timeout=3).read()\n"
            "except urllib.error.HTTPError as error:\n"
            "    body = error.read()\n"
            "except OSError:\n"
            "    sys.exit(3)\n"
            "sys.stdout.write(body.decode())\n"
        )
        container = f"{self.pod(asker)}-node"
        done = self.podman.run("exec", container, "python3", "-c", script, check=False)
        return json.loads(done.stdout) if done.returncode == 0 and done.stdout else None

    def wait_ready(self, asker: int, ordinals: range | list[int] = range(NODES)) -> list[Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            answers = [self.probe(asker, ordinal, "/ready") for ordinal in ordinals]
            known = [answer for answer in answers if answer is not None and answer["ready"]]
            if len(known) == len(ordinals) and len({a["leader_id"] for a in known}) == 1:
                return known
            if time.monotonic() > deadline:
                logs = {o: self.logs(o)[-1500:] for o in ordinals}
                raise AssertionError(f"not ready: {answers}\n{logs}")
            time.sleep(0.5)

    def member(self, asker: int, *args: str) -> subprocess.CompletedProcess[str]:
        """``pypaxos member ARGS`` inside pod ``asker``, at the first voters by name."""
        endpoints = ",".join(f"{self.pod(o)}:7001" for o in range(NODES))
        command = ["exec", "-e", f"PYPAXOS_PASSWORD={self.password}", f"{self.pod(asker)}-node"]
        command += ["pypaxos", "member", *args, "--endpoints", endpoints, "--user", "default"]
        return self.podman.run(*command, check=False, timeout_s=60)

    def member_change(self, asker: int, *args: str) -> None:
        """A membership change, retried while the cluster says to wait (a learner still
        catching up, the previous change not yet in force)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            done = self.member(asker, *args)
            if done.returncode == 0:
                return
            retry = "learner-behind" in done.stderr or "change-in-flight" in done.stderr
            assert retry and time.monotonic() < deadline, done.stderr
            time.sleep(0.5)

    def wait_learner(self, asker: int, node_id: int) -> None:
        """Until the pod of node ``node_id`` has joined: the cluster lists it (a learner)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            done = self.member(asker, "list", "--json")
            if done.returncode == 0:
                members = json.loads(done.stdout)["members"]
                if any(m["id"] == node_id for m in members):
                    return
            assert time.monotonic() < deadline, (done.stdout, self.logs(node_id - 1)[-2000:])
            time.sleep(0.5)

    def play(self, manifest: str, ordinal: int) -> None:
        self.podman.made_pods.append(self.pod(ordinal))
        self.podman.made_volumes.append(f"data-{self.pod(ordinal)}")
        self.podman.run(
            "kube",
            "play",
            "--network",
            f"{self.name}-net",
            "--configmap",
            str(self.out / "configmap.yaml"),
            str(self.out / manifest),
            timeout_s=180,
        )

    def volume_path(self, ordinal: int) -> Path:
        done = self.podman.run(
            "volume", "inspect", "--format", "{{.Mountpoint}}", self.data(ordinal)
        )
        return Path(done.stdout.strip())

    def data(self, ordinal: int) -> str:
        return f"data-{self.pod(ordinal)}"

    def logs(self, ordinal: int) -> str:
        done = self.podman.run("logs", f"{self.pod(ordinal)}-node", check=False)
        return done.stdout + done.stderr


@pytest.fixture
def cluster(podman: Podman, image: str, tmp_path: Path) -> PodCluster:
    name = f"pxt{secrets.token_hex(3)}"  # every pod, volume and network name starts so
    network = f"{name}-net"
    port_base = _free_port_run(MAX_NODES)
    out = tmp_path / "deploy"
    options = ["--name", name, "--nodes", str(NODES), "--image", image]
    options += ["--publish-port-base", str(port_base), "--max-nodes", str(MAX_NODES)]
    assert main(["deploy", "podman", "--out", str(out), *options]) == 0
    podman.made_networks.append(network)
    podman.run("network", "create", network)
    podman.made_pods += [f"{name}-{ordinal}" for ordinal in range(NODES)]
    podman.made_volumes += [f"{name}-config"] + [f"data-{name}-{o}" for o in range(NODES)]
    podman.run(
        "kube",
        "play",
        "--network",
        network,
        "--configmap",
        str(out / "configmap.yaml"),
        str(out / "pods.yaml"),
        timeout_s=180,
    )
    # Once started, the cluster is bootstrapped: a first voter with an empty volume refuses.
    # (Generated again into the same folder: the password and peer secret are kept; the
    # next `kube play` writes the new ConfigMap into the config volume every pod mounts.)
    assert main(["deploy", "podman", "--out", str(out), *options, "--bootstrapped"]) == 0
    return PodCluster(podman, name, out, port_base, (out / "password").read_text().strip())


@dataclass
class Writer:
    """Writes ``key-N = value-N`` in order through one pod, recording what was acknowledged."""

    cluster: PodCluster
    ordinal: int
    acknowledged: dict[str, str] = field(default_factory=dict)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = self.cluster.client(self.ordinal)
        number = 0
        while not self.stop.is_set():
            key, value = f"key-{number}", f"value-{number}-{secrets.token_hex(4)}"
            try:
                if client.set(key, value):
                    self.acknowledged[key] = value
            except redis.RedisError:  # outcome unknown or refused: not acknowledged
                self.failures += 1
                time.sleep(0.05)
            number += 1

    def wait_for(self, count: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, (len(self.acknowledged), self.failures)
            time.sleep(0.05)


def test_pods_grow_by_a_member_survive_a_kill_and_shrink_without_losing_a_write(
    cluster: PodCluster,
) -> None:
    answers = cluster.wait_ready(asker=0)
    # The entrypoint numbered each pod from its host name: pod N is node N + 1.
    assert [answer["node_id"] for answer in answers] == [1, 2, 3]
    # As the template says: an unprivileged user on a read-only root.
    container = f"{cluster.pod(0)}-node"
    assert cluster.podman.run("exec", container, "id", "-u").stdout.strip() == "10001"
    assert cluster.podman.run("exec", container, "touch", "/x", check=False).returncode != 0
    writer = Writer(cluster, 2)  # pod 0 loses its volume below; pod 2 is never stopped
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        writer.wait_for(50)
        # A fourth pod, from the same template: not a first voter and no data, so its
        # entrypoint joins the cluster (a learner); promoted once caught up.
        cluster.play("pod-3.yaml", 3)
        cluster.wait_learner(2, 4)
        cluster.member_change(2, "promote", "4")
        listed = json.loads(cluster.member(2, "list", "--json").stdout)
        voters = sorted(m["id"] for m in listed["members"] if m["role"] == "voter")
        assert voters == [1, 2, 3, 4], listed
        assert "joins the cluster" in cluster.logs(3)
        writer.wait_for(len(writer.acknowledged) + 50)

        # A pod killed and restarted on its volume: bootstrapped = true does not stop it.
        victim = 1
        cluster.podman.run("pod", "kill", "--signal", "KILL", cluster.pod(victim))
        writer.wait_for(len(writer.acknowledged) + 50)  # three of four voters commit
        cluster.podman.run("pod", "start", cluster.pod(victim), timeout_s=60)
        cluster.wait_ready(asker=2, ordinals=[1, 2, 3])
        writer.wait_for(len(writer.acknowledged) + 50)

        # A first voter whose volume was lost is refused (it would vote with nothing): its
        # entrypoint asks to join, which the cluster refuses while it is a voter.  Once the
        # operator removed it, it joins afresh as a learner, and is promoted again.
        cluster.podman.run("pod", "kill", "--signal", "KILL", cluster.pod(0))
        cluster.podman.run("wait", f"{cluster.pod(0)}-node", check=False, timeout_s=60)
        for child in cluster.volume_path(0).iterdir():
            subprocess.run(["rm", "-rf", str(child)], check=True)
        cluster.podman.run("pod", "start", cluster.pod(0), timeout_s=60)
        waited = cluster.podman.run("wait", f"{cluster.pod(0)}-node", timeout_s=120)
        assert waited.stdout.strip() == "1", cluster.logs(0)[-2000:]
        assert "pypaxos member remove 1" in cluster.logs(0)
        cluster.member_change(2, "remove", "1")
        writer.wait_for(len(writer.acknowledged) + 50)
        listed = json.loads(cluster.member(2, "list", "--json").stdout)
        assert sorted(m["id"] for m in listed["members"]) == [2, 3, 4], listed
        cluster.podman.run("pod", "start", cluster.pod(0), timeout_s=60)
        cluster.wait_learner(2, 1)
        cluster.member_change(2, "promote", "1")
        writer.wait_for(len(writer.acknowledged) + 50)
    finally:
        writer.stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    print(f"{len(writer.acknowledged)} writes acknowledged, {writer.failures} refused or unknown")
    listed = json.loads(cluster.member(2, "list", "--json").stdout)
    assert sorted(m["id"] for m in listed["members"] if m["role"] == "voter") == [1, 2, 3, 4]
    after = cluster.wait_ready(asker=2, ordinals=[0, 1, 2, 3])
    assert {answer["node_id"] for answer in after} == {1, 2, 3, 4}

    # Every acknowledged write is there, read through every member's pod.
    for ordinal in (0, 1, 2, 3):
        client = cluster.client(ordinal)
        keys = sorted(writer.acknowledged)
        values = client.mget(keys)
        lost = [
            k for k, v in zip(keys, values, strict=True) if v != writer.acknowledged[k].encode()
        ]
        assert lost == [], f"pod {ordinal} lost {len(lost)} acknowledged writes: {lost[:5]}"

    # `cluster status --endpoints` reads the pods from outside, logging in as the clients do.
    endpoints = ",".join(f"127.0.0.1:{cluster.port_base + o}" for o in range(MAX_NODES))
    command = [sys.executable, "-m", "pypaxos", "cluster", "status", "--json"]
    status = subprocess.run(
        [*command, "--endpoints", endpoints, "--user", "default"],
        env=os.environ | {"PYPAXOS_PASSWORD": cluster.password},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    nodes = json.loads(status.stdout)["nodes"]
    assert sorted(node["id"] for node in nodes) == [1, 2, 3, 4]
    assert sorted(node["role"] for node in nodes) == ["follower"] * 3 + ["leader"]
