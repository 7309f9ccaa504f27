"""``pypaxos live --no-live``: the make-run demonstration passes and leaves no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Clusters

from pypaxos.cluster import processes


def test_live_kills_the_leader_and_loses_nothing(clusters: Clusters, tmp_path: Path) -> None:
    data = tmp_path / "live"
    base = processes.find_free_base_port(3)
    try:
        command = [sys.executable, "-m", "pypaxos", "live", "--no-live", "--duration-s", "6"]
        command += ["--data", str(data), "--base-port", str(base), "--seed", "1"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        cluster = clusters.adopt(data)  # stopped at teardown even if live failed to
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIGKILL to the leader" in result.stdout
    assert "is the new leader" in result.stdout
    assert "VERDICT: no acknowledged write was lost" in result.stdout
    assert cluster.running() == {}  # live stopped every node itself
