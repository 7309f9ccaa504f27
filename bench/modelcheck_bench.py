"""Model checker speed: states per second and wall time at fixed bounds.

Each run is a fresh interpreter (``python -c``) importing the checker from a source tree, so an
older checkout can be measured against this one on the same machine in the same minute::

    git archive c85acee src | tar -x -C /tmp/before
    python bench/modelcheck_bench.py --src /tmp/before/src --src src --repeat 3

Runs alternate between the trees (A B A B ...), since other load on the machine drifts.  Each
line reports states, transitions, wall and CPU seconds, and states per wall second; the
summary gives each tree's median.  ``--no-symmetry`` measures this tree without the symmetry
reduction (older trees have no such option and ignore it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, sys, time, resource
from pypaxos.core import SynodConfig
from pypaxos.modelcheck.search import ExploreOptions, explore
args = json.loads(sys.argv[1])
config = SynodConfig(proposers=args["proposers"], acceptors=args["acceptors"], learners=1)
extra = {} if args["symmetry"] else {"symmetry": False}
bounds = {"max_ballot": args["ballot"], "max_crashes": args["crashes"]}
try:
    options = ExploreOptions(config, **bounds, **extra)
except TypeError:  # a tree from before the symmetry option
    options = ExploreOptions(config, **bounds)
cpu_started, wall_started = time.process_time(), time.perf_counter()
result = explore(options)
print(json.dumps({
    "states": result.states,
    "transitions": result.transitions,
    "wall_seconds": time.perf_counter() - wall_started,
    "cpu_seconds": time.process_time() - cpu_started,
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "safe": result.violation is None and result.decision_reached,
}))
"""


def _run(src: str, settings: dict[str, object]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(settings)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    measured: dict[str, float] = json.loads(out.splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", default=[], help="a source tree (repeatable)")
    parser.add_argument("--proposers", type=int, default=2)
    parser.add_argument("--acceptors", type=int, default=3)
    parser.add_argument("--max-ballot", type=int, default=0)
    parser.add_argument("--max-crashes", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-symmetry", action="store_true")
    args = parser.parse_args()
    sources = args.src or [str(Path(__file__).resolve().parent.parent / "src")]
    settings = {
        "proposers": args.proposers,
        "acceptors": args.acceptors,
        "ballot": args.max_ballot,
        "crashes": args.max_crashes,
        "symmetry": not args.no_symmetry,
    }
    print(
        f"# machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"# command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"# bounds: {json.dumps(settings)}")
    rates: dict[str, list[float]] = {src: [] for src in sources}
    walls: dict[str, list[float]] = {src: [] for src in sources}
    for round_number in range(args.repeat):
        for src in sources:
            m = _run(src, settings)
            rate = m["states"] / m["wall_seconds"]
            rates[src].append(rate)
            walls[src].append(m["wall_seconds"])
            print(
                f"round {round_number + 1}  {src}: {m['states']:,.0f} states, "
                f"{m['transitions']:,.0f} transitions, {m['wall_seconds']:.1f} s wall, "
                f"{m['cpu_seconds']:.1f} s cpu, {rate:,.0f} states/s, "
                f"{m['max_rss_mib']:,.0f} MiB, safe={m['safe']}",
                flush=True,
            )
    print("# medians")
    for src in sources:
        print(
            f"{src}: {statistics.median(walls[src]):.1f} s wall, "
            f"{statistics.median(rates[src]):,.0f} states/s"
        )


if __name__ == "__main__":
    main()
