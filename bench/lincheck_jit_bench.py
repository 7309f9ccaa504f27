"""How large a history can the JIT checker (``pypaxos lincheck --checker jit``) verify in a budget?

The histories are exactly those of ``bench/lincheck_bench.py`` (same generator, same seed: a
real register with random linearization points, so every one is linearizable), so the two
checkers' figures compare directly.  The size doubles until one check exceeds the budget, then a
bisection narrows the largest size that fits.  Usage::

    .venv/bin/python bench/lincheck_jit_bench.py                 # 5 processes, 3 keys, 10 s
    .venv/bin/python bench/lincheck_jit_bench.py --info 0.02     # with 2% timed-out operations
    .venv/bin/python bench/lincheck_jit_bench.py --clock cpu     # budget in CPU seconds
    .venv/bin/python bench/lincheck_jit_bench.py --ops 20000     # one size only
"""

from __future__ import annotations

import argparse
import sys
import time

# the sibling script: python puts bench/ on sys.path
from lincheck_bench import generate, largest_within_budget

from pypaxos.lincheck.jit import check_history_jit


def measure(ops: int, args: argparse.Namespace) -> tuple[float, str]:
    """Check one generated history; returns the seconds on the chosen clock and a summary."""
    events = generate(ops, args.processes, args.keys, args.info, args.seed)
    cpu_started = time.process_time()
    # a CPU budget on a busy machine can take many wall seconds: give the wall timeout room
    result = check_history_jit(events, timeout_s=args.budget * (3 if args.clock == "wall" else 30))
    cpu_s = time.process_time() - cpu_started
    assert result.outcome != "violation", result.explain()
    if not result.linearizable:
        return float("inf"), result.summary()
    seconds = cpu_s if args.clock == "cpu" else result.elapsed_s
    return seconds, f"{result.summary()} (cpu {cpu_s:.3f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--info", type=float, default=0.0, help="fraction of timed-out ops")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per check")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--ops", type=int, default=None, help="measure only this size")
    args = parser.parse_args()
    print(
        f"lincheck jit bench: {args.processes} processes, {args.keys} keys, info "
        f"{args.info:.0%}, seed {args.seed}, budget {args.budget:g} {args.clock} s"
    )
    if args.ops is not None:
        _, summary = measure(args.ops, args)
        print(f"{args.ops:>9} ops  {summary}")
        return 0
    low = largest_within_budget(lambda ops: measure(ops, args), args.budget)
    print(f"largest history verified within {args.budget:g} {args.clock} s: {low} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
