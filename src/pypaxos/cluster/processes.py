"""Node processes of a local cluster: start them detached, find them by pid file, stop them.

A node is started as ``python -m pypaxos node --config DATA/cluster.toml --id N`` in a session
of its own (so a Ctrl-C in the terminal that ran ``cluster up`` does not reach it), with stdout
and stderr appended to ``DATA/node-N/node.log``.  Two pid files say which process is node N:

* ``node.pid``, written by the node itself once it listens (docs/runtime-contract.md);
* ``spawned.pid``, written here the moment the process starts, so a node that hangs or dies
  before listening can still be found and stopped by ``cluster down``.

A pid counts as a node's only while the process is alive, not a zombie, and (where ``/proc``
exists) its command line is a ``pypaxos node``: a pid file left by a crash cannot make us signal
an unrelated process that reused the number.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pypaxos.cluster import config
from pypaxos.runtime.config import ClusterConfig
from pypaxos.storage.file import FsyncMode

SPAWNED_PID_NAME = "spawned.pid"
STOP_POLL_S = 0.05


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_node_process(pid: int) -> bool:
    """``pid`` is a live (non-zombie) ``pypaxos node`` process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not one of ours
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True  # no /proc (macOS): trust the signal check
    try:
        stat = (proc / "stat").read_text()
        state = stat.rpartition(")")[2].split()[0]
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False  # it vanished meanwhile
    return state not in ("Z", "X") and b"pypaxos" in command and b"node" in command


def node_pids(spec: ClusterConfig, node_id: int) -> list[int]:
    """The live process(es) that are node ``node_id``, from its pid files."""
    pids: list[int] = []
    for path in (spec.pid_file(node_id), spec.node_dir(node_id) / SPAWNED_PID_NAME):
        pid = read_pid(path)
        if pid is not None and pid not in pids and is_node_process(pid):
            pids.append(pid)
    return pids


def remove_stale_pid_files(spec: ClusterConfig, node_id: int) -> None:
    for path in (spec.pid_file(node_id), spec.node_dir(node_id) / SPAWNED_PID_NAME):
        pid = read_pid(path)
        if pid is None or not is_node_process(pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails, as it will for the node (which sets SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def find_free_base_port(
    nodes: int, rng: random.Random | None = None, low: int = 20000, high: int = 32000
) -> int:
    """A base port whose whole plan (client, peer and metrics blocks) is free right now.

    Below Linux's ephemeral range (32768 up, ``ip_local_port_range``): a port that is free now
    but in that range can become the local end of any outgoing connection (a peer link, a
    load generator's), and a node restarted later then cannot bind it (the likely cause of a
    bench catch-up run whose restarted node found its metrics port in use)."""
    rng = rng if rng is not None else random.Random()
    offsets = (0, config.PEER_PORT_OFFSET, config.METRICS_PORT_OFFSET)
    for _ in range(200):
        base = rng.randrange(low, high)
        ports = [base + offset + i for offset in offsets for i in range(nodes)]
        if not any(port_in_use(config.HOST, port) for port in ports):
            return base
    raise OSError(f"no free block of ports for {nodes} nodes between {low} and {high}")


def node_command(
    spec: ClusterConfig,
    node_id: int,
    fsync: FsyncMode | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The node's command line; ``extra`` arguments go at the end (``--join``...)."""
    command = [sys.executable, "-m", "pypaxos", "node", "--config", str(spec.path)]
    command += ["--id", str(node_id)]
    if fsync is not None:
        command += ["--fsync", fsync]
    return command + list(extra)


def spawn_node(
    spec: ClusterConfig,
    node_id: int,
    fsync: FsyncMode | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start node ``node_id`` detached, logging to its ``node.log``; record its pid at once."""
    node_dir = spec.node_dir(node_id)
    node_dir.mkdir(parents=True, exist_ok=True)
    with spec.log_file(node_id).open("ab") as log:
        log.write(f"--- started by pypaxos at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        process = subprocess.Popen(
            node_command(spec, node_id, fsync, extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (node_dir / SPAWNED_PID_NAME).write_text(f"{process.pid}\n")
    return process


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child, so it is not a zombie
    return not is_node_process(pid)


def stop_pids(pids: Iterable[int], timeout_s: float = 10.0) -> list[int]:
    """SIGTERM every pid, wait up to ``timeout_s``, then SIGKILL the rest and wait for them.

    Returns the pids that had to be killed.
    """
    waiting = [pid for pid in pids if not _gone(pid)]
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        time.sleep(STOP_POLL_S)
        waiting = [pid for pid in waiting if not _gone(pid)]
    killed = list(waiting)
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while waiting and time.monotonic() < deadline:
        time.sleep(STOP_POLL_S)
        waiting = [pid for pid in waiting if not _gone(pid)]
    return killed


def tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
