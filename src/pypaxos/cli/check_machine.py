"""``pypaxos check-machine MODULE:FACTORY --workload MODULE:FUNCTION``: a replicated class
under the simulator's faults, many seeds (``pypaxos.testing``).

FACTORY builds the object (a class, or a function returning an object or an
``objects.Group``); FUNCTION takes a ``random.Random`` and returns the next
``testing.Invocation``.  Each seed is one deterministic run; a failing seed prints its
violations and the command that replays it.  ``--bug`` plants a mistake in the machine
(``objects.bugs.ObjectBug``), to see the checks catch it.

Exit status: 0 no violation, 1 at least one, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pypaxos.cli.lint_machine import load_attribute
from pypaxos.cli.usage import UsageError, add_bug_argument
from pypaxos.core.bugs import parse_bugs
from pypaxos.objects.bugs import ObjectBug
from pypaxos.testing import CheckSettings, run_check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a replicated class on a simulated cluster with message loss, duplication, "
        "reordering, crashes, partitions and leader changes; check that every replica ends in "
        "the same state, that the results are linearizable against the class itself, and that "
        "the decided log gives the same results under other hash seeds. Exit 0: no violation; "
        "1: a violation (its seed and replay command are printed); 2: bad usage."
    )
    parser.add_argument("factory", metavar="MODULE:FACTORY", help="the class or a function")
    parser.add_argument(
        "--workload",
        metavar="MODULE:FUNCTION",
        required=True,
        help="function(random.Random) -> pypaxos.testing.Invocation, the calls to make",
    )
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--calls", type=int, default=60, help="calls per seed (default 60)")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--clients", type=int, default=3, help="concurrent clients (default 3)")
    parser.add_argument(
        "--no-faults", dest="faults", action="store_false", help="no crashes or partitions"
    )
    parser.add_argument(
        "--no-replay",
        dest="replay",
        action="store_false",
        help="skip applying the decided log again in interpreters with other hash seeds",
    )
    parser.add_argument(
        "--history", action="store_true", help="print the history of a failing seed"
    )
    add_bug_argument(parser)


def run(args: argparse.Namespace) -> int:
    if "list" in args.bug:
        for bug in sorted(ObjectBug):
            print(f"  {bug.value:32} {bug.description}")
        return 0
    try:
        bugs = parse_bugs(args.bug, ObjectBug)
        settings = CheckSettings(
            nodes=args.nodes,
            clients=args.clients,
            calls=args.calls,
            faults=args.faults,
            replay_hash_seeds=(1, 2) if args.replay else (),
            bugs=bugs,
        )
        settings.config()
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.seeds < 1 or args.start < 0 or args.calls < 1 or args.clients < 1:
        raise UsageError("--seeds, --calls and --clients must be at least 1, --start at least 0")
    factory = _callable(load_attribute(args.factory), args.factory)
    workload = _callable(load_attribute(args.workload), args.workload)
    print(f"check-machine {args.factory} --workload {args.workload}: {settings}")
    failed = 0
    for seed in range(args.start, args.start + args.seeds):
        report = run_check(factory, workload, seed, settings)
        if not report.passed:
            failed += 1
            print(report.summary(replay=False))
            print(
                f"  replay: pypaxos check-machine {args.factory} --workload {args.workload} "
                f"--start {seed} --seeds 1 --calls {args.calls} --nodes {args.nodes} "
                f"--clients {args.clients}"
                + ("" if args.faults else " --no-faults")
                + ("" if args.replay else " --no-replay")
                + "".join(f" --bug {bug}" for bug in sorted(bugs))
            )
            if args.history:
                print("\n".join(f"    {line}" for line in report.history))
    print(f"{args.seeds} seeds, {failed} with a violation", file=sys.stderr)
    return 1 if failed else 0


def _callable(found: object, name: str) -> Callable[..., Any]:
    if not callable(found):
        raise UsageError(f"{name} is not callable")
    return found
