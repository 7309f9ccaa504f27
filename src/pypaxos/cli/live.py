"""``pypaxos live``: a real cluster under load loses its leader and keeps every acknowledged write.

What it does, in order (and what ``make run`` shows):

1. starts a local cluster (``LocalCluster``) of ``--nodes`` processes in a temporary directory on
   free ports (or ``--data`` / ``--base-port``) and waits for a leader;
2. runs ``--clients`` concurrent ``AsyncClient`` workers, each writing unique keys
   (``live:W:N``) through the exactly-once session and now and then reading one of its own
   writes back; every call is recorded as a history (``sim.linearizability`` format);
3. at ``--kill-after-s`` sends SIGKILL to the leader's process and keeps the workload going:
   the view shows the survivors electing a new leader and the writes resuming;
4. after ``--duration-s`` stops the workload and reads every acknowledged write back through a
   surviving node *other than the leader* (the follower forwards each read through the log);
5. prints the verdict -- lost writes, wrong reads, whether the history is linearizable -- and
   stops every process it started, also on Ctrl-C or an error.  Exit 0 when nothing was lost.

A write whose outcome stayed unknown (the leader died holding it) may be present or absent;
either is correct, so those are counted, not judged.  The rich live view redraws four times a
second; ``--no-live`` (or an output that is not a terminal) prints plain lines instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pypaxos.client import AsyncClient, ClientError, OutcomeUnknownError
from pypaxos.cluster import processes
from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus
from pypaxos.runtime.config import CONFIG_NAME, ConfigError
from pypaxos.storage.file import FSYNC_MODES

WINDOW_S = 2.0  # throughput and latency are over the last WINDOW_S seconds
READ_EVERY_OPS = 4  # a worker reads one of its writes back after every N writes
MGET_KEYS_MAX = 256
EVENTS_SHOWN = 8
UP_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0  # workers still blocked in a retry this long after the end are cancelled


@dataclass
class Stats:
    """Everything the view shows and the verdict needs; mutated only on the event loop."""

    started: float = field(default_factory=time.monotonic)
    acked: dict[str, str] = field(default_factory=dict)  # key -> value, writes acknowledged
    unknown: dict[str, str] = field(default_factory=dict)  # outcome unknown
    failed: int = 0  # definite errors
    wrong_reads: list[str] = field(default_factory=list)
    completions: deque[tuple[float, float]] = field(default_factory=deque)  # (time, latency_s)
    events: list[tuple[float, str]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # JSON Lines events (wgl)
    nodes: list[NodeStatus] = field(default_factory=list)
    killed: int | None = None
    killed_at: float | None = None
    first_ack_after_kill: float | None = None
    new_leader_at: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        self.events.append((self.now(), text))

    def record(self, latency_s: float) -> None:
        now = time.monotonic()
        self.completions.append((now, latency_s))
        while self.completions and self.completions[0][0] < now - WINDOW_S:
            self.completions.popleft()
        if self.killed_at is not None and self.first_ack_after_kill is None:
            self.first_ack_after_kill = now - self.killed_at
            self.note(
                f"writes resume: first acknowledgement {self.first_ack_after_kill:.2f}s "
                "after the kill"
            )

    def window(self) -> tuple[float, float | None, float | None]:
        """Operations per second, p50 and p99 latency (ms) over the last ``WINDOW_S``."""
        now = time.monotonic()
        recent = [lat for t, lat in self.completions if t >= now - WINDOW_S]
        if not recent:
            return 0.0, None, None
        span = min(WINDOW_S, max(0.25, now - self.started))
        ordered = sorted(recent)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return len(recent) / span, statistics.median(ordered) * 1e3, p99 * 1e3

    def leader(self) -> NodeStatus | None:
        return next((n for n in self.nodes if n.role == "leader"), None)


class Reporter:
    """Plain lines (``--no-live``) or a rich live view, over the same ``Stats``."""

    def __init__(self, stats: Stats, live: bool, console: Console) -> None:
        self.stats = stats
        self.console = console
        self._live = Live(console=console, refresh_per_second=4, transient=False) if live else None
        self._printed_events = 0
        self._last_line = 0.0

    def __enter__(self) -> Reporter:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(None, None, None)
        else:
            self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(self.render())
            return
        for at, text in self.stats.events[self._printed_events :]:
            print(f"[{at:6.2f}s] {text}", flush=True)
        self._printed_events = len(self.stats.events)
        if force or time.monotonic() - self._last_line >= 1.0:
            self._last_line = time.monotonic()
            print(f"[{self.stats.now():6.2f}s] {self.summary()}", flush=True)

    def summary(self) -> str:
        stats = self.stats
        rate, p50, p99 = stats.window()
        leader = stats.leader()
        return (
            f"leader {leader.id if leader else '-'}  {rate:7.1f} ops/s  "
            f"p50 {_ms(p50)}  p99 {_ms(p99)}  acknowledged {len(stats.acked)}  "
            f"unknown {len(stats.unknown)}  errors {stats.failed}"
        )

    def render(self) -> Group:
        stats = self.stats
        nodes = Table(title="nodes", expand=True)
        for heading in ("node", "role", "pid", "ballot", "commit", "lag"):
            nodes.add_column(heading)
        for node in stats.nodes:
            role = node.role if node.id != stats.killed else "killed (SIGKILL)"
            style = {"leader": "bold green", "follower": "cyan", "candidate": "yellow"}
            nodes.add_row(
                str(node.id),
                Text(role, style=style.get(node.role, "red")),
                str(node.pid or "-"),
                node.ballot or "-",
                "-" if node.commit_index is None else str(node.commit_index),
                "-" if node.lag is None else str(node.lag),
            )
        rate, p50, p99 = stats.window()
        numbers = Table.grid(padding=(0, 2))
        numbers.add_row("elapsed", f"{stats.now():.1f} s")
        numbers.add_row("throughput", f"{rate:.0f} ops/s")
        numbers.add_row("latency p50 / p99", f"{_ms(p50)} / {_ms(p99)}")
        numbers.add_row("acknowledged writes", str(len(stats.acked)))
        numbers.add_row("outcome unknown", str(len(stats.unknown)))
        numbers.add_row("errors / wrong reads", f"{stats.failed} / {len(stats.wrong_reads)}")
        events = Text("\n".join(f"{at:6.2f}s  {text}" for at, text in stats.events[-EVENTS_SHOWN:]))
        return Group(
            nodes,
            Panel(numbers, title="workload"),
            Panel(events, title="events"),
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


async def worker(
    index: int, client: AsyncClient, stats: Stats, stop: asyncio.Event, rng: random.Random
) -> None:
    """Write unique keys until ``stop``; read an earlier own write back every few writes."""
    mine: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        key, value = f"live:{index}:{n}", f"{index}-{n}-{rng.randrange(1 << 30):x}"
        stats.history.append(_event(index, "invoke", "write", key, value))
        began = time.monotonic()
        try:
            await client.set(key, value)
        except OutcomeUnknownError:
            stats.unknown[key] = value
            stats.history.append(_event(index, "info", "write", key, value))
            continue
        except ClientError as error:
            stats.failed += 1
            stats.history.append(_event(index, "fail", "write", key, value))
            stats.note(f"client {index}: write failed: {error}")
            continue
        stats.record(time.monotonic() - began)
        stats.acked[key] = value
        stats.history.append(_event(index, "ok", "write", key, value))
        mine.append(key)
        if n % READ_EVERY_OPS == 0:
            await read_back(index, client, stats, rng.choice(mine))


async def read_back(index: int, client: AsyncClient, stats: Stats, key: str) -> None:
    stats.history.append(_event(index, "invoke", "read", key, None))
    began = time.monotonic()
    try:
        got = await client.get(key)
    except ClientError:
        stats.history.append(_event(index, "fail", "read", key, None))
        return
    stats.record(time.monotonic() - began)
    value = None if got is None else got.decode()
    stats.history.append(_event(index, "ok", "read", key, value))
    if value != stats.acked[key]:
        stats.wrong_reads.append(f"{key}: read {value!r}, wrote {stats.acked[key]!r}")


def _event(process: int | str, kind: str, f: str, key: str, value: str | None) -> dict[str, Any]:
    return {"process": process, "type": kind, "f": f, "key": key, "value": value}


async def monitor(
    cluster: LocalCluster, stats: Stats, reporter: Reporter, stop: asyncio.Event
) -> None:
    """Poll every node's ``INFO`` and redraw the view until ``stop``."""
    while not stop.is_set():
        stats.nodes = await cluster.statuses(timeout_s=0.3)
        leader = stats.leader()
        if (
            stats.killed is not None
            and stats.new_leader_at is None
            and leader is not None
            and leader.id != stats.killed
            and stats.killed_at is not None
        ):
            stats.new_leader_at = time.monotonic() - stats.killed_at
            stats.note(
                f"node {leader.id} is the new leader (ballot {leader.ballot}), "
                f"{stats.new_leader_at:.2f}s after the kill"
            )
        reporter.tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def kill_leader(cluster: LocalCluster, stats: Stats) -> None:
    nodes = await cluster.statuses()
    leader = next((n for n in nodes if n.role == "leader"), None)
    if leader is None or leader.id is None:
        stats.note("no leader to kill right now; trying again shortly")
        return
    pids = cluster.kill(leader.id, signal.SIGKILL)
    stats.killed, stats.killed_at = leader.id, time.monotonic()
    stats.note(f"SIGKILL to the leader, node {leader.id} (pid {', '.join(map(str, pids))})")


async def verify(cluster: LocalCluster, stats: Stats) -> tuple[str, int]:
    """Read every acknowledged write back through a surviving follower; returns the node used."""
    nodes = await cluster.statuses()
    alive = [n for n in nodes if n.role != "down" and n.id != stats.killed]
    readers = [n for n in alive if n.role != "leader"] or alive
    if not readers:
        raise ClusterError("no surviving node answers: cannot verify")
    reader = readers[0]
    stats.note(
        f"reading {len(stats.acked)} acknowledged writes back through node {reader.id} "
        f"({reader.role})"
    )
    keys = sorted(stats.acked) + sorted(stats.unknown)
    lost: list[str] = []
    present_unknown = 0
    async with AsyncClient([reader.client], timeout_s=3.0, follow_leader=False) as client:
        for start in range(0, len(keys), MGET_KEYS_MAX):
            chunk = keys[start : start + MGET_KEYS_MAX]
            # One process per key: the MGET is one concurrent read of each.
            for key in chunk:
                stats.history.append(_event(f"verify:{key}", "invoke", "read", key, None))
            values = await client.mget(*chunk)
            for key, raw in zip(chunk, values, strict=True):
                value = None if raw is None else raw.decode()
                stats.history.append(_event(f"verify:{key}", "ok", "read", key, value))
                if key in stats.acked and value != stats.acked[key]:
                    lost.append(f"{key}: wrote {stats.acked[key]!r}, read {value!r}")
                elif key in stats.unknown and value is not None:
                    present_unknown += 1
    stats.wrong_reads.extend(lost)
    return f"node {reader.id} ({reader.role})", present_unknown


async def run_live(args: argparse.Namespace, console: Console) -> int:
    rng = random.Random(args.seed)
    temporary = args.data is None
    data = Path(tempfile.mkdtemp(prefix="pypaxos-live-")) if temporary else args.data
    if (data / CONFIG_NAME).exists():
        cluster = LocalCluster.open(data, args.fsync)
    else:
        base = args.base_port or processes.find_free_base_port(args.nodes, rng)
        cluster = LocalCluster.create(data, args.nodes, base, args.fsync or "always")
    stats = Stats()
    ok = False
    # SIGTERM cancels the run like Ctrl-C does, so the `finally` below stops the nodes.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        stats.note(f"starting {len(cluster.spec.members)} nodes in {data}")
        leader = await cluster.up(UP_TIMEOUT_S)
        stats.note(f"node {leader.id} is the leader (ballot {leader.ballot})")
        ok = await drive(cluster, stats, args, console, rng)
        return 0 if ok else 1
    finally:
        cluster.down(timeout_s=5.0)
        if temporary and ok:
            shutil.rmtree(data, ignore_errors=True)
        elif temporary:
            print(f"node logs kept in {data}", file=sys.stderr)


async def drive(
    cluster: LocalCluster,
    stats: Stats,
    args: argparse.Namespace,
    console: Console,
    rng: random.Random,
) -> bool:
    stop_workload, stop_monitor = asyncio.Event(), asyncio.Event()
    addresses = cluster.spec.client_addresses
    clients = [
        AsyncClient(addresses, timeout_s=1.0, retries=12, rng=random.Random(rng.random()))
        for _ in range(args.clients)
    ]
    kill_at = args.kill_after_s if args.kill_after_s is not None else args.duration_s * 0.35
    live_view = not args.no_live and console.is_terminal
    with Reporter(stats, live_view, console) as reporter:
        watcher = asyncio.create_task(monitor(cluster, stats, reporter, stop_monitor))
        workers = [
            asyncio.create_task(worker(i + 1, c, stats, stop_workload, random.Random(rng.random())))
            for i, c in enumerate(clients)
        ]
        try:
            began = stats.now()
            stats.note(
                f"{args.clients} clients writing for {args.duration_s:g}s; "
                f"the leader dies {kill_at:g}s in"
            )
            while stats.now() - began < args.duration_s:
                if stats.killed is None and stats.now() - began >= kill_at:
                    await kill_leader(cluster, stats)
                await asyncio.sleep(0.05)
            stop_workload.set()
            stats.note("workload stopped")
            _, pending = await asyncio.wait(workers, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            reader, present_unknown = await verify(cluster, stats)
        finally:
            stop_workload.set()
            stop_monitor.set()
            for task in workers:
                task.cancel()
            await asyncio.gather(watcher, *workers, return_exceptions=True)
            for client in clients:
                await client.aclose()
    # Imported here: every command module is imported at CLI start, `pypaxos node` included.
    from pypaxos.lincheck.wgl import check_history, history_from_events

    result = check_history(history_from_events(stats.history), timeout_s=30.0)
    return verdict(stats, reader, present_unknown, result.outcome, console)


def verdict(
    stats: Stats, reader: str, present_unknown: int, linearizable: str, console: Console
) -> bool:
    ok = not stats.wrong_reads and linearizable != "violation"
    lines = [
        f"acknowledged writes: {len(stats.acked)}, every one read back through {reader}: "
        + ("yes" if not stats.wrong_reads else f"NO, {len(stats.wrong_reads)} wrong"),
        f"writes with unknown outcome: {len(stats.unknown)} "
        f"({present_unknown} applied, {len(stats.unknown) - present_unknown} not)",
        f"history linearizable: {linearizable}",
    ]
    if stats.killed_at is not None:
        lines.append(
            "failover: new leader after "
            + (f"{stats.new_leader_at:.2f}s" if stats.new_leader_at is not None else "-")
            + ", writes resumed after "
            + (f"{stats.first_ack_after_kill:.2f}s" if stats.first_ack_after_kill else "-")
        )
    for problem in stats.wrong_reads[:10]:
        lines.append(f"  lost or wrong: {problem}")
    lines.append("VERDICT: " + ("no acknowledged write was lost" if ok else "FAILED"))
    for line in lines:
        console.print(line, markup=False, highlight=False)
    return ok


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (3)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--duration-s", type=float, default=12.0, help="workload length (12)")
    parser.add_argument(
        "--kill-after-s", type=float, help="when to SIGKILL the leader (35%% of the duration)"
    )
    parser.add_argument("--data", type=Path, help="data directory (default: a temporary one)")
    parser.add_argument("--base-port", type=int, help="first client port (default: free ports)")
    parser.add_argument("--fsync", choices=FSYNC_MODES, help="default: always")
    parser.add_argument("--seed", type=int, help="seed for keys, values and client ids")
    parser.add_argument("--no-live", action="store_true", help="plain lines, no live view")


def run(args: argparse.Namespace) -> int:
    from pypaxos.cli.usage import UsageError

    if args.nodes < 1 or args.clients < 1 or args.duration_s <= 0:
        raise UsageError("--nodes, --clients and --duration-s must be positive")
    console = Console()
    try:
        return asyncio.run(run_live(args, console))
    except (ClusterError, ConfigError, OSError) as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        print("pypaxos live: stopped by SIGTERM; every node it started is stopped", file=sys.stderr)
        return 128 + signal.SIGTERM
