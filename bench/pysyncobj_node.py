"""One PySyncObj process of the peer benchmark (started by ``peer_pysyncobj.py``).

Every process replicates a ``ReplDict`` with its partners and runs its own tick loop
(``autoTick=False``: no ticker thread competing for the GIL).  The process that is leader
once the cluster is ready also generates the load inside itself, as PySyncObj's own benchmark
does: it keeps ``--outstanding`` ``set`` calls in flight (each with a callback), ticking between
top-ups, and counts the calls whose callback reports ``FAIL_REASON.SUCCESS`` (the command was
committed by a majority and applied) within the measured window, with each one's latency.
It writes its result as JSON and creates the stop file; the followers exit when they see it.

What costs PySyncObj most at its defaults is log compaction, not replication: once its log
holds ``logCompactionMinEntries`` (5,000) entries it pickles and gzips the whole dict, on the
tick loop when no ``fullDumpFile`` is set, twice a second or more at these rates (a profile
of a 5 s run: 0.4-0.7 s per compaction, a third of every node's time).  ``best`` compacts
after 500,000 entries (about pypaxos's own snapshot cadence at saturation: 1,024 slots of up to
512 commands) and does it in a forked child writing ``--dump-file``, as PySyncObj does when a
dump file is given; and it tops up all its outstanding writes at every tick.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.batteries import ReplCounter, ReplDict

MODES: dict[str, dict[str, Any]] = {
    "default": {},
    "best": {
        "appendEntriesBatchSizeBytes": 2**20,
        "sendBufferSize": 2**22,
        "recvBufferSize": 2**22,
        # A 1 MiB batch keeps a follower busy long enough on a loaded machine to miss the
        # default 0.4-1.4 s election timeout; longer timeouts keep the leader in place.
        "raftMinTimeout": 2.0,
        "raftMaxTimeout": 4.0,
        "connectionTimeout": 5.0,  # PySyncObj requires it >= raftMaxTimeout
        "logCompactionMinEntries": 500_000,
    },
    "nobatch": {"appendEntriesUseBatch": False},
}
# Modes whose compaction runs in a forked child writing the node's --dump-file.
FORKED_COMPACTION = {"best"}
READY_TIMEOUT_S = 30.0
# New commands between two ticks, so the leader keeps sending heartbeats within the default
# election timeout; ``best``'s longer timeouts let it refill everything at once.
TOP_UP_MAX = {"default": 2000, "nobatch": 2000, "best": 1_000_000}


def run_leader(
    obj: ReplDict | ReplCounter, node: SyncObj, args: argparse.Namespace
) -> dict[str, Any]:
    value = b"v" * args.value_bytes
    latencies = array("d")
    counts = {"inflight": 0, "ok": 0, "late": 0, "failed": 0}
    reasons: dict[int, int] = {}
    clock = time.perf_counter
    start_at = clock() + args.warmup_s
    stop_at = start_at + args.duration_s

    def callback_for(began: float) -> Callable[[object, int], None]:
        def done(_: object, error: int) -> None:
            counts["inflight"] -= 1
            now = clock()
            if error != FAIL_REASON.SUCCESS:
                counts["failed"] += 1
                reasons[error] = reasons.get(error, 0) + 1
            elif start_at <= now <= stop_at:  # committed within the measured window
                counts["ok"] += 1
                latencies.append((now - began) * 1e6)
            else:
                counts["late"] += 1

        return done

    cpu_start = None
    index = 0
    top_up_max = TOP_UP_MAX[args.mode]
    while (now := clock()) < stop_at:
        if cpu_start is None and now >= start_at:
            cpu_start = sum(os.times()[:2])
        for _ in range(min(top_up_max, args.outstanding - counts["inflight"])):
            if isinstance(obj, ReplCounter):  # --workload counter: the README's counter
                obj.add(1, callback=callback_for(clock()))
            else:
                obj.set(f"key:{index % 100_000}", value, callback=callback_for(clock()))
            counts["inflight"] += 1
            index += 1
        node.doTick(0.0)
    cpu_s = sum(os.times()[:2]) - (cpu_start or 0.0)
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[max(0, int(q * len(ordered) + 0.999999) - 1)] if ordered else float("nan")

    return {
        "ok": counts["ok"], "failed": counts["failed"], "late": counts["late"],
        "throughput": counts["ok"] / args.duration_s,
        "p50_us": pct(0.5), "p99_us": pct(0.99),
        "leader_cpu_us_per_op": cpu_s * 1e6 / max(counts["ok"], 1),
        "still_leader": node._isLeader(),
        "fail_reasons": {str(k): v for k, v in reasons.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--partners", required=True, help="comma-separated host:port")
    parser.add_argument("--mode", choices=sorted(MODES), default="default")
    parser.add_argument("--outstanding", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--value-bytes", type=int, default=128)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--dump-file", type=Path, help="where a forked compaction writes")
    parser.add_argument("--workload", choices=("dict", "counter"), default="dict")
    args = parser.parse_args()

    settings = dict(MODES[args.mode])
    if args.mode in FORKED_COMPACTION and args.dump_file is not None:
        settings["fullDumpFile"] = str(args.dump_file)
    conf = SyncObjConf(autoTick=False, **settings)
    obj: ReplDict | ReplCounter = ReplCounter() if args.workload == "counter" else ReplDict()
    node = SyncObj(f"127.0.0.1:{args.port}", args.partners.split(","), conf=conf, consumers=[obj])
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (node.isReady() and node._getLeader() is not None):
        if time.monotonic() > deadline:
            raise SystemExit("no leader within the timeout")
        node.doTick(0.01)
    if node._isLeader():
        result = run_leader(obj, node, args)
        args.result.write_text(json.dumps(result))
        args.stop_file.touch()
    else:
        limit = time.monotonic() + args.warmup_s + args.duration_s + 60
        while not args.stop_file.exists() and time.monotonic() < limit:
            node.doTick(0.05)
    node.destroy()


if __name__ == "__main__":
    main()
