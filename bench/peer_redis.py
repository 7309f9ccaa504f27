"""A real Redis server (Debian's redis-server) as the single-node durable upper bound.

Each mode starts a fresh ``redis-server`` on a free loopback port with its append-only file in a
temporary directory on the data disk: ``appendfsync always`` (an fsync before every reply, as
pypaxos ``--fsync always``, though Redis fsyncs once per event-loop round, so it group-commits
too) and ``appendfsync everysec`` (an fsync a second: a crash may lose a second of writes).
It is loaded with ``redis-benchmark`` at the same points as pypaxos; the CPU per request is
the server's, from ``/proc``.  Standalone::

    .venv/bin/python bench/peer_redis.py [--modes always,everysec] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypaxos.bench import procstat, redis_benchmark, redis_server
from pypaxos.bench.stats import Summary

Json = dict[str, Any]
POINTS = ((1, 1), (16, 1), (64, 1), (16, 16), (64, 16))  # (clients, pipeline)


def start_redis(mode: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    return redis_server.start(directory, mode)


def measure(modes: list[str], runs: int, duration_s: float, value_bytes: int = 128,
            data_root: Path | None = None, log: Callable[[str], None] = print,
            commands: tuple[str, ...] = ("set", "get")) -> list[Json]:  # fmt: skip
    points = []
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="bench-redis-", dir=data_root) as scratch:
            process, port = start_redis(mode, Path(scratch))
            try:
                for command in commands:
                    for clients, pipeline in POINTS:
                        point = _point(port, process.pid, mode, command, clients, pipeline,
                                       runs, duration_s, value_bytes, log)  # fmt: skip
                        points.append(point)
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return points


def _point(port: int, pid: int, mode: str, command: str, clients: int, pipeline: int,
           runs: int, duration_s: float, value_bytes: int,
           log: Callable[[str], None]) -> Json:  # fmt: skip
    warm = redis_benchmark.run(port, command, 20 * clients * pipeline + 1000, clients, pipeline)
    rate = warm.rps
    results = []
    for _ in range(runs):
        requests = redis_benchmark.requests_for(rate, duration_s, clients, pipeline)
        before = procstat.cpu_seconds([pid])
        result = redis_benchmark.run(port, command, requests, clients, pipeline, value_bytes)
        run: Json = result.as_json()
        run["cpu_us_per_op"] = procstat.cpu_us_per_op(before, procstat.cpu_seconds([pid]), requests)
        rate = result.rps
        results.append(run)
    point: Json = {
        "system": "redis", "mode": mode, "tool": "redis-benchmark", "command": command,
        "clients": clients, "pipeline": pipeline, "runs": results,
    }  # fmt: skip
    for name in ("throughput", "p50_us", "p99_us", "cpu_us_per_op"):
        point[name] = Summary.of([float(r[name]) for r in results]).as_json()
    tput, p50 = point["throughput"]["median"], point["p50_us"]["median"] / 1000
    log(f"redis appendfsync {mode} {command} c={clients} P={pipeline}: "
        f"{tput:,.0f}/s, p50 {p50:.2f} ms")  # fmt: skip
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="always,everysec")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    points = measure(args.modes.split(","), args.runs, args.duration_s)
    if args.json:
        args.json.write_text(json.dumps(points, indent=1) + "\n")


if __name__ == "__main__":
    main()
