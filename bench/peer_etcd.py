"""etcd (Debian's etcd-server 3.4), a 3-member cluster on loopback: the production anchor.

Starts three ``etcd`` members on free 127.0.0.1 ports with their data in a temporary directory
on the data disk (etcd fsyncs its WAL before it acknowledges, like pypaxos ``--fsync always``),
then loads it two ways:

* ``etcdctl check perf --load L`` (Debian's etcd-client): etcd's own fixed-rate workload
  (``s`` 50 clients / 150 writes/s, ``m`` 200 / 1,000, ``l`` 500 / 8,000, ``xl`` 1,000 /
  15,000, 60 s each); it reports the throughput reached, the slowest request and PASS/FAIL;
* its HTTP/JSON gateway (``POST /v3/kv/put``) from a closed-loop asyncio client with C
  requests outstanding, recording every request's latency (``pypaxos.bench.httpload``: the
  same shape as the Redis-protocol ``loadgen`` that measures pypaxos, on the same event loop,
  so one client's latency carries the same client overhead on both sides).  The client is
  Python, so at high concurrency it may be the bottleneck; it runs on the same two cores as
  the members.

All members are stopped and the directory removed at the end, also on Ctrl-C.  Standalone::

    .venv/bin/python bench/peer_etcd.py [--concurrency 1,64,256] [--check-perf l] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pypaxos.bench import procstat
from pypaxos.bench.httpload import run_post_load
from pypaxos.bench.redis_benchmark import ToolMissingError
from pypaxos.bench.stats import Summary
from pypaxos.cluster.processes import find_free_base_port
from pypaxos.transport import preferred_loop_factory

Json = dict[str, Any]
MEMBERS = 3


class EtcdCluster:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("etcd")
        if binary is None or shutil.which("etcdctl") is None:
            raise ToolMissingError(
                "etcd/etcdctl not found: apt-get install etcd-server etcd-client"
            )
        self.binary = binary
        self.directory = directory
        base = find_free_base_port(MEMBERS)
        self.clients = [f"http://127.0.0.1:{base + i}" for i in range(MEMBERS)]
        self.peers = [f"http://127.0.0.1:{base + 100 + i}" for i in range(MEMBERS)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        initial = ",".join(f"m{i}={peer}" for i, peer in enumerate(self.peers))
        for i in range(MEMBERS):
            command = [
                self.binary, "--name", f"m{i}", "--data-dir", str(self.directory / f"m{i}"),
                "--listen-client-urls", self.clients[i], "--advertise-client-urls",
                self.clients[i], "--listen-peer-urls", self.peers[i],
                "--initial-advertise-peer-urls", self.peers[i], "--initial-cluster", initial,
                "--initial-cluster-token", "pypaxos-bench", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-level", "error",
            ]  # fmt: skip
            log = (self.directory / f"m{i}.log").open("wb")
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=log))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.leader() is not None:
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd cluster did not elect a leader; logs in {self.directory}")

    def etcdctl(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        command = ["etcdctl", "--endpoints", ",".join(self.clients), *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip

    def leader(self) -> str | None:
        """The leader's client URL, or None when there is none (yet)."""
        try:
            done = self.etcdctl("endpoint", "status", "-w", "json", timeout_s=10)
            statuses = json.loads(done.stdout) if done.returncode == 0 else []
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return None
        for entry in statuses:
            status = entry.get("Status", {})
            if status.get("leader") and status.get("header", {}).get("member_id") == status.get(
                "leader"
            ):
                return str(entry["Endpoint"])
        return None

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check_perf(cluster: EtcdCluster, load: str) -> Json:
    done = cluster.etcdctl("check", "perf", "--load", load, timeout_s=240)
    text = done.stdout + done.stderr
    # PASS: "Throughput is 150 writes/s" / FAIL: "Throughput too low: 958 writes/s", etc.
    throughput = re.search(r"(\d+) writes/s", text)
    slowest = re.search(r"Slowest request took[^\d]*([\d.]+)s", text)
    stddev = re.search(r"Stddev[^\d]*([\d.]+)s", text)
    verdicts = [
        line.strip()
        for line in re.split(r"[\r\n]+", text)
        if re.match(r"\s*(PASS|FAIL|Slowest|Stddev|Throughput)", line)
    ]
    return {
        "load": load,
        "passed": done.returncode == 0 and "FAIL" not in text,
        "throughput": float(throughput.group(1)) if throughput else None,
        "slowest_s": float(slowest.group(1)) if slowest else None,
        "stddev_s": float(stddev.group(1)) if stddev else None,
        "verdicts": verdicts,
        "output_tail": text[-600:],
    }


async def gateway_load(url: str, concurrency: int, duration_s: float, value_bytes: int) -> Json:
    """Closed-loop ``PUT`` through the JSON gateway with ``concurrency`` outstanding requests,
    with ``pypaxos.bench.httpload`` (built like the Redis-protocol ``loadgen``)."""
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None, url
    value = base64.b64encode(b"v" * value_bytes).decode()

    def body(client: int, index: int) -> bytes:
        key = base64.b64encode(b"key:%d" % ((client * 7919 + index) % 100_000)).decode()
        return json.dumps({"key": key, "value": value}).encode()

    result = await run_post_load(
        address.hostname, address.port, body, path="/v3/kv/put", clients=concurrency,
        duration_s=duration_s,
    )  # fmt: skip
    return result.as_json(duration_s)


def _run(coroutine: Coroutine[Any, Any, Json]) -> Json:
    """On uvloop when installed, as the pypaxos load generator runs."""
    with asyncio.Runner(loop_factory=preferred_loop_factory()) as runner:
        return runner.run(coroutine)


def measure(concurrency: list[int], loads: list[str], runs: int, duration_s: float,
            value_bytes: int = 128, data_root: Path | None = None,
            log: Callable[[str], None] = print, one_client_runs: int = 0) -> Json:  # fmt: skip
    """``one_client_runs``: runs of the one-client point (0: ``runs``), as for pypaxos's."""
    with tempfile.TemporaryDirectory(prefix="bench-etcd-", dir=data_root) as scratch:
        cluster = EtcdCluster(Path(scratch))
        try:
            cluster.start()
            leader = cluster.leader()
            assert leader is not None
            pids = [p.pid for p in cluster.processes]
            points = []
            for clients in concurrency:
                _run(gateway_load(leader, clients, 1.0, value_bytes))  # warm-up
                results = []
                for _ in range(one_client_runs if clients == 1 and one_client_runs else runs):
                    before = procstat.cpu_seconds(pids)
                    run = _run(gateway_load(leader, clients, duration_s, value_bytes))
                    run["cpu_us_per_op"] = procstat.cpu_us_per_op(
                        before, procstat.cpu_seconds(pids), run["ok"]
                    )
                    results.append(run)
                point: Json = {"system": "etcd", "tool": "gateway", "command": "set",
                               "clients": clients, "pipeline": 1, "runs": results}  # fmt: skip
                for name in ("throughput", "p50_us", "p99_us", "cpu_us_per_op"):
                    point[name] = Summary.of([r[name] for r in results]).as_json()
                point["errors"] = sum(r["errors"] for r in results)
                tput, p50 = point["throughput"]["median"], point["p50_us"]["median"] / 1000
                log(f"etcd gateway c={clients}: {tput:,.0f} puts/s, p50 {p50:.2f} ms, "
                    f"errors {point['errors']}")  # fmt: skip
                points.append(point)
            perf = []
            for load in loads:
                perf.append(check_perf(cluster, load))
                log(f"etcdctl check perf --load {load}: {perf[-1]['verdicts']}")
            same_leader = cluster.leader() == leader
            return {"gateway": points, "check_perf": perf, "leader_changed": not same_leader}
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,64,256")
    parser.add_argument("--check-perf", default="l", help="comma-separated loads (s,m,l,xl)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    loads = [x for x in args.check_perf.split(",") if x]
    result = measure([int(c) for c in args.concurrency.split(",")], loads, args.runs,
                     args.duration_s)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
