"""One client's read-index GETs to the leader while one follower is slow: the tail a read pays.

A thrifty read round (``thrifty_reads = true``) waits for the one follower it chose instead of
the quicker of two, so a follower that stalls or runs slowly shows in the reads' latency
tail.  This starts a local cluster (``reads = "read-index"``, fsync always, on free 127.0.0.1
ports), and with one blocking client sending one ``GET`` at a time to the leader measures:

* ``quiet``: ``--requests`` reads; latency percentiles and each node's CPU per read (from
  ``/proc/PID/task/*/schedstat``: the leader's, and the followers' mean);
* ``stalls``: for ``--phase-s``, the followers in turn are stopped (``SIGSTOP``) for
  ``--stop-ms`` and run ``--run-ms`` (a follower that stalls: a pause, a swap, a full disk);
* ``throttled``: for ``--phase-s``, one follower (each in turn for half the phase) is stopped
  ``--throttle-stop-ms`` of every ``--throttle-period-ms`` (a follower with half a CPU).

Every stopped process is continued before the cluster is brought down, whatever happens.

    PYTHONPATH=TREE/src .venv/bin/python bench/profile/slow_follower_reads.py [--nodes 3]
        [--thrifty-reads] [--requests 3000] [--phase-s 6]

``--thrifty-reads`` sets the key (a tree without it refuses it), so run base and the branch
with and without it, alternated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from pypaxos.bench.procstat import scheduled_cpu_ns
from pypaxos.cluster import processes
from pypaxos.cluster.local import LocalCluster
from pypaxos.runtime.config import write_config

SET = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
GET_REPLY = b"$3\r\nabc\r\n"


def ask(sock: socket.socket, request: bytes, reply: bytes) -> None:
    sock.sendall(request)
    got = b""
    while len(got) < len(reply):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the leader closed the connection")
        got += chunk
    if got != reply:
        raise RuntimeError(f"unexpected reply {got!r}")


def reads(sock: socket.socket, until: float | None, count: int) -> list[float]:
    """Latencies in µs of ``count`` reads, or of reads until ``until`` (perf_counter)."""
    latencies: list[float] = []
    while (until is None and len(latencies) < count) or (
        until is not None and time.perf_counter() < until
    ):
        started = time.perf_counter_ns()
        ask(sock, GET, GET_REPLY)
        latencies.append((time.perf_counter_ns() - started) / 1e3)
    return latencies


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {
        "reads": len(ordered),
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": ordered[-1],
        "mean_us": statistics.fmean(ordered),
    }


class Staller(threading.Thread):
    """Stops and continues followers on a schedule: ``(pid, stopped_s, running_s)`` steps,
    cycled until ``stop`` is set; the last one stopped is always continued."""

    def __init__(self, steps: list[tuple[int, float, float]]) -> None:
        super().__init__(daemon=True)
        self.steps = steps
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid, stopped_s, running_s in self.steps:
                if self.stop.is_set():
                    return
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(stopped_s)
                finally:
                    os.kill(pid, signal.SIGCONT)
                time.sleep(running_s)


def phase(
    sock: socket.socket, seconds: float, steps: list[tuple[int, float, float]]
) -> list[float]:
    staller = Staller(steps)
    staller.start()
    try:
        return reads(sock, time.perf_counter() + seconds, 0)
    finally:
        staller.stop.set()
        staller.join()


def measure(args: argparse.Namespace, root: Path) -> dict[str, object]:
    cluster = LocalCluster.create(
        root, args.nodes, processes.find_free_base_port(args.nodes), "always", reads="read-index"
    )
    if args.thrifty_reads:
        spec = dataclasses.replace(cluster.spec, thrifty_reads=True)
        write_config(spec)
        cluster = LocalCluster(spec)
    leader = asyncio.run(cluster.up(timeout_s=60))
    try:
        pids = {node_id: found[0] for node_id, found in cluster.running().items()}
        followers = [pids[i] for i in sorted(pids) if i != leader.id]
        host, _, port = leader.client.rpartition(":")
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ask(sock, SET, b"+OK\r\n")
        reads(sock, None, 500)  # warm
        before = {pid: scheduled_cpu_ns(pid) for pid in pids.values()}
        quiet = reads(sock, None, args.requests)
        spent = {pid: (scheduled_cpu_ns(pid) - before[pid]) / 1e3 / len(quiet) for pid in before}
        out: dict[str, object] = {"nodes": args.nodes, "thrifty_reads": args.thrifty_reads}
        out["quiet"] = percentiles(quiet) | {
            "leader_cpu_us": spent[pids[leader.id]],
            "follower_cpu_us": statistics.fmean(spent[p] for p in followers),
        }
        stop_s, run_s = args.stop_ms / 1e3, args.run_ms / 1e3
        out["stalls"] = percentiles(
            phase(sock, args.phase_s, [(p, stop_s, run_s) for p in followers])
        )
        held = args.throttle_stop_ms / 1e3
        free = (args.throttle_period_ms - args.throttle_stop_ms) / 1e3
        cycles = max(1, int(args.phase_s / 2 / (held + free)))
        throttled: list[float] = []
        for pid in followers[:2]:
            throttled += phase(sock, args.phase_s / 2, [(pid, held, free)] * cycles)
        out["throttled"] = percentiles(throttled)
        sock.close()
        return out
    finally:
        for pid in cluster.running().values():
            for one in pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(one, signal.SIGCONT)
        cluster.down(timeout_s=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--thrifty-reads", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--phase-s", type=float, default=6.0)
    parser.add_argument("--stop-ms", type=float, default=200.0)
    parser.add_argument("--run-ms", type=float, default=300.0)
    parser.add_argument("--throttle-stop-ms", type=float, default=3.0)
    parser.add_argument("--throttle-period-ms", type=float, default=6.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pypaxos-slow-follower-"))
    try:
        out = measure(args, root / "cluster")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    line = json.dumps(out)
    print(line)
    if args.json is not None:
        with args.json.open("a") as stream:
            stream.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
