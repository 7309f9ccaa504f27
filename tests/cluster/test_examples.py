"""The programs in examples/ against real node processes (as after ``pypaxos cluster up``).

Each runs as a user would run it (``python examples/NAME.py --addresses ...``) and must exit 0
with its own check: the lock-protected job's runs are in token order, the leader-elected
workers' ticks come in one unbroken run per leader, the watcher sees both changes written.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Clusters

from pypaxos.cluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, node_available: None
) -> Iterator[LocalCluster]:
    clusters = Clusters(tmp_path_factory.mktemp("examples"))
    try:
        made = clusters.make(3, fsync="never")
        asyncio.run(made.up(timeout_s=30))
        yield made
    finally:
        clusters.cleanup()


def run_example(cluster: LocalCluster, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    addresses = ",".join(m.client for m in cluster.spec.members)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--addresses", addresses, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lock_protected_job(cluster: LocalCluster) -> None:
    done = run_example(cluster, "lock_job.py", "--workers", "3", "--runs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "runs: 6, tokens in order: True" in done.stdout


def test_leader_elected_worker(cluster: LocalCluster) -> None:
    done = run_example(cluster, "leader_worker.py", "--candidates", "3", "--ticks", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("elected") == 3


def test_configuration_watcher(cluster: LocalCluster) -> None:
    addresses = ",".join(m.client for m in cluster.spec.members)
    watcher = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "config_watcher.py"), "--addresses", addresses,
         "--poll-s", "0.05", "--until-changes", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("config:")  # watching from here on
        assert run_example(cluster, "config_watcher.py", "--set", "mode=fast").returncode == 0
        assert watcher.stdout.readline() == "changed: {'mode': 'fast'}\n"
        assert run_example(cluster, "config_watcher.py", "--set", "mode=safe").returncode == 0
        out, _ = watcher.communicate(timeout=60)
        assert watcher.returncode == 0
        assert out == "changed: {'mode': 'safe'}\n"
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
