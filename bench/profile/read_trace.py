"""Where one request's time goes: one client's GETs (or SETs) traced hop by hop through a
3-node cluster.

A copy of a source tree (``--src``, default this one) gets ``time.perf_counter_ns()`` marks at
the hops of a request (the client port reading a request and writing a reply, the driver's
step/fsync/send/reply, the peer transport reading a frame); each node process keeps its marks
in memory and writes them when told (SIGUSR2).  A 3-node ``cluster up`` of the copy
(``--reads``, fsync always) then serves ``--requests`` GETs (``--op set``: SETs, whose hops
include the follower's fsync, and the leader's own fsync reported apart) sent one at a time,
back to back, by this script, which stamps each send and answer with the same clock
(monotonic, shared by the processes).  For every request, the marks between its send and its
answer are matched hop by hop (the follower whose answer was written first), and the script
prints each hop's p50 and p10 in µs.  The marks are inserted by text, at anchors that must
exist: a changed line fails loudly instead of tracing nothing.  Everything it starts it stops.

    .venv/bin/python bench/profile/read_trace.py [--reads read-index|lease] [--op get|set]
        [--src TREE] [--requests 3000] [--base-port 17401]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"

TRACE_MODULE = """
import atexit, os, signal, time
_marks = []
_clock = time.perf_counter_ns
def mark(tag):
    _marks.append((_clock(), tag))
def dump(*_):
    with open(os.path.join(os.environ["PYPAXOS_TRACE_DIR"], f"{os.getpid()}.log"), "a") as f:
        f.writelines(f"{t} {tag}\\n" for t, tag in _marks)
    _marks.clear()
atexit.register(dump)
signal.signal(signal.SIGUSR2, dump)
"""

IMPORT = "from pypaxos._read_trace import mark as _TRACE\n"
# (file, anchor, the anchor with a mark): inserted once each
MARKS = [
    ("runtime/server.py", "import asyncio\n", "import asyncio\n" + IMPORT),
    (
        "runtime/server.py",
        "    def data_received(self, data: bytes) -> None:\n        if self.closing:",
        "    def data_received(self, data: bytes) -> None:\n        _TRACE('c_recv')\n"
        "        if self.closing:",
    ),
    (
        "runtime/server.py",
        '            transport.write(b"".join(out))\n',
        "            transport.write(b\"\".join(out))\n            _TRACE('c_write')\n",
    ),
    ("runtime/driver.py", "import asyncio\n", "import asyncio\n" + IMPORT),
    (
        "runtime/driver.py",
        "        node = self.node\n        effects: list[Effect] = []\n",
        "        _TRACE('d_step')\n        node = self.node\n        effects: list[Effect] = []\n",
    ),
    (
        "runtime/driver.py",
        "            if self._flush is not None:\n                self._flush()\n",
        "            if self._flush is not None:\n                self._flush()\n"
        "            _TRACE('d_sent')\n",
    ),
    (
        "runtime/driver.py",
        "        for listener in self.applied_listeners:\n            listener()\n",
        "        _TRACE('d_replied')\n        for listener in self.applied_listeners:\n"
        "            listener()\n",
    ),
    (
        "runtime/driver.py",
        "            self.syncs += 1\n",
        "            self.syncs += 1\n            _TRACE('d_synced')\n",
    ),
    ("transport/tcp.py", "import asyncio\n", "import asyncio\n" + IMPORT),
    (
        "transport/tcp.py",
        "    def data_received(self, data: bytes) -> None:\n        if self.closed or",
        "    def data_received(self, data: bytes) -> None:\n        _TRACE('t_recv')\n"
        "        if self.closed or",
    ),
]

# The hops, in order: (name, process, mark), the process "L" (leader) or "F" (the follower).
READ_HOPS = [
    ("port reads the request", "L", "c_recv"),
    ("driver steps the read", "L", "d_step"),
    ("heartbeats written", "L", "d_sent"),
    ("a follower reads one", "F", "t_recv"),
    ("follower steps it", "F", "d_step"),
    ("acknowledgement written", "F", "d_sent"),
    ("leader reads it", "L", "t_recv"),
    ("leader steps it", "L", "d_step"),
    ("reply handed to the connection", "L", "d_replied"),
    ("reply written", "L", "c_write"),
]
# A write: the leader sends its accepts before its own fsync (only its own vote waits on it,
# reported apart), the follower after its fsync.
WRITE_HOPS = [
    ("port reads the request", "L", "c_recv"),
    ("driver steps the proposal", "L", "d_step"),
    ("accepts written", "L", "d_sent"),
    ("a follower reads one", "F", "t_recv"),
    ("follower steps it", "F", "d_step"),
    ("follower's fsync done", "F", "d_synced"),
    ("acceptance written", "F", "d_sent"),
    ("leader reads it", "L", "t_recv"),
    ("leader steps it", "L", "d_step"),
    ("reply handed to the connection", "L", "d_replied"),
    ("reply written", "L", "c_write"),
]


def traced_copy(tree: Path, into: Path) -> Path:
    """``tree``'s ``src`` copied to ``into`` with the marks in; the copy's ``src``."""
    src = into / "src"
    shutil.copytree(tree / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "pypaxos" / "_read_trace.py").write_text(TRACE_MODULE)
    for name, anchor, marked in MARKS:
        path = src / "pypaxos" / name
        text = path.read_text()
        if anchor not in text:
            raise SystemExit(f"{name}: anchor not found, update MARKS: {anchor!r}")
        path.write_text(text.replace(anchor, marked, 1))
    return src


def run_client(port: int, requests: int, op: str) -> list[tuple[int, int]]:
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        write = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n"
        client.sendall(write)
        client.recv(100)
        request = write if op == "set" else b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        expected = b"+OK\r\n" if op == "set" else b"abc\r\n"
        clock, stamps = time.perf_counter_ns, []
        for _ in range(requests):
            sent = clock()
            client.sendall(request)
            answer = client.recv(100)
            stamps.append((sent, clock()))
            if not answer.endswith(expected):
                raise SystemExit(f"unexpected answer {answer!r}")
    return stamps


def load_marks(directory: Path, pids: list[int]) -> dict[int, list[tuple[int, str]]]:
    marks: dict[int, list[tuple[int, str]]] = {}
    for pid in pids:
        path = directory / f"{pid}.log"
        rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        marks[pid] = sorted((int(t), tag) for t, tag in rows)
    return marks


def first(marks: list[tuple[int, str]], tag: str, after: int, before: int) -> int | None:
    times = [t for t, _ in marks]
    for t, found in marks[bisect.bisect_left(times, after) : bisect.bisect_right(times, before)]:
        if found == tag:
            return t
    return None


def hops_of(
    sent: int,
    answered: int,
    leader: int,
    marks: dict[int, list[tuple[int, str]]],
    hops: list[tuple[str, str, str]],
) -> list[int] | None:
    """The times of ``hops`` for one request, or ``None`` if one is missing."""
    followers = [pid for pid in marks if pid != leader]
    answer_at = max(i for i, (_, process, _) in enumerate(hops) if process == "F")
    best: list[int] | None = None
    for follower in followers:  # the one whose answer was written first
        times: list[int] = []
        at = sent
        for _, process, tag in hops:
            found = first(marks[leader if process == "L" else follower], tag, at, answered)
            if found is None:
                break
            times.append(found)
            at = found
        if len(times) == len(hops) and (best is None or times[answer_at] < best[answer_at]):
            best = times
    return best


def own_syncs(stamps: list[tuple[int, int]], marks: list[tuple[int, str]]) -> list[float]:
    """For each request, µs from the leader's accepts written to its own fsync done."""
    spans = []
    for sent, answered in stamps:
        written = first(marks, "d_sent", sent, answered)
        synced = first(marks, "d_synced", written, answered) if written is not None else None
        if written is not None and synced is not None:
            spans.append((synced - written) / 1000)
    return spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", default="read-index", choices=("read-index", "lease"))
    parser.add_argument("--op", default="get", choices=("get", "set"), help="GETs or SETs")
    parser.add_argument("--src", type=Path, default=ROOT, help="the tree whose src/ to trace")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--base-port", type=int, default=17401)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pypaxos-read-trace-"))
    data, out = work / "cluster", work / "marks"
    out.mkdir()
    try:
        traced = traced_copy(args.src, work)
    except BaseException:  # a stale anchor: leave nothing behind
        shutil.rmtree(work, ignore_errors=True)
        raise
    env = dict(os.environ, PYTHONPATH=str(traced), PYPAXOS_TRACE_DIR=str(out))
    pypaxos = [str(BIN / "pypaxos"), "cluster"]
    up_options = ["--base-port", str(args.base_port), "--fsync", "always", "--reads", args.reads]
    try:
        subprocess.run(
            [*pypaxos, "up", "--nodes", "3", "--data", str(data), *up_options],
            check=True,
            capture_output=True,
            env=env,
        )
        time.sleep(1.5)
        status = subprocess.run(
            [*pypaxos, "status", "--data", str(data), "--json"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        nodes = json.loads(status)["nodes"]
        leader_node = next(n for n in nodes if n["role"] == "leader")
        pids, leader = [int(n["pid"]) for n in nodes], int(leader_node["pid"])
        stamps = run_client(
            int(str(leader_node["client"]).rpartition(":")[2]), args.requests, args.op
        )
        for pid in pids:
            os.kill(pid, signal.SIGUSR2)
        time.sleep(0.5)
        marks = load_marks(out, pids)
    finally:
        subprocess.run([*pypaxos, "down", "--data", str(data)], capture_output=True, env=env)
        shutil.rmtree(work, ignore_errors=True)
    stamps = stamps[200:]  # the first requests warm the path up
    hops = WRITE_HOPS if args.op == "set" else READ_HOPS
    traced = args.op == "set" or args.reads == "read-index"
    totals = [(b - a) / 1000 for a, b in stamps]
    steps: list[list[float]] = [[] for _ in range(len(hops) + 1)]
    for sent, answered in stamps:
        times = hops_of(sent, answered, leader, marks, hops) if traced else None
        if times is None:
            continue
        for index, (before, after) in enumerate(
            zip([sent, *times], [*times, answered], strict=True)
        ):
            steps[index].append((after - before) / 1000)
    what = "SETs" if args.op == "set" else "GETs"
    print(
        f"{args.reads}: {len(totals)} {what}, p50 {statistics.median(totals):.0f} µs, "
        f"p10 {sorted(totals)[len(totals) // 10]:.0f} µs; load average {os.getloadavg()[0]:.1f}"
    )
    names = [name for name, _, _ in hops] + ["client has the reply"]
    for name, values in zip(names, steps, strict=True):
        if values:
            values.sort()
            p50, p10 = statistics.median(values), values[len(values) // 10]
            print(f"  {name:32s} p50 {p50:7.1f}  p10 {p10:7.1f}  ({len(values)} matched)")
    if args.op == "set":
        spans = sorted(own_syncs(stamps, marks[leader]))
        if spans:
            print(
                f"  (leader: accepts written -> its own fsync done p50 "
                f"{statistics.median(spans):.1f}, {len(spans)} matched)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
