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
        [--repeats 5] [--pipe-requests 200000] [--one-requests 5000] [--src TREE]
        [--ab OTHER_TREE] [--py-spy SCENARIO] [--json out.json]

``--src`` runs the nodes from another source tree (``git archive REV src``); ``--ab`` runs a
second cluster from another tree beside the first and measures each run on it right after the
same run on the first, so an A/B pair sees the same neighbours (on a shared machine the
drift between two runs minutes apart is larger than most changes);
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

from pypaxos.bench.procstat import scheduled_cpu_ns

SCENARIOS = {
    "get-pipe": ("get", 50, 16),
    "set-pipe": ("set", 50, 16),
    "get-one": ("get", 1, 1),
    "set-one": ("set", 1, 1),
}


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


class Cluster:
    """A local cluster of one source tree (``src``: another tree's ``src/``, or ``None``)."""

    def __init__(self, nodes: int, reads: str, src: Path | None) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="pypaxos-client-cpu-"))
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src.resolve() / "src")
        subprocess.run(
            [
                *(BIN / "pypaxos", "cluster", "up", "--nodes", str(nodes), "--data"),
                *(str(self.data), "--base-port", str(free_base_port()), "--fsync", "always"),
                *("--reads", reads),
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        time.sleep(1.0)
        nodes_now = status(self.data)
        leader = next(n for n in nodes_now if n["role"] == "leader")
        self.pids = [int(str(n["pid"])) for n in nodes_now]
        self.leader_pid = int(str(leader["pid"]))
        self.port = int(str(leader["client"]).rpartition(":")[2])
        run_bench(self.port, "set", 50, 16, 100_000)  # fill the keyspace, warm up

    def run(self, name: str, requests: int) -> dict[str, float]:
        test, clients, pipeline = SCENARIOS[name]
        cpu0 = {pid: scheduled_cpu_ns(pid) for pid in self.pids}
        result = run_bench(self.port, test, clients, pipeline, requests)
        cpu1 = {pid: scheduled_cpu_ns(pid) for pid in self.pids}
        result["leader_us"] = (cpu1[self.leader_pid] - cpu0[self.leader_pid]) / 1e3 / requests
        result["cluster_us"] = sum(cpu1[p] - cpu0[p] for p in self.pids) / 1e3 / requests
        return result

    def down(self) -> None:
        ballots = {str(n["ballot"]) for n in status(self.data)}
        if len(ballots) != 1:
            print(f"WARNING: ballots differ at the end: {sorted(ballots)}", file=sys.stderr)
        subprocess.run(
            [BIN / "pypaxos", "cluster", "down", "--data", str(self.data)], capture_output=True
        )
        shutil.rmtree(self.data, ignore_errors=True)


Runs = dict[str, list[dict[str, float]]]


def measure_mode(args: argparse.Namespace, reads: str) -> dict[str, Runs]:
    """Every scenario ``--repeats`` times on this tree's cluster (and ``--ab``'s, each run
    right after this one's, so both see the same neighbours): tree label -> runs."""
    trees = {"this": args.src} | ({"ab": args.ab} if args.ab is not None else {})
    clusters: dict[str, Cluster] = {}
    runs: dict[str, Runs] = {label: {name: [] for name in args.scenarios} for label in trees}
    try:
        for label, src in trees.items():
            clusters[label] = Cluster(args.nodes, reads, src)
        for repeat in range(args.repeats):
            for name in args.scenarios:
                pipelined = SCENARIOS[name][2] > 1
                requests = args.pipe_requests if pipelined else args.one_requests
                for label, cluster in clusters.items():
                    spying = None
                    if name == args.py_spy and repeat == 0 and label == "this":
                        spying = spy(cluster.leader_pid, args.py_spy_s, cluster.data / "spy.txt")
                        time.sleep(0.5)
                    runs[label][name].append(cluster.run(name, requests))
                    if spying is not None:
                        spying.wait()
                        _print_spy(cluster.data / "spy.txt", args.top)
    finally:
        for cluster in clusters.values():
            cluster.down()
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
    parser.add_argument(
        "--ab", type=Path, help="also measure this source tree, each run right after ours"
    )
    parser.add_argument("--py-spy", default="", metavar="SCENARIO")
    parser.add_argument("--py-spy-s", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    every: dict[str, dict[str, Runs]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for reads in args.reads.split(","):
        every[reads] = measure_mode(args, reads)
    load = os.getloadavg()[0]
    print(f"{started}, {args.nodes} nodes, fsync always, load average now {load:.1f}")
    print("reads | scenario | tree | leader us/cmd | cluster us/cmd | requests/s | p50 ms")
    print("(each: median of the runs (their range); tree: this one, or --ab's)")
    for reads, trees in every.items():
        for name in args.scenarios:
            for label, runs in trees.items():
                results = runs[name]
                keys = ("leader_us", "cluster_us", "rps", "p50_ms")
                cells = " | ".join(_summary([r[k] for r in results]) for k in keys)
                print(f"{reads} | {name} | {label} | {cells}")
    if args.json:
        record = {"started": started, "args": str(vars(args)), "runs": every}
        args.json.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
