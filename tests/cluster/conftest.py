"""Fixtures for the real-process cluster tests: clusters on free ports, always stopped by pid.

``make_cluster`` creates a ``LocalCluster`` in a fresh temporary data directory on a free block
of ports (chosen by ``find_free_base_port``, so parallel runs do not clash) and, at teardown,
stops it with ``cluster.down()`` and then SIGKILLs every pid it still knows -- processes the
fixture started, pid files, and any pid a test registered with ``track`` -- so a failing test
never leaves a node running.  The tests are skipped, with the reason, when ``pypaxos node``
does not exist yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pypaxos.cluster import LocalCluster, processes


def node_command_available() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "pypaxos", "node", "--help"], capture_output=True, timeout=30
    )
    return result.returncode == 0


@pytest.fixture(scope="session")
def node_available() -> None:
    if not node_command_available():
        pytest.skip("`pypaxos node` is not available yet (src/pypaxos/runtime)")


@dataclass
class Clusters:
    root: Path
    made: list[LocalCluster] = field(default_factory=list)
    extra_pids: set[int] = field(default_factory=set)

    def make(
        self, nodes: int = 3, fsync: str = "always", name: str = "data", state_digest: bool = True
    ) -> LocalCluster:
        """A new local cluster (with the running state digest unless told otherwise: the
        tests compare replicas by it)."""
        base = processes.find_free_base_port(nodes)
        cluster = LocalCluster.create(
            self.root / name,
            nodes,
            base,
            fsync,
            state_digest=state_digest,
        )
        self.made.append(cluster)
        return cluster

    def adopt(self, data_dir: Path) -> LocalCluster:
        """A cluster started by something else (the CLI) in ``data_dir``: stop it at teardown."""
        cluster = LocalCluster.open(data_dir)
        self.made.append(cluster)
        return cluster

    def track(self, pid: int) -> None:
        """A process the test started itself; killed at teardown if still running."""
        self.extra_pids.add(pid)

    def cleanup(self) -> None:
        pids = set(self.extra_pids)
        for cluster in self.made:
            with contextlib.suppress(Exception):
                cluster.down(timeout_s=5.0)
            pids |= {p.pid for p in cluster.started.values()}
            for member in cluster.spec.members:
                pids |= set(processes.node_pids(cluster.spec, member.id))
        for pid in pids:
            if processes.is_node_process(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)


@pytest.fixture
def clusters(tmp_path: Path, node_available: None) -> Iterator[Clusters]:
    made = Clusters(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


MakeCluster = Callable[..., LocalCluster]
