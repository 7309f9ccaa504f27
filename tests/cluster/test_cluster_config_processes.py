"""``cluster.toml`` planning (checked against the node's own loader) and stopping processes."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pypaxos.cli import cluster_up as cmd_up
from pypaxos.cli.usage import UsageError
from pypaxos.cluster import config, processes
from pypaxos.runtime.config import (
    ConfigError,
    Member,
    load_config,
    new_config,
    render_config,
    write_config,
)


def test_the_planned_file_is_what_the_node_reads(tmp_path: Path) -> None:
    spec = config.plan(tmp_path / "data", nodes=3, base_port=7001, fsync="never")
    write_config(spec)
    node_side = load_config(spec.path)  # the node's strict loader gives the plan back
    assert node_side == spec
    assert 'data_dir = "."' in spec.path.read_text()
    assert node_side.cluster_id == spec.cluster_id
    assert node_side.data_dir == spec.data_dir == (tmp_path / "data").resolve()
    assert [(m.id, m.client, m.peer, m.metrics) for m in node_side.members] == [
        (1, "127.0.0.1:7001", "127.0.0.1:7101", "127.0.0.1:7201"),
        (2, "127.0.0.1:7002", "127.0.0.1:7102", "127.0.0.1:7202"),
        (3, "127.0.0.1:7003", "127.0.0.1:7103", "127.0.0.1:7203"),
    ]
    assert spec.pid_file(2) == spec.data_dir / "node-2" / "node.pid"
    assert spec.thrifty and node_side.thrifty


def test_a_plan_without_thrifty_reaches_the_node(tmp_path: Path) -> None:
    spec = config.plan(tmp_path / "data", nodes=3, thrifty=False)
    write_config(spec)
    assert "thrifty = false" in spec.path.read_text()
    assert load_config(spec.path) == spec
    assert not load_config(spec.path).multi_config().thrifty
    spec.path.write_text(spec.path.read_text().replace("thrifty = false", 'thrifty = "no"'))
    with pytest.raises(ConfigError) as caught:
        load_config(spec.path)
    assert caught.value.key == "thrifty"


def test_every_setting_survives_a_write_and_a_load(tmp_path: Path) -> None:
    members = (Member(1, "127.0.0.1:9101", "127.0.0.1:9001"), Member(5, "h:1", "h:2", "h:3"))
    elsewhere = tmp_path / "data"
    path = tmp_path / "config" / "c.toml"
    base = new_config(path, 'odd "id"', members, data_dir=elsewhere, tick_ms=7)
    protocol = {**base.protocol, "heartbeat_ticks": 3, "batch_max_commands": 9}
    original = dataclasses.replace(base, protocol=protocol).with_bugs(["no-repropose"])
    write_config(original)
    assert load_config(original.path) == original
    text = render_config(original)
    assert f'data_dir = "{elsewhere}"' in text  # outside the file's folder: absolute
    assert "[timeouts]\nheartbeat_ticks = 3\n" in text  # only what differs from the defaults
    assert "[limits]\nbatch_max_commands = 9\n" in text


@pytest.mark.parametrize(("nodes", "base"), [(0, 7001), (100, 7001), (3, 80), (3, 65400)])
def test_impossible_plans_are_refused(tmp_path: Path, nodes: int, base: int) -> None:
    with pytest.raises(ConfigError) as caught:
        config.plan(tmp_path, nodes, base)
    assert caught.value.key in ("--nodes", "--base-port")


def test_a_node_that_ignores_sigterm_is_killed_and_strangers_are_left_alone() -> None:
    # The trailing words make its command line look like a node's, as is_node_process checks.
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('ready', flush=True); time.sleep(60)",
            "pypaxos",
            "node",
        ],
        stdout=subprocess.PIPE,
    )
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        assert processes.is_node_process(stubborn.pid)
        assert not processes.is_node_process(stranger.pid)
        killed = processes.stop_pids([stubborn.pid, stranger.pid], timeout_s=0.3)
        assert killed == [stubborn.pid]
        with pytest.raises(ProcessLookupError):  # gone, and reaped by stop_pids
            os.kill(stubborn.pid, 0)
        assert stranger.poll() is None  # never signalled: not a pypaxos node
    finally:
        for process in (stubborn, stranger):
            process.kill()
            process.wait()


def test_cluster_up_no_thrifty_plans_it_and_refuses_an_existing_thrifty_cluster(
    tmp_path: Path,
) -> None:
    parser = argparse.ArgumentParser()
    cmd_up.add_arguments(parser)
    fresh = cmd_up.open_or_create(
        parser.parse_args(["--data", str(tmp_path / "a"), "--no-thrifty"])
    )
    assert not fresh.spec.thrifty and not load_config(fresh.spec.path).thrifty
    thrifty = cmd_up.open_or_create(parser.parse_args(["--data", str(tmp_path / "b")]))
    assert thrifty.spec.thrifty
    again = parser.parse_args(["--data", str(tmp_path / "b"), "--no-thrifty"])
    with pytest.raises(UsageError, match="new cluster only"):
        cmd_up.open_or_create(again)


def test_a_new_cluster_gets_a_private_peer_secret_and_a_private_file(tmp_path: Path) -> None:
    spec = config.plan(tmp_path / "data", nodes=3)
    config.create_secret(spec)
    write_config(spec)
    assert spec.peer_secret_file == spec.data_dir / "peer.secret"
    assert 'peer_secret_file = "peer.secret"' in spec.path.read_text()
    for path in (spec.path, spec.peer_secret_file):
        assert os.stat(path).st_mode & 0o077 == 0, path
    secret = load_config(spec.path).peer_secret()
    assert secret is not None and len(secret) == 32
    os.chmod(spec.peer_secret_file, 0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(spec.path).peer_secret()
    assert caught.value.key == "peer_secret_file"
