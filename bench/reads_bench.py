"""Reads side by side: pypaxos's five read modes, a single Redis's GET, etcd's two kinds of read.

For 3 and 5 nodes (fsync always), and each read mode of pypaxos:

* ``log``: a ``GET`` is a log command (a slot, an fsync on a majority);
* ``read-index``: the leader answers after one heartbeat round (no slot, no fsync);
* ``lease``: the leader answers at once under its lease;
* ``follower``: read-index with follower reads; a follower answers from its own state;
* ``stale``: ``READONLY`` connections, answered from the node's state at once (not
  linearizable; the reference for what a read costs with no coordination at all),

it measures

* ``one``: one client, one ``GET`` at a time (the closed-loop driver below), p50 and rate;
* ``tput``: ``redis-benchmark -t get -c 50 -P 16`` against the node the mode reads from (the
  leader; a follower for ``follower``); for ``follower`` and ``stale`` also ``spread``: every
  node loaded at once (the driver below with ``READONLY`` for ``stale``, since redis-benchmark
  cannot send it), summed;
* ``mixed``: 16 clients, 90% ``GET`` / 10% ``SET``, one request at a time each (a pipelined
  batch mixing reads and writes goes through the log whole, so the mix is measured unpipelined);

plus the durable ``SET`` throughput (``redis-benchmark -t set -c 50 -P 16``) the lease target
is stated against.  The same for ``redis-server`` (``appendfsync always``) and etcd 3.4's JSON
gateway (``POST /v3/kv/range``, linearizable and ``serializable``), one client and 64.

The driver is Python (uvloop when installed) for every system alike, so the one-client
figures carry the same client overhead everywhere; above some 30-60k requests a second it is
the bottleneck, which is why the throughput points use redis-benchmark where they can.
Standalone (about 3 minutes with ``--quick``)::

    .venv/bin/python bench/reads_bench.py [--quick] [--nodes 3,5] [--skip redis,etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from pypaxos.bench import redis_benchmark
from pypaxos.bench.httpload import run_post_load
from pypaxos.bench.loadgen import constant_factory
from pypaxos.bench.stats import percentile
from pypaxos.client.replies import ErrorReply, ReplyParser
from pypaxos.cluster import processes
from pypaxos.cluster.local import LocalCluster
from pypaxos.runtime.config import ReadPath, write_config
from pypaxos.transport import preferred_loop_factory
from pypaxos.transport.resp import encode_command

HERE = Path(__file__).resolve().parent
Json = dict[str, Any]
MODES = ("log", "read-index", "lease", "follower", "stale")
_CONFIG_READS: dict[str, ReadPath] = {
    "log": "log",
    "read-index": "read-index",
    "lease": "lease",
    "follower": "read-index",
    "stale": "read-index",
}
KEYSPACE = 10_000
VALUE = b"v" * 128
TPUT_CLIENTS, TPUT_PIPELINE = 50, 16
MIXED_CLIENTS, MIXED_READS = 16, 0.9


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# -- the closed-loop driver ------------------------------------------------------------------


@dataclasses.dataclass
class DriverResult:
    gets: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    sets: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    errors: int = 0

    def as_json(self, duration_s: float) -> Json:
        out: Json = {
            "throughput": (len(self.gets) + len(self.sets)) / duration_s,
            "get_p50_us": percentile(self.gets, 0.5),
            "get_p99_us": percentile(self.gets, 0.99),
            "errors": self.errors,
        }
        if self.sets:
            out["set_p50_us"] = percentile(self.sets, 0.5)
        return out


class _Connection(asyncio.Protocol):
    """One connection with one request outstanding: ``GET`` (``reads`` of them) or ``SET``."""

    def __init__(self, result: DriverResult, stop_at: float, reads: float, readonly: bool) -> None:
        self.result = result
        self.stop_at = stop_at
        self.reads = reads
        self.readonly = readonly
        self.rng = random.Random()
        self.parser = ReplyParser()
        self.pending: collections.deque[tuple[bool, float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.readonly:  # its +OK is answered first and not counted
            self.transport.write(encode_command(b"READONLY"))
            self.pending.append((False, -1.0))
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        key = b"key:%d" % self.rng.randrange(KEYSPACE)
        read = self.rng.random() < self.reads
        wire = encode_command(b"GET", key) if read else encode_command(b"SET", key, VALUE)
        self.pending.append((read, time.perf_counter()))  # before the write: it may answer
        self.transport.write(wire)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        for reply in self.parser.feed(data):
            read, sent = self.pending.popleft()
            if sent < 0:
                continue
            if isinstance(reply, ErrorReply):
                self.result.errors += 1
            elif now <= self.stop_at:
                (self.result.gets if read else self.result.sets).append((now - sent) * 1e6)
            if now < self.stop_at:
                self._send()
            elif not self.pending and not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def drive(
    targets: list[tuple[str, int]],
    clients_per_target: int,
    duration_s: float,
    reads: float = 1.0,
    readonly: bool = False,
) -> Json:
    """Closed loop: ``clients_per_target`` connections to each target, one request each."""
    loop = asyncio.get_running_loop()
    result = DriverResult()
    stop_at = time.perf_counter() + duration_s + 3600.0  # set once every connection is open
    conns = [
        _Connection(result, stop_at, reads, readonly)
        for _ in targets
        for _ in range(clients_per_target)
    ]
    addresses = [target for target in targets for _ in range(clients_per_target)]
    await asyncio.gather(
        *(
            loop.create_connection(constant_factory(c), host, port)
            for c, (host, port) in zip(conns, addresses, strict=True)
        )
    )
    stop_at = time.perf_counter() + duration_s
    for c in conns:
        c.stop_at = stop_at
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), duration_s + 10.0)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return result.as_json(duration_s)


def _run(coroutine: Coroutine[Any, Any, Json]) -> Json:
    with asyncio.Runner(loop_factory=preferred_loop_factory()) as runner:
        return runner.run(coroutine)


def _address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# -- redis-benchmark ---------------------------------------------------------------------------


def bench_tool(port: int, test: str, requests: int, host: str = "127.0.0.1") -> float:
    """``redis-benchmark -t test -c 50 -P 16`` over ``KEYSPACE`` keys: requests per second."""
    command = redis_benchmark.command_line(
        port, test, requests, TPUT_CLIENTS, TPUT_PIPELINE, len(VALUE), KEYSPACE, host
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    rows = redis_benchmark.parse_csv(done.stdout, requests)
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()[-300:]}")
    return rows[0].rps


def bench_tool_spread(ports: list[int], test: str, requests: int) -> float:
    """One redis-benchmark per node at once; their rates summed."""
    commands = [
        redis_benchmark.command_line(
            port, test, requests, TPUT_CLIENTS, TPUT_PIPELINE, len(VALUE), KEYSPACE
        )
        for port in ports
    ]
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
    total = 0.0
    for process in running:
        out, _ = process.communicate(timeout=300)
        rows = redis_benchmark.parse_csv(out, requests)
        total += rows[0].rps if rows else 0.0
    return total


# -- the systems -----------------------------------------------------------------------------


async def _up(
    nodes: int, mode: str, root: Path, thrifty_reads: bool = False
) -> tuple[LocalCluster, int]:
    cluster = LocalCluster.create(
        root, nodes, processes.find_free_base_port(nodes), "always", reads=_CONFIG_READS[mode]
    )
    if mode == "follower" or thrifty_reads:
        follower_reads = mode == "follower"
        spec = dataclasses.replace(cluster.spec, follower_reads=follower_reads)
        if thrifty_reads:  # only when asked: a tree without the key refuses it
            spec = dataclasses.replace(spec, thrifty_reads=True)
        write_config(spec)
        cluster = LocalCluster(spec)
    leader = await cluster.up(timeout_s=60)
    return cluster, leader.id


def pypaxos_mode(
    nodes: int, mode: str, duration_s: float, data_root: Path | None, thrifty_reads: bool = False
) -> Json:
    root = Path(tempfile.mkdtemp(prefix="pypaxos-reads-", dir=data_root))
    try:
        cluster, leader = _run_up(nodes, mode, root / "cluster", thrifty_reads)
        clients = {m.id: _address(m.client) for m in cluster.spec.members}
        follower = next(i for i in clients if i != leader)
        reader = follower if mode in ("follower", "stale") else leader
        host, port = clients[leader]
        point: Json = {"system": "pypaxos", "nodes": nodes, "mode": mode, "read_from": reader}
        bench_tool(port, "set", 40_000)  # the keys exist (and the cluster is warm)
        requests = int(max(20_000, 40_000 * duration_s))
        if mode == "read-index":
            point["set_tput"] = bench_tool(port, "set", requests)
        readonly = mode == "stale"
        point["one"] = _run(drive([clients[reader]], 1, duration_s, readonly=readonly))
        if mode != "stale":
            point["tput"] = bench_tool(clients[reader][1], "get", requests * 2)
        if mode in ("follower", "stale"):
            ports = [p for _, p in clients.values()]
            if mode == "follower":
                point["spread"] = bench_tool_spread(ports, "get", requests)
            else:
                targets = list(clients.values())
                point["spread"] = _run(drive(targets, 16, duration_s, readonly=True))["throughput"]
        mixed_targets = list(clients.values()) if mode in ("follower", "stale") else [(host, port)]
        per_target = max(1, MIXED_CLIENTS // len(mixed_targets))
        point["mixed"] = _run(drive(mixed_targets, per_target, duration_s, MIXED_READS, readonly))
        one = point["one"]
        log(
            f"pypaxos {nodes} nodes {mode}: one client p50 {one['get_p50_us']:.0f} us "
            f"({one['throughput']:,.0f}/s); get c=50 P=16 {_num(point.get('tput'))}/s; "
            f"all nodes {_num(point.get('spread'))}/s; mixed {point['mixed']['throughput']:,.0f}/s"
            + (f"; set {point['set_tput']:,.0f}/s" if "set_tput" in point else "")
        )
        cluster.down(timeout_s=10)
        return point
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_up(
    nodes: int, mode: str, root: Path, thrifty_reads: bool = False
) -> tuple[LocalCluster, int]:
    with asyncio.Runner() as runner:
        return runner.run(_up(nodes, mode, root, thrifty_reads))


def redis_reads(duration_s: float, data_root: Path | None) -> Json:
    import peer_redis

    with tempfile.TemporaryDirectory(prefix="bench-redis-reads-", dir=data_root) as scratch:
        process, port = peer_redis.start_redis("always", Path(scratch))
        try:
            bench_tool(port, "set", 40_000)
            requests = int(max(40_000, 200_000 * duration_s))
            point: Json = {"system": "redis", "mode": "appendfsync always"}
            point["set_tput"] = bench_tool(port, "set", requests)
            point["one"] = _run(drive([("127.0.0.1", port)], 1, duration_s))
            point["tput"] = bench_tool(port, "get", requests * 2)
            point["mixed"] = _run(
                drive([("127.0.0.1", port)], MIXED_CLIENTS, duration_s, MIXED_READS)
            )
            log(
                f"redis: one client p50 {point['one']['get_p50_us']:.0f} us; get c=50 P=16 "
                f"{point['tput']:,.0f}/s; set {point['set_tput']:,.0f}/s; "
                f"mixed {point['mixed']['throughput']:,.0f}/s"
            )
            return point
        finally:
            process.terminate()
            process.wait(10)


def etcd_reads(duration_s: float, data_root: Path | None) -> Json:
    import peer_etcd

    with tempfile.TemporaryDirectory(prefix="bench-etcd-reads-", dir=data_root) as scratch:
        cluster = peer_etcd.EtcdCluster(Path(scratch))
        try:
            cluster.start()
            leader = cluster.leader()
            assert leader is not None
            host, port = _address(leader.removeprefix("http://"))
            _run(peer_etcd.gateway_load(leader, 16, 1.0, len(VALUE)))  # puts: keys to read
            out: Json = {"system": "etcd", "members": peer_etcd.MEMBERS}
            for kind, serializable in (("linearizable", False), ("serializable", True)):
                for clients in (1, 64):

                    def body(client: int, index: int, s: bool = serializable) -> bytes:
                        key = base64.b64encode(b"key:%d" % ((client * 7919 + index) % 100)).decode()
                        return json.dumps({"key": key, "serializable": s}).encode()

                    load = asyncio.run(
                        run_post_load(
                            host, port, body, path="/v3/kv/range", clients=clients,
                            duration_s=duration_s,
                        )
                    )  # fmt: skip
                    out[f"{kind}_c{clients}"] = load.as_json(duration_s)
                    result = out[f"{kind}_c{clients}"]
                    log(
                        f"etcd {kind} range c={clients}: {result['throughput']:,.0f}/s, "
                        f"p50 {result['p50_us']:.0f} us"
                    )
            return out
        finally:
            cluster.stop()


def measure(
    nodes: list[int],
    modes: list[str],
    duration_s: float,
    skip: set[str],
    data_root: Path | None = None,
    thrifty_reads: bool = False,
) -> Json:
    """Every point (module docstring); a system that fails is reported, the rest still run."""
    began = time.time()
    data: Json = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(began)),
        "duration_s": duration_s,
        "pypaxos": [],
    }
    for count in nodes:
        for mode in modes:
            try:
                data["pypaxos"].append(
                    pypaxos_mode(count, mode, duration_s, data_root, thrifty_reads)
                )
            except Exception as error:  # one mode failing must not lose the others
                log(f"pypaxos {count} nodes {mode} failed: {error!r}")
                data.setdefault("failures", []).append(f"pypaxos {count} {mode}: {error!r}")
    peers: list[tuple[str, Callable[[], Json]]] = [
        ("redis", lambda: redis_reads(duration_s, data_root)),
        ("etcd", lambda: etcd_reads(duration_s, data_root)),
    ]
    for name, run in peers:
        if name in skip:
            continue
        try:
            data[name] = run()
        except Exception as error:
            log(f"{name} failed: {error!r}")
            data.setdefault("failures", []).append(f"{name}: {error!r}")
    data["elapsed_s"] = time.time() - began
    return data


def render(data: Json) -> str:
    """The Markdown tables of one run."""
    lines = [
        "| nodes | mode | one client p50 (us) | one client reads/s | GET c=50 P=16 /s "
        "| all nodes at once /s | 90/10 mix /s (GET p50 us) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in data.get("pypaxos", []):
        one, mixed = p["one"], p["mixed"]
        lines.append(
            f"| {p['nodes']} | {p['mode']} | {one['get_p50_us']:.0f} | {one['throughput']:,.0f} "
            f"| {_num(p.get('tput'))} | {_num(p.get('spread'))} "
            f"| {mixed['throughput']:,.0f} ({mixed['get_p50_us']:.0f}) |"
        )
    redis = data.get("redis")
    if redis:
        one, mixed = redis["one"], redis["mixed"]
        lines.append(
            f"| 1 | redis-server GET | {one['get_p50_us']:.0f} | {one['throughput']:,.0f} "
            f"| {_num(redis['tput'])} | - "
            f"| {mixed['throughput']:,.0f} ({mixed['get_p50_us']:.0f}) |"
        )
    etcd = data.get("etcd")
    if etcd:
        for kind in ("linearizable", "serializable"):
            one, many = etcd[f"{kind}_c1"], etcd[f"{kind}_c64"]
            lines.append(
                f"| 3 | etcd {kind} range | {one['p50_us']:.0f} | {one['throughput']:,.0f} "
                f"| {many['throughput']:,.0f} (c=64, HTTP) | - | - |"
            )
    sets = [
        f"{p['nodes']} nodes {p['set_tput']:,.0f}/s"
        for p in data.get("pypaxos", [])
        if "set_tput" in p
    ]
    if redis:
        sets.append(f"redis-server always {redis['set_tput']:,.0f}/s")
    lines.append("")
    lines.append("Durable SET, redis-benchmark c=50 P=16: " + "; ".join(sets) + ".")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="3,5")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="1.5 s per point")
    parser.add_argument("--skip", default="", help="comma-separated: redis,etcd")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=HERE / "last-reads.json")
    parser.add_argument(
        "--thrifty-reads",
        action="store_true",
        help="thrifty_reads = true in the pypaxos clusters (a read's round to a quorum only)",
    )
    args = parser.parse_args()
    duration_s = 1.5 if args.quick else args.duration_s
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {sorted(unknown)}; choose from {MODES}")
    data = measure(
        [int(n) for n in args.nodes.split(",")],
        modes,
        duration_s,
        set(args.skip.split(",")) - {""},
        args.data_root,
        args.thrifty_reads,
    )
    data["command"] = " ".join([str(Path(sys.argv[0])), *sys.argv[1:]])
    args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
