"""CPU per client command on each path (lease GET, read-index GET, durable SET), by process time.

Wall-clock throughput on a shared machine moves with the neighbours' load; the CPU a node
spends per command moves much less.  For each read mode asked for (``--reads``), this starts a
fresh local cluster (``pypaxos cluster up``) on free 127.0.0.1 ports, finds the leader, and runs
each scenario against the leader's client port with ``redis-benchmark``:

* ``get-pipe`` / ``set-pipe``: ``-c 50 -P 16`` (the reads targets' pipelined point);
* ``get-one`` / ``set-one``: one client, one request at a time.

Each scenario runs ``--repeats`` times, interleaved; for each run it records the leader's and
the whole cluster's CPU (``/proc/PID/task/*/schedstat``: nanoseconds on a CPU, every thread,
so the fsync thread counts) divided by the requests, and redis-benchmark's requests/s and
p50.  It prints the median of the runs and their range.

    .venv/bin/python bench/profile/client_cpu.py [--reads lease,read-index] [--nodes 3]
        [--repeats 5] [--pipe-requests 200000] [--one-requests 5000] [--src OTHER_TREE]
        [--py-spy SCENARIO] [--json out.json]

``--src`` runs the nodes from another source tree (``git archive REV src``) for an A/B pair;
``--py-spy get-pipe`` samples the leader with py-spy (from ``$PY_SPY`` or ``PATH``) during the
first run of that scenario and prints the top functions.  Everything it starts it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leader_profile import BIN, fold_py_spy, free_base_port, status

SCENARIOS = {
    "get-pipe": ("get", 50, 16),
    "set-pipe": ("set", 50, 16),
    "get-one": ("get", 1, 1),
    "set-one": ("set", 1, 1),
}


def cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of ``pid`` has spent on a CPU so far (``schedstat``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total


def run_bench(port: int, test: str, clients: int, pipeline: int, requests: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-t",
            test,
            "-n",
            str(requests),
            "-c",
            str(clients),
            "-P",
            str(pipeline),
            "-d",
            "128",
            "-r",
            "100000",
            "--csv",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 4:
            return {"rps": float(cells[1]), "p50_ms": float(cells[4])}
    raise RuntimeError(f"no result from redis-benchmark: {out!r}")


def spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    return subprocess.Popen(
        [
            *(py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250"),
            *("-f", "raw", "-o", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure_mode(args: argparse.Namespace, reads: str) -> dict[str, list[dict[str, float]]]:
    data = Path(tempfile.mkdtemp(prefix="pypaxos-client-cpu-"))
    base = free_base_port()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.scenarios}
    try:
        subprocess.run(
            [
                *(BIN / "pypaxos", "cluster", "up", "--nodes", str(args.nodes), "--data"),
                *(str(data), "--base-port", str(base), "--fsync", "always", "--reads", reads),
            ],
            check=True,
            capture_output=True,
        )
        time.sleep(1.0)
        nodes = status(data)
        leader = next(n for n in nodes if n["role"] == "leader")
        pids = [int(str(n["pid"])) for n in nodes]
        leader_pid = int(str(leader["pid"]))
        port = int(str(leader["client"]).rpartition(":")[2])
        run_bench(port, "set", 50, 16, 100_000)  # fill the keyspace, warm up
        for repeat in range(args.repeats):
            for name in args.scenarios:
                test, clients, pipeline = SCENARIOS[name]
                requests = args.pipe_requests if pipeline > 1 else args.one_requests
                spying = None
                if name == args.py_spy and repeat == 0:
                    spying = spy(leader_pid, args.py_spy_s, data / "spy.txt")
                    time.sleep(0.5)
                cpu0 = {pid: cpu_ns(pid) for pid in pids}
                result = run_bench(port, test, clients, pipeline, requests)
                cpu1 = {pid: cpu_ns(pid) for pid in pids}
                result["leader_us"] = (cpu1[leader_pid] - cpu0[leader_pid]) / 1e3 / requests
                result["cluster_us"] = sum(cpu1[p] - cpu0[p] for p in pids) / 1e3 / requests
                runs[name].append(result)
                if spying is not None:
                    spying.wait()
                    _print_spy(data / "spy.txt", args.top)
        final = {str(n["ballot"]) for n in status(data)}
        if len(final) != 1:
            print(f"WARNING: ballots differ at the end: {sorted(final)}", file=sys.stderr)
    finally:
        down = [BIN / "pypaxos", "cluster", "down", "--data", str(data)]
        subprocess.run(down, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
    return runs


def _print_spy(path: Path, top: int) -> None:
    if not path.exists():
        print("py-spy wrote nothing", file=sys.stderr)
        return
    own, inclusive, total = fold_py_spy(path.read_text(), top)
    print(f"\npy-spy of the leader, {total} samples; self time:")
    for name, count in own:
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("inclusive time:")
    for name, count in inclusive:
        print(f"  {100 * count / total:5.1f}%  {name}")


def _summary(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:,.2f} ({min(values):,.2f}-{max(values):,.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", default="lease,read-index")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--pipe-requests", type=int, default=200_000)
    parser.add_argument("--one-requests", type=int, default=5_000)
    parser.add_argument("--src", type=Path, help="run the nodes from this source tree")
    parser.add_argument("--py-spy", default="", metavar="SCENARIO")
    parser.add_argument("--py-spy-s", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    if args.src is not None:
        os.environ["PYTHONPATH"] = str(args.src.resolve() / "src")
    every: dict[str, dict[str, list[dict[str, float]]]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for reads in args.reads.split(","):
        every[reads] = measure_mode(args, reads)
    load = os.getloadavg()[0]
    print(f"{started}, {args.nodes} nodes, fsync always, load average now {load:.1f}")
    print("reads | scenario | leader us/cmd | cluster us/cmd | requests/s | p50 ms")
    print("(each: median of the runs (their range))")
    for reads, runs in every.items():
        for name, results in runs.items():
            cells = [_summary([r[k] for r in results]) for k in ("leader_us", "cluster_us", "rps")]
            p50 = _summary([r["p50_ms"] for r in results])
            print(f"{reads} | {name} | {' | '.join(cells)} | {p50}")
    if args.json:
        record = {"started": started, "args": str(vars(args)), "runs": every}
        args.json.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
