"""A real ``redis-server`` (Debian's package) started for a benchmark, and timed while it loads.

``start`` runs one on a free loopback port with its append-only file in ``directory`` (on the
data disk, as pypaxos's logs are) and waits until it answers; ``restart_time`` starts one on an
existing directory and measures how long it takes to load its append-only file, both from
outside (until a ``GET`` is no longer answered ``-LOADING``) and as the server's own log reports
it (``DB loaded from append only file: 1.234 seconds``).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pypaxos.bench.redis_benchmark import ToolMissingError
from pypaxos.cluster.processes import find_free_base_port

START_TIMEOUT_S = 10.0
LOADED_LINE = re.compile(rb"DB loaded from append only file: ([0-9.]+) seconds")


def command_line(port: int, directory: Path, appendfsync: str) -> list[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise ToolMissingError("redis-server not found: apt-get install it")
    return [
        server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
        "--daemonize", "no", "--protected-mode", "no",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip


def _answer(port: int, wire: bytes, timeout_s: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout_s) as connection:
        connection.sendall(wire)
        return connection.recv(256)


def wait_serving(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> float:
    """Seconds until ``GET`` gets an answer that is not ``-LOADING`` (raises ``RuntimeError``
    when the server exits or the timeout passes)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {process.returncode}")
        try:
            reply = _answer(port, b"*2\r\n$3\r\nGET\r\n$5\r\nprobe\r\n")
        except OSError:
            time.sleep(0.005)
            continue
        if reply and not reply.startswith(b"-LOADING"):
            return time.monotonic() - began
        time.sleep(0.005)
    process.kill()
    process.wait()
    raise RuntimeError(f"redis-server did not serve within {timeout_s:g} s")


def start(
    directory: Path, appendfsync: str = "always", port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """A ``redis-server`` with its append-only file in ``directory``, answering on ``port``."""
    port = port or find_free_base_port(1)
    process = subprocess.Popen(command_line(port, directory, appendfsync), stdin=subprocess.DEVNULL)
    wait_serving(process, port, START_TIMEOUT_S)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True, slots=True)
class Restart:
    serving_s: float  # from the process's start to the first answer that is not -LOADING
    logged_load_s: float | None  # what the server logged as its load time
    aof_bytes: int

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "serving_s": self.serving_s,
            "logged_load_s": self.logged_load_s,
            "aof_bytes": self.aof_bytes,
        }


def directory_bytes(directory: Path, pattern: str = "**/*") -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern) if p.is_file())


def restart_time(
    process: subprocess.Popen[bytes],
    port: int,
    directory: Path,
    appendfsync: str = "always",
    timeout_s: float = 600.0,
) -> tuple[subprocess.Popen[bytes], Restart]:
    """Kill ``process`` (SIGKILL: what is acknowledged is in the file already), start a new
    server on the same directory and port, and time its load."""
    process.kill()
    process.wait()
    log_file = directory / "redis.log"
    logged_before = log_file.read_bytes() if log_file.exists() else b""
    aof_bytes = directory_bytes(directory, "appendonly*")
    aof_bytes += directory_bytes(directory, "appendonlydir/*")
    fresh = subprocess.Popen(command_line(port, directory, appendfsync), stdin=subprocess.DEVNULL)
    serving = wait_serving(fresh, port, timeout_s)
    logged_s = None
    for _ in range(20):  # the line may reach the file a moment after the first answer
        new = log_file.read_bytes()[len(logged_before) :] if log_file.exists() else b""
        if match := LOADED_LINE.search(new):
            logged_s = float(match.group(1))
            break
        time.sleep(0.05)
    return fresh, Restart(serving, logged_s, aof_bytes)
