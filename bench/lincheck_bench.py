"""How large a history can ``pypaxos lincheck`` verify within a time budget?

Histories come from a real sequential execution: each process invokes an operation, the
operation takes effect at one random instant inside its interval (applied to a dict in instant
order, which fixes every result), and completes a little later.  So every history is
linearizable, and the checker must find an order among genuinely overlapping operations.
Timed-out operations (``info``) take effect or not at random; a timed-out process is replaced by
a fresh one, as Jepsen does.

The size doubles until one check exceeds the budget, then a bisection narrows the largest size
that fits.  Usage::

    .venv/bin/python bench/lincheck_bench.py                 # 5 processes, 3 keys, 10 s
    .venv/bin/python bench/lincheck_bench.py --info 0.02     # with 2% timed-out operations
    .venv/bin/python bench/lincheck_bench.py --clock cpu     # budget in CPU seconds
    .venv/bin/python bench/lincheck_bench.py --write h.jsonl --ops 20000   # one history file
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from pypaxos.lincheck.wgl import check_history, history_from_events

MIX = (("read", 40), ("write", 25), ("cas", 15), ("incr", 10), ("delete", 10))


def generate(ops: int, processes: int, keys: int, info: float, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = [f"k{i}" for i in range(keys)]
    functions = [f for f, weight in MIX for _ in range(weight)]
    clocks = [0.0] * processes
    ids = list(range(processes))
    plans = []
    for _ in range(ops):
        slot = rng.randrange(processes)
        start = clocks[slot] + rng.expovariate(1.0)
        instant = start + rng.uniform(0.0, 2.0)
        end = instant + rng.uniform(0.0, 2.0)
        clocks[slot] = end
        outcome = "ok" if rng.random() >= info else rng.choice(("info-applied", "info-lost"))
        plans.append(
            (instant, start, end, ids[slot], rng.choice(functions), rng.choice(names), outcome)
        )
        if outcome != "ok":
            ids[slot] += processes  # Jepsen never reuses a process after an info
    store: dict[str, str] = {}
    timed: list[tuple[float, dict[str, Any]]] = []
    for serial, (_, start, end, process, f, key, outcome) in enumerate(sorted(plans)):
        applies = outcome != "info-lost"
        current = store.get(key)
        value: Any = None
        result: Any = None
        failed = False
        if f == "read":
            result = current
        elif f == "write":
            value = f"v{serial}"
            if applies:
                store[key] = value
        elif f == "delete":
            if applies:
                store.pop(key, None)
        elif f == "cas":
            expected = current if rng.random() < 0.6 else rng.choice((None, f"v{serial - 1}"))
            value = [expected, f"v{serial}"]
            failed = expected != current
            if applies and not failed:
                store[key] = f"v{serial}"
        else:  # incr
            number = 0 if current is None else int(current) if current.isdigit() else None
            failed = number is None
            if applies and number is not None:
                store[key] = str(number + 1)
                result = number + 1
        base = {"process": process, "f": f, "key": key}
        timed.append((start, {**base, "type": "invoke", "value": value}))
        kind = "info" if outcome != "ok" else "fail" if failed else "ok"
        done_value = result if f in ("read", "incr") else value
        timed.append((end, {**base, "type": kind, "value": done_value}))
    return [event for _, event in sorted(timed, key=lambda item: item[0])]


def measure(ops: int, args: argparse.Namespace) -> tuple[float, str]:
    """Check one generated history; returns the seconds on the chosen clock and a summary."""
    events = generate(ops, args.processes, args.keys, args.info, args.seed)
    history = history_from_events(events)
    cpu_started = time.process_time()
    result = check_history(history, timeout_s=args.budget * 3)
    cpu_s = time.process_time() - cpu_started
    assert result.outcome != "violation", result.explain()
    if not result.ok:
        return float("inf"), result.summary()
    seconds = cpu_s if args.clock == "cpu" else result.elapsed_s
    return seconds, f"{result.summary()} (cpu {cpu_s:.3f} s)"


def largest_within_budget(measure: Callable[[int], tuple[float, str]], budget: float) -> int:
    """Double the size until one check exceeds ``budget``, then bisect (to 5%) the largest
    size that fits; ``measure(ops)`` returns (seconds, summary) and each is printed."""
    fits, size = 0, 1000
    while True:
        elapsed, summary = measure(size)
        print(f"{size:>9} ops  {summary}", flush=True)
        if elapsed > budget:
            break
        fits, size = size, size * 2
    low, high = fits, size
    while high - low > max(1000, low // 20):
        middle = (low + high) // 2
        elapsed, summary = measure(middle)
        print(f"{middle:>9} ops  {summary}", flush=True)
        low, high = (middle, high) if elapsed <= budget else (low, middle)
    return low


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--info", type=float, default=0.0, help="fraction of timed-out ops")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per check")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="which seconds count against the budget (cpu: immune to a busy machine)",
    )
    parser.add_argument("--ops", type=int, default=None, help="measure only this size")
    parser.add_argument("--write", default=None, help="write the --ops history as JSON Lines")
    args = parser.parse_args()
    print(
        f"lincheck bench: {args.processes} processes, {args.keys} keys, info {args.info:.0%}, "
        f"seed {args.seed}, budget {args.budget:g} {args.clock} s"
    )
    if args.ops is not None:
        if args.write:
            with open(args.write, "w", encoding="utf-8") as stream:
                for event in generate(args.ops, args.processes, args.keys, args.info, args.seed):
                    stream.write(json.dumps(event) + "\n")
            print(f"wrote {args.write}")
        _, summary = measure(args.ops, args)
        print(f"{args.ops:>9} ops  {summary}")
        return 0
    low = largest_within_budget(lambda ops: measure(ops, args), args.budget)
    print(f"largest history verified within {args.budget:g} {args.clock} s: {low} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
