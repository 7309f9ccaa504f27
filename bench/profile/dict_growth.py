"""The worst single insertion while filling a table of N keys: a plain ``dict`` or the KV store.

A ``dict`` grows by rebuilding its whole table in one step, so one insertion in a big one
stalls for as long as the rebuild takes; ``kv.store.KeyStore`` rebuilds one shard at a time.
Each insertion is timed on the thread's CPU clock (``time.thread_time_ns``: time the process
waits for a core under the machine's other load is not counted) and on the wall clock; the
insertions that took over 1 ms of CPU are listed, slowest first.  Run each kind in its own
process (the figure includes the page faults of the table's memory)::

    .venv/bin/python bench/profile/dict_growth.py dict 10000000
    .venv/bin/python bench/profile/dict_growth.py store 10000000
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import MutableMapping

from pypaxos.kv.store import KeyStore

VALUE = b"x" * 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("dict", "store"))
    parser.add_argument("keys", type=int)
    args = parser.parse_args()
    table: MutableMapping[bytes, bytes] = {} if args.kind == "dict" else KeyStore()
    keys = [b"key:%012d" % i for i in range(args.keys)]
    cpu_ns, wall_ns = time.thread_time_ns, time.perf_counter_ns
    slow: list[tuple[float, int]] = []  # (CPU ms, index) of insertions over 1 ms of CPU
    worst = (0, -1, 0)  # (CPU ns, index, wall ns)
    started_ns = wall_ns()
    for index, key in enumerate(keys):
        wall_before, cpu_before = wall_ns(), cpu_ns()
        table[key] = VALUE
        spent_ns, waited_ns = cpu_ns() - cpu_before, wall_ns() - wall_before
        if spent_ns > worst[0]:
            worst = (spent_ns, index, waited_ns)
        if spent_ns > 1_000_000:
            slow.append((round(spent_ns / 1e6, 1), index))
    fill_s = (wall_ns() - started_ns) / 1e9
    slow.sort(reverse=True)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"{args.kind} n={args.keys:,}: worst CPU {worst[0] / 1e6:.1f} ms "
        f"(wall {worst[2] / 1e6:.1f} ms) at insertion {worst[1]:,}; "
        f"insertions over 1 ms CPU: {len(slow)}, slowest (ms, index): {slow[:8]}; "
        f"fill {fill_s:.1f} s wall; max RSS {rss_mib} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
