"""Measure a local pypaxos cluster: throughput, latency, CPU per request, stability, catch-up.

One ``bench_cluster(config)`` starts a fresh cluster of ``nodes`` node processes in a temporary
data directory (``cluster.LocalCluster``, the machinery of ``pypaxos cluster up``, on free
ports), loads its leader through the Redis port, and always stops the nodes and removes the
directory afterwards, also on Ctrl-C.

For every point (tool, command, clients, pipeline) of the grid, and for each of
``extra_points`` (redis-benchmark only), it runs ``runs`` measured runs after one
short warm-up; each run records

* throughput and latency percentiles (``redis-benchmark`` or ``loadgen``, which records every
  request's latency itself);
* the CPU time all node processes used together during the run (``/proc/PID/stat``) divided
  by the requests served: CPU per committed request;
* failed requests (error replies, lost connections; ``loadgen`` only, redis-benchmark does not
  count them) and whether the leader changed (``leader_id`` or ``ballot`` in ``INFO`` of every
  node differs between before and after the run).

Optional checks: ``rss_check`` compares the nodes' resident memory after a run of
``duration_s`` and after one ten times as long (same small key space, so the state stops
growing); ``catch_up_entries`` stops a follower, writes that many entries, restarts it and
times how long it takes to apply everything the leader had committed when it restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypaxos.bench import loadgen, procstat, redis_benchmark
from pypaxos.bench.stats import Summary
from pypaxos.client.aio import fetch_info
from pypaxos.cluster import processes
from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus
from pypaxos.storage.file import FsyncMode

TOOLS = ("redis-benchmark", "loadgen")
WARMUP_S = 1.0
FIRST_RATE_GUESS = 2_000.0
RSS_KEYSPACE = 10_000
CATCH_UP_TIMEOUT_S = 600.0

Log = Callable[[str], None]
Json = dict[str, Any]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class ClusterBenchConfig:
    nodes: int = 3
    fsync: FsyncMode = "always"
    clients: tuple[int, ...] = (1, 16, 64)
    pipelines: tuple[int, ...] = (1, 16)
    # (clients, pipeline) points beyond the grid, each command, redis-benchmark only: a load
    # heavy enough to saturate the cluster, so "best throughput" is its capacity, not the
    # grid's largest load divided by its latency.
    extra_points: tuple[tuple[int, int], ...] = ()
    commands: tuple[str, ...] = ("set", "get")
    tools: tuple[str, ...] = TOOLS
    duration_s: float = 5.0
    runs: int = 3
    # Runs of the one-client points (c=1, P=1), whose p50 drifts most from run to run on a
    # shared machine (wake-up latency); 0: ``runs``.
    one_client_runs: int = 0
    value_bytes: int = 128
    rss_check: bool = False
    catch_up_entries: int = 0
    data_root: Path | None = None  # where the temporary data directory goes (None: system tmp)
    log: Log = field(default=_quiet, compare=False)


@dataclass(slots=True)
class _Target:
    cluster: LocalCluster
    host: str
    port: int

    def pids(self) -> list[int]:
        return sorted(pid for pids in self.cluster.running().values() for pid in pids)


async def leadership(cluster: LocalCluster) -> tuple[tuple[str, str], ...]:
    """Every node's ``(leader_id, ballot)`` from ``INFO``; down nodes answer ``("down", "")``."""
    answers = await asyncio.gather(
        *(fetch_info(m.client, 2.0) for m in cluster.spec.members), return_exceptions=True
    )
    return tuple(
        (a.get("leader_id", ""), a.get("ballot", "")) if isinstance(a, dict) else ("down", "")
        for a in answers
    )


async def _one_run(target: _Target, tool: str, command: str, clients: int, pipeline: int,
                   requests: int, duration_s: float, cfg: ClusterBenchConfig) -> Json:  # fmt: skip
    pids = target.pids()
    before = await leadership(target.cluster)
    cpu_before = procstat.cpu_seconds(pids)
    if tool == "loadgen":
        spec = loadgen.LoadSpec(
            target.host, target.port, clients, pipeline, duration_s, command, cfg.value_bytes
        )
        load = await loadgen.run_load(spec)
        run: Json = load.as_json()
        served = load.ok + load.late
    else:
        try:
            result = await asyncio.to_thread(
                redis_benchmark.run, target.port, command, requests, clients, pipeline,
                cfg.value_bytes,
            )  # fmt: skip
        except RuntimeError as error:  # it stops at the first error reply (e.g. TRYAGAIN)
            nan = float("nan")
            run = {"throughput": nan, "p50_us": nan, "p99_us": nan, "errors": 1}
            run["aborted"] = str(error).splitlines()[-1]
            cfg.log(f"redis-benchmark {command} c={clients} P={pipeline} stopped: {run['aborted']}")
            served = 0
        else:
            run = result.as_json()
            run["errors"] = None  # redis-benchmark does not report failed requests
            served = requests
    cpu_after = procstat.cpu_seconds(pids)
    after = await leadership(target.cluster)
    run["cpu_s"] = cpu_after - cpu_before
    run["cpu_us_per_op"] = procstat.cpu_us_per_op(cpu_before, cpu_after, served)
    run["leader_changed"] = before != after
    return run


def usable_rate(measured: float, fallback: float) -> float:
    """The rate that sizes the next run: ``measured`` unless a run that stopped early (NaN) or
    served nothing left none."""
    rate = float(measured)
    return rate if rate > 0 else fallback  # NaN > 0 is false too


def summarise(runs: list[Json]) -> Json:
    """Median and spread of each figure over the runs of one point."""
    summary: Json = {}
    for name in ("throughput", "p50_us", "p99_us", "cpu_us_per_op"):
        values = [float(r[name]) for r in runs if r.get(name) is not None]
        summary[name] = Summary.of([v for v in values if v == v]).as_json()  # drop NaN
    errors = [r["errors"] for r in runs if r.get("errors") is not None]
    summary["errors"] = sum(errors) if errors else None
    summary["leader_changed"] = any(r["leader_changed"] for r in runs)
    return summary


async def _point(target: _Target, tool: str, command: str, clients: int, pipeline: int,
                 cfg: ClusterBenchConfig) -> Json:  # fmt: skip
    warm = await _one_run(
        target, tool, command, clients, pipeline,
        redis_benchmark.requests_for(FIRST_RATE_GUESS, WARMUP_S, clients, pipeline) // 4,
        WARMUP_S, cfg,
    )  # fmt: skip
    rate = usable_rate(warm["throughput"], FIRST_RATE_GUESS)
    runs = []
    count = cfg.one_client_runs if clients == pipeline == 1 and cfg.one_client_runs else cfg.runs
    for _ in range(count):
        requests = redis_benchmark.requests_for(rate, cfg.duration_s, clients, pipeline)
        run = await _one_run(
            target, tool, command, clients, pipeline, requests, cfg.duration_s, cfg
        )
        rate = usable_rate(run["throughput"], rate)
        runs.append(run)
    point: Json = {
        "system": "pypaxos", "nodes": cfg.nodes, "fsync": cfg.fsync, "tool": tool,
        "command": command, "clients": clients, "pipeline": pipeline,
        "value_bytes": cfg.value_bytes, "runs": runs,
    }  # fmt: skip
    point.update(summarise(runs))
    tput = point["throughput"]
    cfg.log(
        f"pypaxos n={cfg.nodes} fsync={cfg.fsync} {tool} {command} c={clients} P={pipeline}: "
        f"{tput['median']:,.0f}/s [{tput['low']:,.0f}-{tput['high']:,.0f}] "
        f"p50 {point['p50_us']['median'] / 1000:.2f} ms, "
        f"cpu {point['cpu_us_per_op']['median']:.0f} us/op, errors {point['errors']}, "
        f"leader changed {point['leader_changed']}"
    )
    return point


async def _rss_check(target: _Target, cfg: ClusterBenchConfig) -> Json:
    def rss() -> int:
        return sum(procstat.rss_kib(pid) for pid in target.pids())

    async def load(duration_s: float) -> loadgen.LoadResult:
        spec = loadgen.LoadSpec(target.host, target.port, 16, 1, duration_s, "set",
                                cfg.value_bytes, keyspace=RSS_KEYSPACE)  # fmt: skip
        return await loadgen.run_load(spec)

    start_kib = rss()
    short = await load(cfg.duration_s)
    short_kib = rss()
    long = await load(10 * cfg.duration_s)
    long_kib = rss()
    growth = long_kib / short_kib - 1 if short_kib else float("nan")
    cfg.log(f"RSS: {start_kib} KiB at start, {short_kib} after {cfg.duration_s:g}s, "
            f"{long_kib} after a further {10 * cfg.duration_s:g}s ({growth:+.1%})")  # fmt: skip
    return {
        "start_kib": start_kib, "after_short_kib": short_kib, "after_long_kib": long_kib,
        "growth": growth, "short_ops": short.ok, "long_ops": long.ok,
        "errors": short.errors + long.errors,
    }  # fmt: skip


async def _applied(address: str) -> int | None:
    try:
        info = await fetch_info(address, 1.0)
    except (OSError, TimeoutError):
        return None
    text = info.get("applied_index", "")
    return int(text) if text.isdigit() else None


async def _catch_up(target: _Target, leader_id: int, cfg: ClusterBenchConfig) -> Json:
    """Stop a follower, write ``catch_up_entries`` entries, restart it, time its catch-up."""
    spec = target.cluster.spec
    follower = max(m.id for m in spec.members if m.id != leader_id)
    target.cluster.kill(follower, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while processes.node_pids(spec, follower) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    began = time.monotonic()
    written, errors = 0, 0
    while written < cfg.catch_up_entries:  # our load generator: it survives error replies
        load_spec = loadgen.LoadSpec(target.host, target.port, 64, 16, 5.0, "set",
                                     cfg.value_bytes)  # fmt: skip
        load = await loadgen.run_load(load_spec)
        written, errors = written + load.ok + load.late, errors + load.errors
    write_s = time.monotonic() - began
    goal = await _applied(f"{target.host}:{target.port}")
    assert goal is not None, "the leader did not answer INFO"
    started = time.monotonic()
    target.cluster.start_node(follower)
    address = spec.member(follower).client
    answered_s: float | None = None
    caught_up_s: float | None = None
    while time.monotonic() - started < CATCH_UP_TIMEOUT_S:
        applied = await _applied(address)
        now = time.monotonic() - started
        if applied is not None and answered_s is None:
            answered_s = now
        if applied is not None and applied >= goal:
            caught_up_s = now
            break
        await asyncio.sleep(0.02)
    cfg.log(f"catch-up: node {follower} restarted after {cfg.catch_up_entries:,} entries "
            f"({written / write_s:,.0f}/s, {errors} failed), answered after {answered_s} s, "
            f"caught up to index {goal} after {caught_up_s} s")  # fmt: skip
    return {
        "node": follower, "entries": written, "write_s": write_s,
        "write_rate": written / write_s, "write_errors": errors, "goal_index": goal,
        "answered_s": answered_s, "caught_up_s": caught_up_s,
    }  # fmt: skip


async def _up(cluster: LocalCluster, cfg: ClusterBenchConfig, attempts: int = 2) -> NodeStatus:
    """``cluster up``, tried again once (a loaded machine can miss the timeout); a failure
    carries the tail of every node's log, since the data directory is removed afterwards."""
    for attempt in range(1, attempts + 1):
        try:
            return await cluster.up(timeout_s=60)
        except ClusterError as error:
            tails = "\n".join(
                f"--- node {m.id}:\n{processes.tail(cluster.spec.log_file(m.id), 5)}"
                for m in cluster.spec.members
            )
            if attempt == attempts:
                raise ClusterError(f"{error}\n{tails}") from error
            cfg.log(f"cluster up failed ({error}); trying again\n{tails}")
    raise AssertionError("unreachable")


async def bench_cluster(cfg: ClusterBenchConfig) -> Json:
    """Start a cluster, measure every point of ``cfg``, stop it; returns JSON-ready results."""
    unknown = set(cfg.tools) - set(TOOLS)
    if unknown:
        raise ValueError(f"unknown tool(s) {sorted(unknown)}; choose from {TOOLS}")
    if "redis-benchmark" in cfg.tools or cfg.catch_up_entries:
        redis_benchmark.tool_path()  # fail early when it is missing
    root = Path(tempfile.mkdtemp(prefix="pypaxos-bench-", dir=cfg.data_root))
    result: Json | None = None
    cluster = LocalCluster.create(
        root / "cluster", cfg.nodes, processes.find_free_base_port(cfg.nodes), cfg.fsync
    )
    try:
        leader = await _up(cluster, cfg)
        host, _, port = leader.client.rpartition(":")
        target = _Target(cluster, host, int(port))
        cfg.log(f"pypaxos: {cfg.nodes} nodes, fsync {cfg.fsync}, leader node {leader.id}, "
                f"data in {root}")  # fmt: skip
        points = [
            await _point(target, tool, command, clients, pipeline, cfg)
            for tool in cfg.tools
            for command in cfg.commands
            for clients in cfg.clients
            for pipeline in cfg.pipelines
        ]
        if "redis-benchmark" in cfg.tools:
            points += [
                await _point(target, "redis-benchmark", command, clients, pipeline, cfg)
                for command in cfg.commands
                for clients, pipeline in cfg.extra_points
            ]
        result = {"nodes": cfg.nodes, "fsync": cfg.fsync, "points": points}
        result["rss"] = result["catch_up"] = None
        try:  # the long checks come last; a failure is reported, not fatal
            if cfg.rss_check:
                result["rss"] = await _rss_check(target, cfg)
            if cfg.catch_up_entries and leader.id is not None:
                result["catch_up"] = await _catch_up(target, leader.id, cfg)
        except (OSError, RuntimeError, AssertionError, ClusterError) as error:
            cfg.log(f"check failed: {error!r}")
            result["check_error"] = repr(error)
        return result
    finally:
        with contextlib.suppress(Exception):
            cluster.down(timeout_s=10)
        if result is not None:
            result["elections"] = _elections(cluster)
        shutil.rmtree(root, ignore_errors=True)


def _elections(cluster: LocalCluster) -> list[str]:
    """The nodes' log lines about elections (``became leader``, ``candidate``), in time order:
    what explains a leader change seen during a run, kept before the logs are removed."""
    lines: list[str] = []
    for member in cluster.spec.members:
        with contextlib.suppress(OSError):
            text = cluster.spec.log_file(member.id).read_text(errors="replace")
            lines += [line for line in text.splitlines() if "became leader" in line
                      or "candidate at" in line or "stepped down" in line.lower()]  # fmt: skip
    return sorted(lines)
