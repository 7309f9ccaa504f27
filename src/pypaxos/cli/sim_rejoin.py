"""``pypaxos sim rejoin``: count disruptive elections when a cut-off follower comes back.

Each seed is one run of ``pypaxos.sim.kv_rejoin``: a KV cluster without other faults, one
follower cut off from the other nodes for several election timeouts, then back.  A leadership
that begins after the cut started is a disruptive election.  The same seeds run with pre-vote
(as a real node does) and, unless ``--pre-vote-only``, without it, for comparison.

Exit status: 0 when pre-vote runs had no disruptive election and every run passed the
simulator's checks, 1 otherwise, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from pypaxos.sim.kv import KVSettings
from pypaxos.sim.kv_rejoin import CUT_TICKS, RejoinResult, rejoin_settings, run_rejoin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Cut one follower of a simulated KV cluster off for several election timeouts, then "
        "heal; count the elections that follow (none should, with pre-vote). Exit 0: no "
        "disruption with pre-vote and no violation; 1: otherwise; 2: bad usage."
    )
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--cut-ticks",
        type=int,
        default=CUT_TICKS,
        help=f"how long the follower is cut off, in simulated ticks (default {CUT_TICKS})",
    )
    parser.add_argument(
        "--pre-vote-only", action="store_true", help="skip the comparison runs without pre-vote"
    )


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.start < 0 or args.nodes < 3 or args.cut_ticks < 1:
        print(
            "pypaxos sim rejoin: error: need --seeds >= 1, --start >= 0, --nodes >= 3, "
            "--cut-ticks >= 1",
            file=sys.stderr,
        )
        return 2
    base = KVSettings(nodes=args.nodes)
    modes = (True,) if args.pre_vote_only else (True, False)
    failed = False
    for pre_vote in modes:
        settings = rejoin_settings(pre_vote, base)
        results: list[RejoinResult] = []
        for seed in range(args.start, args.start + args.seeds):
            result = run_rejoin(settings, seed, cut_ticks=args.cut_ticks)
            results.append(result)
            if result.run.violations or (pre_vote and result.disruptions):
                failed = True
                print(result.line())
                for violation in result.run.violations:
                    print(f"  {violation}")
        mode = "pre-vote" if pre_vote else "no pre-vote"
        disrupted = sum(1 for r in results if r.disruptions)
        print(
            f"{mode}: {args.seeds} seeds, {args.nodes} nodes, cut {args.cut_ticks} ticks; "
            f"disruptive elections: {sum(r.disruptions for r in results)} "
            f"(in {disrupted} seeds); raised ballots: "
            f"{sum(r.follower_ballot_raised for r in results)}; "
            f"violations: {sum(len(r.run.violations) for r in results)}"
        )
    return 1 if failed else 0
