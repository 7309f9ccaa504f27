"""The machine's own limits, the floor under every figure of the suite.

* fsync latency: append 4 KiB to a file and ``fsync`` it, one at a time, in the data
  directory's filesystem (p50 and p99);
* fsyncs per second: as many sequential 128-byte append + ``fsync`` as fit in the time;
* loopback round trip: one byte there and back over TCP on 127.0.0.1 (``TCP_NODELAY``) between
  two processes, blocking sockets, p50 and p99;
* what the machine is: CPU model and count, kernel, memory, filesystem, load average.

Run standalone::

    .venv/bin/python bench/machine_limits.py [--dir DATA_DIR] [--runs 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pypaxos.bench.stats import Summary, percentile

FSYNC_RECORD_BYTES = 4096
RATE_RECORD_BYTES = 128
RTT_SAMPLES = 5000

Json = dict[str, Any]


def fsync_latency_us(directory: Path, samples: int) -> list[float]:
    record = os.urandom(FSYNC_RECORD_BYTES)
    path = directory / "fsync-latency.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        latencies = []
        for _ in range(samples):
            began = time.perf_counter()
            os.write(fd, record)
            os.fsync(fd)
            latencies.append((time.perf_counter() - began) * 1e6)
        return latencies
    finally:
        os.close(fd)
        path.unlink()


def fsyncs_per_s(directory: Path, seconds: float) -> float:
    record = os.urandom(RATE_RECORD_BYTES)
    path = directory / "fsync-rate.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        count = 0
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            os.write(fd, record)
            os.fsync(fd)
            count += 1
        return count / (time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()


def _echo(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := connection.recv(64):
        connection.sendall(data)
    connection.close()


def loopback_rtt_us(samples: int = RTT_SAMPLES) -> list[float]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    echo = multiprocessing.get_context("fork").Process(target=_echo, args=(listener,))
    echo.start()
    try:
        with socket.create_connection(listener.getsockname()) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            latencies = []
            for _ in range(samples + 100):
                began = time.perf_counter()
                client.sendall(b"x")
                client.recv(64)
                latencies.append((time.perf_counter() - began) * 1e6)
        return latencies[100:]  # the first round trips warm the path up
    finally:
        listener.close()
        echo.join(5)
        if echo.is_alive():
            echo.kill()
            echo.join()


def _filesystem(path: Path) -> str:
    best = ("", "?", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, kind = line.split()[:3]
            if str(path.resolve()).startswith(point) and len(point) >= len(best[0]):
                best = (point, device, kind)
    return f"{best[1]} on {best[0]} ({best[2]})"


def describe(directory: Path) -> Json:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in lscpu.splitlines())
    )
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "cpu_model": fields.get("Model name", platform.processor()),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "filesystem": _filesystem(directory),
        "load_average": os.getloadavg(),
        "lscpu": lscpu,
    }


def measure(directory: Path, runs: int = 3, fsync_samples: int = 300) -> Json:
    """``runs`` rounds of every measurement; medians with their spread."""
    with tempfile.TemporaryDirectory(prefix="bench-machine-", dir=directory) as scratch:
        where = Path(scratch)
        p50, p99, rate, rtt50, rtt99 = [], [], [], [], []
        for _ in range(runs):
            latencies = fsync_latency_us(where, fsync_samples)
            p50.append(percentile(latencies, 0.5))
            p99.append(percentile(latencies, 0.99))
            rate.append(fsyncs_per_s(where, 2.0))
            rtt = loopback_rtt_us()
            rtt50.append(percentile(rtt, 0.5))
            rtt99.append(percentile(rtt, 0.99))
    return {
        "machine": describe(directory),
        "fsync_p50_us": Summary.of(p50).as_json(),
        "fsync_p99_us": Summary.of(p99).as_json(),
        "fsyncs_per_s": Summary.of(rate).as_json(),
        "loopback_rtt_p50_us": Summary.of(rtt50).as_json(),
        "loopback_rtt_p99_us": Summary.of(rtt99).as_json(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.dir, args.runs)
    result["machine"].pop("lscpu")
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
