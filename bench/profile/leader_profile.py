"""Where a node's CPU goes under load: start a cluster, drive it, measure every node process.

Reproducible profile of the write path (issue 7, part 3).  It starts ``pypaxos cluster up`` in a
fresh temporary directory on free 127.0.0.1 ports, finds the leader, drives the leader's Redis
port with ``redis-benchmark`` (default ``-t set -n 200000 -c 50 -P 32 -d 128``) and reports,
for every node process, the CPU it used during the run from ``/proc/PID/stat`` (utime + stime,
all threads, so the fsync thread counts; stime, the kernel's share, is shown apart) divided by
the writes committed (the leader's
``pypaxos_commands_committed_total`` delta).  CPU time rather than wall-clock throughput,
because the machine's two cores are shared: throughput moves with the neighbours' load, CPU
per write much less.

With ``--py-spy SECONDS`` it also samples the leader with py-spy (``--native`` off, idle
frames off) for that long in the middle of the run and prints the top functions by self time
and by inclusive time.

    .venv/bin/python bench/profile/leader_profile.py [--nodes 3] [--fsync always]
        [--requests 200000] [--clients 50] [--pipeline 32] [--size 128] [--keyspace 100000]
        [--py-spy 8]
        [--spy-on leader|follower] [--perf] [--cprofile] [--src OTHER_TREE]
        [--target leader|follower] [--json out.json]

``--keyspace N`` spreads the writes over N keys (``redis-benchmark -r``, as ``make bench`` does;
a 100,000-key store costs each node about 1 µs per write more than one key: dict lookups that
miss the cache).  ``--perf`` splits the spied node's CPU by library and symbol
(``perf record -e cpu-clock``);
``--cprofile`` profiles every node's event-loop thread in CPU time (``cprofile_site/``; calls
into C are left out unless ``PYPAXOS_CPROFILE_BUILTINS=1``: profiling each one charges its
caller more than the call costs, so a hot loop of dict and list operations looks tens of
times dearer than it is; a Python call inside such a loop still inflates it: read the split
with ``--perf`` or callgrind beside it);
``--src`` runs the nodes from another source tree, for A/B runs (``git archive REV src``).
After each run it probes the disk's fsync latency and checks every write was committed with
no error and no leader change (ballots before and after).

Everything it starts it stops (``pypaxos cluster down``, then the temporary directory goes).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def system_seconds(pid: int) -> float:
    """stime of every thread of ``pid`` so far, in seconds: the kernel's share (sends, fsync)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / TICKS_PER_S


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def free_base_port() -> int:
    """A base port whose client (+0..9), peer (+100..) and metrics (+200..) ports are free."""
    for _ in range(200):
        base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        ports = [base + offset + i for offset in (0, 100, 200) for i in range(10)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def status(data: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [BIN / "pypaxos", "cluster", "status", "--data", str(data), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    nodes: list[dict[str, object]] = json.loads(out)["nodes"]
    return nodes


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def fsync_p50_ms(directory: Path, count: int = 200) -> tuple[float, float]:
    """p50 and p90 of a 300-byte append + fsync in ``directory``: the disk's floor right now."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 300)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return 1e3 * times[count // 2], 1e3 * times[count * 9 // 10]


def fold_py_spy(raw: str, top: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """py-spy's collapsed stacks to (self time, inclusive time) per function, in samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own.most_common(top), inclusive.most_common(top), total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--fsync", choices=("always", "never"), default="always")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--test", default="set")
    parser.add_argument(
        "--keyspace", type=int, default=0, help="redis-benchmark -r (0: one key, as before)"
    )
    parser.add_argument("--target", choices=("leader", "follower"), default="leader")
    parser.add_argument("--py-spy", type=int, default=0, metavar="SECONDS")
    parser.add_argument("--spy-on", choices=("leader", "follower"), default="leader")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--perf", action="store_true", help="perf record (cpu-clock) the spied node"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--src",
        type=Path,
        help="run the nodes from this source tree (its src/ goes first on PYTHONPATH), for "
        "A/B runs against another version, e.g. one from `git archive`",
    )
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="profile every node's event loop with cProfile (slower); print each one's top",
    )
    args = parser.parse_args()
    paths = []
    if args.cprofile:
        paths.append(str(Path(__file__).resolve().parent / "cprofile_site"))
    if args.src is not None:
        paths.append(str(args.src.resolve() / "src"))
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)

    data = Path(tempfile.mkdtemp(prefix="pypaxos-profile-"))
    prof_dir = data / "cprofile"
    if args.cprofile:
        prof_dir.mkdir()
        os.environ["PYPAXOS_CPROFILE_DIR"] = str(prof_dir)
    base = free_base_port()
    pids_seen: dict[int, str] = {}
    result: dict[str, object] = {
        "args": vars(args) | {"json": str(args.json), "src": str(args.src)}
    }
    try:
        up = subprocess.run(
            [
                BIN / "pypaxos",
                "cluster",
                "up",
                "--nodes",
                str(args.nodes),
                "--data",
                str(data),
                "--base-port",
                str(base),
                "--fsync",
                args.fsync,
            ],
            capture_output=True,
            text=True,
        )
        if up.returncode != 0:
            print("cluster up failed:", up.stdout, up.stderr, file=sys.stderr)
            return 1
        time.sleep(1.0)  # let every follower hear the leader before the counters are read
        nodes = status(data)
        ballots0 = {str(n["ballot"]) for n in nodes}
        leader = next(n for n in nodes if n["role"] == "leader")
        target = leader if args.target == "leader" else next(n for n in nodes if n is not leader)
        pids = {int(str(n["id"])): int(str(n["pid"])) for n in nodes}
        pids_seen.update(
            {
                p: ("leader" if n["role"] == "leader" else "follower")
                for p, n in zip(pids.values(), nodes, strict=True)
            }
        )
        leader_id = int(str(leader["id"]))
        metrics_port = base + 200 + leader_id - 1
        port = int(str(target["client"]).rpartition(":")[2])
        committed_name = "pypaxos_commands_committed_total"
        committed0 = metric(metrics_port, committed_name)
        metrics_ports = [base + 200 + i - 1 for i in pids]
        changes_name = "pypaxos_leader_changes_total"
        changes0 = sum(metric(p, changes_name) for p in metrics_ports)
        cpu0 = {i: cpu_seconds(p) for i, p in pids.items()}
        sys0 = {i: system_seconds(p) for i, p in pids.items()}
        means0 = {i: _sums(base + 200 + i - 1) for i in pids}
        started = time.perf_counter()
        bench = subprocess.Popen(
            [
                "redis-benchmark",
                "-p",
                str(port),
                "-t",
                args.test,
                "-n",
                str(args.requests),
                "-c",
                str(args.clients),
                "-P",
                str(args.pipeline),
                "-d",
                str(args.size),
                *(["-r", str(args.keyspace)] if args.keyspace else []),
                "--csv",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        spy_text = ""
        perf = None
        if args.perf:  # kernel vs interpreter vs extension split of the spied node
            perf = subprocess.Popen(
                [
                    "perf",
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "999",
                    "-p",
                    str(
                        pids[
                            leader_id
                            if args.spy_on == "leader"
                            else min(i for i in pids if i != leader_id)
                        ]
                    ),
                    "-o",
                    str(data / "perf.data"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        spied = leader_id if args.spy_on == "leader" else min(i for i in pids if i != leader_id)
        if args.py_spy > 0:
            time.sleep(1.0)
            spy = subprocess.run(
                [
                    BIN / "py-spy",
                    "record",
                    "-p",
                    str(pids[spied]),
                    "-d",
                    str(args.py_spy),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(data / "spy.txt"),
                    "--nonblocking",
                ],
                capture_output=True,
                text=True,
            )
            if (data / "spy.txt").exists():
                spy_text = (data / "spy.txt").read_text()
            else:
                print("py-spy failed:", spy.stderr, file=sys.stderr)
        out, err = bench.communicate()
        fsync_p50, fsync_p90 = fsync_p50_ms(data)
        if perf is not None:
            perf.send_signal(2)
            perf.wait()
            report = subprocess.run(
                ["perf", "report", "-i", str(data / "perf.data"), "--sort", "dso", "--stdio"],
                capture_output=True,
                text=True,
            ).stdout
            print("\n".join(line for line in report.splitlines() if line.strip()[:1].isdigit()))
            report = subprocess.run(
                ["perf", "report", "-i", str(data / "perf.data"), "--sort", "sym", "--stdio"],
                capture_output=True,
                text=True,
            ).stdout
            print(
                "\n".join([line for line in report.splitlines() if line.strip()[:1].isdigit()][:30])
            )
        elapsed = time.perf_counter() - started
        cpu1 = {i: cpu_seconds(p) for i, p in pids.items()}
        sys1 = {i: system_seconds(p) for i, p in pids.items()}
        committed = metric(metrics_port, committed_name) - committed0
        changes = sum(metric(p, changes_name) for p in metrics_ports) - changes0
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        rps = _bench_rps(out)
        p50 = _bench_p50(out)
        per_node = {i: (cpu1[i] - cpu0[i]) for i in pids}
        total_cpu = sum(per_node.values())
        print(
            f"{args.nodes} nodes, fsync {args.fsync}, {args.test} -n {args.requests} "
            f"-c {args.clients} -P {args.pipeline} -d {args.size} -> {args.target}"
        )
        print(
            f"fsync probe right after, in the data directory: p50 {fsync_p50:.2f} ms, "
            f"p90 {fsync_p90:.2f} ms"
        )
        print(
            f"redis-benchmark: {rps:,.0f} requests/s, p50 {p50} ms, p99 {_bench_p99(out)} ms, "
            f"wall {elapsed:.1f} s; "
            f"committed {committed:,.0f}"
        )
        for i in sorted(pids):
            role = "leader" if i == leader_id else "follower"
            us = 1e6 * per_node[i] / committed if committed else float("nan")
            kernel_s = sys1[i] - sys0[i]
            print(
                f"  node {i} ({role}): {per_node[i]:.2f} s CPU ({kernel_s:.2f} s in the kernel),"
                f" {us:.1f} us/write"
            )
        us_total = 1e6 * total_cpu / committed if committed else float("nan")
        print(f"  cluster: {total_cpu:.2f} s CPU, {us_total:.1f} us/write")
        means1 = {i: _sums(base + 200 + i - 1) for i in pids}
        print("  " + _mean_line(leader_id, means0, means1))
        fsyncs = metric(metrics_port, "pypaxos_fsync_seconds_count")
        ballots = {str(n["ballot"]) for n in status(data)}
        print(
            f"  leader fsyncs so far: {fsyncs:,.0f}; leader changes seen during the run: "
            f"{changes:.0f}; ballots {sorted(ballots0)} -> {sorted(ballots)}"
        )
        if committed != args.requests or errors or changes:
            print(
                f"WARNING: committed {committed:,.0f} of {args.requests:,}, "
                f"{len(errors)} error lines, {changes:.0f} leader changes",
                file=sys.stderr,
            )
        result |= {
            "rps": rps,
            "p50_ms": p50,
            "committed": committed,
            "cpu_s": per_node,
            "us_per_write": {i: 1e6 * per_node[i] / committed for i in pids} if committed else {},
            "cluster_us_per_write": us_total,
            "leader": leader_id,
            "leader_changes": changes,
            "fsync_p50_ms": fsync_p50,
            "error_lines": errors[:10],
        }
        if bench.returncode != 0:
            print("redis-benchmark failed:", err, file=sys.stderr)
        if spy_text:
            own, inclusive, total = fold_py_spy(spy_text, args.top)
            print(f"\npy-spy of node {spied} ({args.spy_on}), {total} samples; self time:")
            for name, count in own:
                print(f"  {100 * count / total:5.1f}%  {name}")
            print("inclusive time:")
            for name, count in inclusive:
                print(f"  {100 * count / total:5.1f}%  {name}")
            result["py_spy_self"] = own
            (Path(tempfile.gettempdir()) / "pypaxos-last-spy.txt").write_text(spy_text)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        os.environ.pop("PYPAXOS_CPROFILE_DIR", None)
        subprocess.run(
            [BIN / "pypaxos", "cluster", "down", "--data", str(data)], capture_output=True
        )
        kept = Path(tempfile.gettempdir()) / "pypaxos-last-logs"  # for a post-mortem
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir()
        for log_file in data.glob("node-*/node.log"):
            shutil.copy(log_file, kept / f"{log_file.parent.name}.log")
        if args.cprofile:
            _print_cprofiles(prof_dir, pids_seen, args.top)
        shutil.rmtree(data, ignore_errors=True)
    return 0


def _print_cprofiles(prof_dir: Path, pids: dict[int, str], top: int) -> None:
    import pstats

    time.sleep(0.5)
    shown = set()
    for pid, role in sorted(pids.items(), key=lambda item: item[1] != "leader"):
        path = prof_dir / f"{pid}.prof"
        if role in shown or not path.exists():
            continue
        shown.add(role)
        print(f"\ncProfile of the {role} (pid {pid}), by own time:")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def _bench_rps(csv: str) -> float:
    for line in csv.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 1:
            return float(cells[1])
    return 0.0


def _bench_p50(csv: str) -> float:
    for line in csv.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 4:
            return float(cells[4])
    return 0.0


def _sums(port: int) -> tuple[float, ...]:
    """(commit latency sum, count, fsync sum, count) of the node's /metrics so far."""
    names = ("commit_latency", "fsync")
    return tuple(
        metric(port, f"pypaxos_{n}_seconds_{part}") for n in names for part in ("sum", "count")
    )


def _mean_line(leader_id: int, before: dict, after: dict) -> str:
    """Leader's mean arrival-to-reply and every node's mean fsync during the run, in ms."""

    def mean(i: int, at: int) -> float:
        count = after[i][at + 1] - before[i][at + 1]
        return 1e3 * (after[i][at] - before[i][at]) / count if count else float("nan")

    fsyncs = ", ".join(f"n{i} {mean(i, 2):.2f}" for i in sorted(after))
    return (
        f"means during the run: leader arrival-to-reply {mean(leader_id, 0):.2f} ms; "
        f"fsync {fsyncs} ms (leader n{leader_id})"
    )


def _bench_p99(csv: str) -> float:
    for line in csv.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 6:
            return float(cells[6])
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
