"""PySyncObj (from PyPI) replicating a dict across N local processes, as hard as its API allows.

Each run starts N fresh processes (``pysyncobj_node.py``) on free loopback ports; the leader
generates the load inside its own process (no client round trip at all, the most favourable
setup for PySyncObj) and reports the writes committed per second in the measured window.
Modes (``pysyncobj_node.MODES``):

* ``default``: PySyncObj's defaults (64 KiB batches), 1,000 writes outstanding;
* ``best``: PySyncObj at its best here: 1 MiB append-entries batches, 4 MiB socket buffers,
  20,000 writes outstanding refilled at every tick (as fast as 50,000, with a quarter of the
  latency), and log compaction after 500,000 entries in a forked child
  (``pysyncobj_node.py`` says why: at the defaults, compaction pickles and gzips the whole
  dict on the tick loop every 5,000 entries, which is where the other modes lose most of
  their throughput);
* ``nobatch``: ``appendEntriesUseBatch=False``, 1,000 outstanding.

PySyncObj keeps its log in memory (no journal file): it makes no durability promise, unlike
pypaxos with ``--fsync always``.  Standalone::

    .venv/bin/python bench/peer_pysyncobj.py [--nodes 3,5] [--modes default,best,nobatch]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypaxos.bench.stats import Summary
from pypaxos.cluster.processes import find_free_base_port

NODE_SCRIPT = Path(__file__).with_name("pysyncobj_node.py")
OUTSTANDING = {"default": 1000, "best": 20_000, "nobatch": 1000}
WARMUP_S = {"default": 1.0, "best": 3.0, "nobatch": 1.0}  # fill the pipeline first
Json = dict[str, Any]


def one_run(
    nodes: int, mode: str, duration_s: float, value_bytes: int, workload: str = "dict"
) -> Json:
    base = find_free_base_port(nodes)
    addresses = [f"127.0.0.1:{base + i}" for i in range(nodes)]
    with tempfile.TemporaryDirectory(prefix="bench-pysyncobj-") as scratch:
        where = Path(scratch)
        stop = where / "stop"
        children: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(nodes):
                partners = ",".join(a for j, a in enumerate(addresses) if j != i)
                command = [
                    sys.executable, str(NODE_SCRIPT), "--port", str(base + i),
                    "--partners", partners, "--mode", mode,
                    "--outstanding", str(OUTSTANDING[mode]), "--duration-s", str(duration_s),
                    "--warmup-s", str(WARMUP_S[mode]),
                    "--value-bytes", str(value_bytes), "--stop-file", str(stop),
                    "--result", str(where / f"result-{i}.json"), "--workload", workload,
                    "--dump-file", str(where / f"dump-{i}.bin"),
                ]  # fmt: skip
                log = (where / f"node-{i}.log").open("wb")
                children.append(subprocess.Popen(command, stdout=log, stderr=log))
            deadline = time.monotonic() + duration_s + 90
            while any(c.poll() is None for c in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            results = [json.loads(p.read_text()) for p in where.glob("result-*.json")]
            if len(results) != 1:
                logs = " | ".join(p.read_text()[-300:] for p in where.glob("node-*.log"))
                raise RuntimeError(f"pysyncobj: {len(results)} leader results; logs: {logs}")
            return dict(results[0])
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                child.wait()


def measure(nodes_list: list[int], modes: list[str], runs: int, duration_s: float,
            value_bytes: int = 128, log: Callable[[str], None] = print) -> list[Json]:  # fmt: skip
    points = []
    for nodes in nodes_list:
        for mode in modes:
            runs_json = [one_run(nodes, mode, duration_s, value_bytes) for _ in range(runs)]
            point: Json = {
                "system": "pysyncobj", "nodes": nodes, "mode": mode,
                "outstanding": OUTSTANDING[mode], "runs": runs_json,
            }  # fmt: skip
            for name in ("throughput", "p50_us", "p99_us", "leader_cpu_us_per_op"):
                point[name] = Summary.of([r[name] for r in runs_json]).as_json()
            point["failed"] = sum(r["failed"] for r in runs_json)
            tput, p50 = point["throughput"], point["p50_us"]["median"] / 1000
            log(f"pysyncobj n={nodes} {mode}: {tput['median']:,.0f} writes/s "
                f"[{tput['low']:,.0f}-{tput['high']:,.0f}], "
                f"p50 {p50:.1f} ms, failed {point['failed']}")  # fmt: skip
            points.append(point)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="3,5")
    parser.add_argument("--modes", default="default,best,nobatch")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    points = measure([int(n) for n in args.nodes.split(",")], args.modes.split(","),
                     args.runs, args.duration_s)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(points, indent=1) + "\n")


if __name__ == "__main__":
    main()
