"""Replicated objects in-process: pypaxos (``runtime.embedded``) beside PySyncObj.

The same two workloads on both, three processes on loopback, the load generated inside the
leader's own process (no client round trip: PySyncObj's model, and its own benchmark's):

* ``counter``: PySyncObj README's counter: ``add(1)`` on a replicated counter;
* ``dict``: ``set("key:<i mod 100,000>", 128 bytes)`` on a replicated dict.

pypaxos: each process runs ``serve_async(Counter() | Dict(), ...)`` on its own event loop; the
leader keeps ``--outstanding`` calls in flight (one coroutine each, each call waits for its
result: proposed, chosen, applied, answered).  Its durability: ``fsync = "always"`` (every vote
on disk before it counts) or ``"never"`` (the page cache only).  PySyncObj (``peer_pysyncobj``,
its ``default`` and ``best`` modes): its log is in memory only, no journal, no fsync.

Throughput counts the calls answered in the measured window; latency is each call's, from its
start to its result.  Standalone (about 1 minute with the defaults)::

    .venv/bin/python bench/objects_bench.py [--workloads counter,dict] [--duration-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

Json = dict[str, Any]
HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_config(where: Path, fsync: str, nodes: int = 3) -> Path:
    ports = free_ports(2 * nodes)
    lines = ['cluster_id = "objects-bench"', 'data_dir = "data"', f'fsync = "{fsync}"']
    for i in range(nodes):
        lines += [
            "[[members]]",
            f"id = {i + 1}",
            f'peer = "127.0.0.1:{ports[2 * i]}"',
            f'client = "127.0.0.1:{ports[2 * i + 1]}"',
        ]
    path = where / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- one pypaxos member (a child process) ----------------------------------------------------


async def member_main(args: argparse.Namespace) -> None:
    from pypaxos.objects import Counter, Dict
    from pypaxos.runtime.embedded import serve_async

    obj: Counter | Dict = Counter() if args.workload == "counter" else Dict()
    async with serve_async(obj, config=args.config, node_id=args.member) as replicated:
        app = replicated.app
        deadline = time.monotonic() + READY_TIMEOUT_S
        while app.driver is None or app.driver.node.leader_id is None:
            if time.monotonic() > deadline:
                raise SystemExit("no leader within the timeout")
            await asyncio.sleep(0.05)
        if app.is_leader:
            result = await run_load(replicated, args)
            args.result.write_text(json.dumps(result))
            args.stop_file.touch()
        else:
            limit = time.monotonic() + args.warmup_s + args.duration_s + 60
            while not args.stop_file.exists() and time.monotonic() < limit:
                await asyncio.sleep(0.1)


async def run_load(replicated: Any, args: argparse.Namespace) -> Json:
    clock = time.perf_counter
    start_at = clock() + args.warmup_s
    stop_at = start_at + args.duration_s
    latencies = array("d")
    counts = {"ok": 0, "failed": 0, "late": 0}
    value = b"v" * 128
    counter = args.workload == "counter"

    async def worker(offset: int) -> None:
        index = offset
        while (began := clock()) < stop_at:
            try:
                if counter:
                    await replicated.add(1)
                else:
                    await replicated.set(f"key:{index % 100_000}", value)
            except Exception:
                counts["failed"] += 1
                continue
            index += args.outstanding
            now = clock()
            if start_at <= now <= stop_at:
                counts["ok"] += 1
                latencies.append((now - began) * 1e6)
            else:
                counts["late"] += 1

    cpu_before = sum(os.times()[:2])
    await asyncio.gather(*(worker(i) for i in range(args.outstanding)))
    cpu_s = sum(os.times()[:2]) - cpu_before
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[max(0, int(q * len(ordered) + 0.999999) - 1)] if ordered else float("nan")

    return {
        "ok": counts["ok"],
        "failed": counts["failed"],
        "throughput": counts["ok"] / args.duration_s,
        "p50_us": pct(0.5),
        "p99_us": pct(0.99),
        "leader_cpu_us_per_op": cpu_s * 1e6 / max(counts["ok"], 1),
    }


# -- the parent: runs and the table ------------------------------------------------------------


def pypaxos_run(workload: str, fsync: str, outstanding: int, duration_s: float) -> Json:
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as scratch:
        where = Path(scratch)
        config = write_config(where, fsync)
        stop = where / "stop"
        children: list[subprocess.Popen[bytes]] = []
        try:
            for member in (1, 2, 3):
                command = [
                    sys.executable, str(Path(__file__).resolve()), "--member", str(member),
                    "--config", str(config), "--workload", workload,
                    "--outstanding", str(outstanding), "--duration-s", str(duration_s),
                    "--warmup-s", "1.0", "--stop-file", str(stop),
                    "--result", str(where / f"result-{member}.json"),
                ]  # fmt: skip
                log = (where / f"member-{member}.log").open("wb")
                children.append(subprocess.Popen(command, stdout=log, stderr=log))
            deadline = time.monotonic() + duration_s + 90
            while any(c.poll() is None for c in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            results = [json.loads(p.read_text()) for p in where.glob("result-*.json")]
            if len(results) != 1:
                logs = " | ".join(p.read_text()[-300:] for p in where.glob("member-*.log"))
                raise RuntimeError(f"pypaxos: {len(results)} leader results; logs: {logs}")
            return dict(results[0])
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                child.wait()


def measure(
    workloads: list[str],
    fsyncs: list[str],
    pysyncobj_modes: list[str],
    outstanding: int,
    duration_s: float,
    log: Callable[[str], None] = print,
) -> list[Json]:
    """Every point, one run each: pypaxos per fsync mode, then PySyncObj per mode."""
    sys.path.insert(0, str(HERE))
    import peer_pysyncobj

    rows: list[Json] = []
    for workload in workloads:
        for fsync in fsyncs:
            result = pypaxos_run(workload, fsync, outstanding, duration_s)
            durability = "fsync per write" if fsync == "always" else "page cache (no fsync)"
            row = {"system": "pypaxos", "workload": workload, "setting": f"fsync={fsync}"}
            rows.append({**row, "outstanding": outstanding, "durability": durability, **result})
            log(render_row(rows[-1]))
        for mode in pysyncobj_modes:
            result = peer_pysyncobj.one_run(3, mode, duration_s, 128, workload)
            row = {"system": "pysyncobj", "workload": workload, "setting": mode}
            in_flight = peer_pysyncobj.OUTSTANDING[mode]
            durability = "memory only (no journal)"
            rows.append({**row, "outstanding": in_flight, "durability": durability, **result})
            log(render_row(rows[-1]))
    return rows


HEADER = (
    "| system | workload | setting | in flight | calls/s | p50 ms | p99 ms "
    "| leader CPU µs/call | failed | durability |\n"
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


def render(rows: list[Json]) -> str:
    """The markdown table of ``measure``'s rows."""
    return "\n".join([HEADER, *map(render_row, rows)]) + "\n"


def render_row(row: Json) -> str:
    return (
        f"| {row['system']} | {row['workload']} | {row['setting']} | {row['outstanding']} | "
        f"{row['throughput']:,.0f} | {row['p50_us'] / 1000:.1f} | {row['p99_us'] / 1000:.1f} | "
        f"{row['leader_cpu_us_per_op']:.0f} | {row['failed']} | {row['durability']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--member", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="counter", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-s", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--workloads", default="counter,dict")
    parser.add_argument("--fsync", default="always,never", help="pypaxos fsync modes")
    parser.add_argument("--pysyncobj-modes", default="default,best")
    parser.add_argument("--outstanding", type=int, default=256, help="pypaxos calls in flight")
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.member is not None:
        asyncio.run(member_main(args))
        return
    print(HEADER, flush=True)
    rows = measure(
        args.workloads.split(","),
        args.fsync.split(","),
        args.pysyncobj_modes.split(","),
        args.outstanding,
        args.duration_s,
        log=lambda line: print(line, flush=True),
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
