"""``pypaxos bench``: measure a local pypaxos cluster through its Redis port.

Starts a fresh cluster (temporary data directory, free ports), runs every point of the
clients x pipeline matrix with each tool and command (and any ``--extra-points`` with
redis-benchmark), prints a table of medians with their spread, and optionally writes
everything (every run) as JSON.  The nodes are stopped and the data removed at the end, also
on Ctrl-C.  The peers (PySyncObj, Redis, etcd) and the machine's limits are measured by
``make bench`` (bench/run_all.py), which calls this code too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pypaxos.bench.cluster_bench import TOOLS, ClusterBenchConfig, Json, bench_cluster
from pypaxos.bench.loadgen import COMMANDS
from pypaxos.bench.redis_benchmark import ToolMissingError
from pypaxos.cli.usage import UsageError
from pypaxos.storage.file import FSYNC_MODES

T = TypeVar("T")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {text!r}")
    return values


def _point_list(text: str) -> tuple[tuple[int, int], ...]:
    """``128x32,256x16`` -> ((128, 32), (256, 16)): (clients, pipeline) pairs."""
    points: list[tuple[int, int]] = []
    for part in (p for p in text.split(",") if p):
        clients, sep, pipeline = part.partition("x")
        if not sep or not clients.isdigit() or not pipeline.isdigit():
            raise argparse.ArgumentTypeError(f"want CLIENTSxPIPELINE, e.g. 128x32: {part!r}")
        if int(clients) < 1 or int(pipeline) < 1:
            raise argparse.ArgumentTypeError(f"need positive integers: {part!r}")
        points.append((int(clients), int(pipeline)))
    return tuple(points)


def _choices(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(part for part in text.split(",") if part)
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}: {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (3)")
    parser.add_argument(
        "--fsync", choices=FSYNC_MODES, default="always", help="the nodes' fsync mode"
    )
    parser.add_argument(
        "--clients", type=_int_list, default=(1, 16, 64), help="connections, a list (1,16,64)"
    )
    parser.add_argument(
        "--pipeline",
        type=_int_list,
        default=(1, 16),
        help="outstanding requests per connection, a list (1,16)",
    )
    parser.add_argument(
        "--extra-points",
        type=_point_list,
        default=(),
        metavar="CxP,...",
        help="(clients x pipeline) points beyond the grid, redis-benchmark only, e.g. 128x32: "
        "a load that saturates the cluster (none)",
    )
    parser.add_argument(
        "--commands",
        type=_choices(COMMANDS),
        default=("set", "get"),
        help="which commands to measure, a list (set,get)",
    )
    parser.add_argument(
        "--tools",
        type=_choices(TOOLS),
        default=TOOLS,
        help="redis-benchmark (Debian redis-tools) and/or loadgen (records every latency)",
    )
    parser.add_argument("--duration-s", type=float, default=5.0, help="per run (5)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per point (3)")
    parser.add_argument(
        "--one-client-runs",
        type=int,
        default=0,
        help="measured runs of the one-client points, c=1 P=1 (0: --runs)",
    )
    parser.add_argument("--value-bytes", type=int, default=128, help="value size (128)")
    parser.add_argument(
        "--rss-check",
        action="store_true",
        help="also compare memory after a run and after one 10x as long",
    )
    parser.add_argument(
        "--catch-up-entries",
        type=int,
        default=0,
        help="also stop a follower, write this many entries, restart it and time its catch-up",
    )
    parser.add_argument(
        "--data-root", type=Path, help="where the temporary data directory goes (system tmp)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write all results here")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (as the nodes do), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def table(result: Json) -> str:
    """The points as a plain-text table."""
    lines = [
        f"{'tool':<16}{'cmd':<5}{'c':>4}{'P':>4}{'req/s (spread)':>20}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'cpu us/op':>10}{'errors':>8}{'leader chg':>11}"
    ]
    for p in result["points"]:
        errors = "-" if p["errors"] is None else str(p["errors"])
        spread = (
            50
            * (p["throughput"]["high"] - p["throughput"]["low"])
            / max(p["throughput"]["median"], 1e-9)
        )
        lines.append(
            f"{p['tool']:<16}{p['command']:<5}{p['clients']:>4}{p['pipeline']:>4}"
            f"{p['throughput']['median']:>12,.0f} (±{spread:3.0f}%)"
            f"{p['p50_us']['median'] / 1000:>9.2f}{p['p99_us']['median'] / 1000:>9.2f}"
            f"{p['cpu_us_per_op']['median']:>10.0f}{errors:>8}{p['leader_changed']!s:>11}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.runs < 1 or args.duration_s <= 0 or args.value_bytes < 1:
        raise UsageError("--nodes, --runs, --value-bytes must be >= 1 and --duration-s > 0")
    if args.one_client_runs < 0:
        raise UsageError("--one-client-runs must be >= 0")
    if args.data_root is not None and not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root}: not a directory")
    config = ClusterBenchConfig(
        nodes=args.nodes,
        fsync=args.fsync,
        clients=args.clients,
        pipelines=args.pipeline,
        extra_points=args.extra_points,
        commands=args.commands,
        tools=args.tools,
        duration_s=args.duration_s,
        runs=args.runs,
        one_client_runs=args.one_client_runs,
        value_bytes=args.value_bytes,
        rss_check=args.rss_check,
        catch_up_entries=args.catch_up_entries,
        data_root=args.data_root,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    try:
        result = run_async(bench_cluster(config))
    except ToolMissingError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 1
    print(f"pypaxos, {args.nodes} nodes, fsync {args.fsync}; medians of {args.runs} runs")
    print(table(result))
    if result.get("rss"):
        print(f"RSS growth over a 10x longer run: {result['rss']['growth']:+.1%}")
    if result.get("catch_up"):
        print(f"catch-up after {args.catch_up_entries:,} entries: "
              f"{result['catch_up']['caught_up_s']} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"results written to {args.json}")
    failed = any(p["errors"] for p in result["points"] if p["errors"] is not None)
    return 1 if failed else 0
