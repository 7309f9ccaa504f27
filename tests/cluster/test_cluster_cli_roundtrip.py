"""``pypaxos cluster up | status | down`` as a user runs them: separate processes, real nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Clusters

from pypaxos.cli.main import main
from pypaxos.cluster import processes


def pypaxos(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pypaxos", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def status(data: Path) -> list[dict[str, object]]:
    result = pypaxos("cluster", "status", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["nodes"]
    nodes: list[dict[str, object]] = document["nodes"]
    return nodes


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command line run by ``pypaxos.cli.main.main`` here: for the checks that start no
    node, without paying a Python start-up per check."""
    try:
        code = main(list(args))
    except SystemExit as exit:  # argparse: --help, bad usage
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_up_status_down_round_trip(
    clusters: Clusters, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    base = processes.find_free_base_port(3)
    up = pypaxos("cluster", "up", "--nodes", "3", "--data", str(data), "--base-port", str(base))
    cluster = clusters.adopt(data)
    assert up.returncode == 0, up.stderr
    for i in range(3):
        assert f"client 127.0.0.1:{base + i}" in up.stdout

    nodes = status(data)
    assert [n["id"] for n in nodes] == [1, 2, 3]
    for node in nodes:
        assert set(node) == {
            "id", "pid", "role", "client", "ballot", "commit_index", "lag", "state_digest",
            "digest_slot",
        }  # fmt: skip
        assert isinstance(node["pid"], int) and processes.is_node_process(node["pid"])
        assert node["role"] in ("leader", "follower")
        assert isinstance(node["commit_index"], int) and isinstance(node["lag"], int)
    assert [n["client"] for n in nodes] == [f"127.0.0.1:{base + i}" for i in range(3)]
    assert sum(n["role"] == "leader" for n in nodes) == 1
    leader = next(n for n in nodes if n["role"] == "leader")
    assert leader["lag"] == 0 and leader["ballot"]

    code, out, _ = in_process(capsys, "cluster", "status", "--data", str(data))
    assert code == 0 and "leader" in out and "follower" in out

    # The same from the client addresses alone, as from another machine; one of them dead.
    dead = f"127.0.0.1:{processes.find_free_base_port(1)}"
    endpoints = ",".join([f"127.0.0.1:{base + i}" for i in (2, 0, 1)] + [dead])
    code, out, err = in_process(capsys, "cluster", "status", "--endpoints", endpoints, "--json")
    assert code == 0, err
    remote = json.loads(out)["nodes"]
    assert [n["id"] for n in remote] == [3, 1, 2, None]
    assert [n["role"] for n in remote][:3] == [n["role"] for n in (nodes[2], nodes[0], nodes[1])]
    assert remote[3] == {
        "id": None, "pid": None, "role": "down", "client": dead,
        "ballot": None, "commit_index": None, "lag": None, "state_digest": None,
        "digest_slot": None,
    }  # fmt: skip
    assert all(isinstance(n["lag"], int) for n in remote[:3])

    code, _, err = in_process(capsys, "cluster", "up", "--data", str(data))
    assert code == 1 and "already running" in err
    other = str(tmp_path / "other")
    code, _, err = in_process(capsys, "cluster", "up", "--data", other, "--base-port", str(base))
    assert code == 1 and "in use" in err
    code, _, err = in_process(capsys, "cluster", "up", "--data", str(data), "--nodes", "5")
    assert code == 2 and "3 members" in err

    pids = [n["pid"] for n in nodes]
    down = pypaxos("cluster", "down", "--data", str(data))
    assert down.returncode == 0, down.stderr
    assert "stopped node 1" in down.stdout
    assert not any(processes.is_node_process(pid) for pid in pids if isinstance(pid, int))
    code, out, _ = in_process(capsys, "cluster", "status", "--data", str(data), "--json")
    assert [n["role"] for n in json.loads(out)["nodes"]] == ["down"] * 3
    for member in cluster.spec.members:
        assert not cluster.spec.pid_file(member.id).exists()
    assert in_process(capsys, "cluster", "down", "--data", str(data))[0] == 0


@pytest.mark.parametrize("command", ["up", "status", "down"])
def test_help_and_bad_usage(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = in_process(capsys, "cluster", command, "--help")
    assert code == 0 and "--data" in out
    assert in_process(capsys, "cluster", command, "--no-such-flag")[0] == 2


def test_impossible_sizes_are_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = in_process(
        capsys, "cluster", "up", "--nodes", "0", "--data", str(tmp_path / "d")
    )
    assert code == 2 and "--nodes" in err
    assert not (tmp_path / "d").exists()


def test_status_without_a_cluster_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = in_process(capsys, "cluster", "status", "--data", str(tmp_path / "none"))
    assert code == 1 and "no cluster" in err


def test_endpoints_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = in_process(capsys, "cluster", "status", "--endpoints", "nohost")
    assert code == 2 and "--endpoints" in err
    code, _, err = in_process(capsys, "cluster", "status", "--endpoints", "h:1", "--user", "u")
    assert code == 2 and "PYPAXOS_PASSWORD" in err
