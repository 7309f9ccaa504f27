"""``pypaxos sim synod``: run many seeds of the simulated single-decree instance with faults.

Seeds ``start .. start+N-1`` run one after the other without traces (that is what makes
thousands of seeds per run cheap).  Progress is printed about ten times; every violation is
printed with its seed and the exact ``pypaxos synod ... --seed N`` command that replays it with
its full trace.  The run stops at the first violation unless ``--keep-going``.  The last line
gives the count and the speed in seeds per second.  Exit 0 when no seed broke an invariant,
1 when one did, 2 for bad usage.

Unlike ``pypaxos synod``, the fault options default to a faulty network and crashing actors.
"""

from __future__ import annotations

import argparse
import shlex
import time

from pypaxos.cli import UsageError
from pypaxos.sim.cmd_synod import (
    add_world_arguments,
    print_bug_list,
    settings_from_args,
    wants_bug_list,
)
from pypaxos.sim.synod import SynodSettings, liveness_bound_ticks, run_synod

FAULTY = SynodSettings(drop=0.1, dup=0.05, crash=0.05, crash_after_handle=0.01, partition="random")
PROGRESS_REPORTS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds", type=int, default=1000, help="how many seeds to run (default %(default)s)"
    )
    parser.add_argument("--start", type=int, default=0, help="first seed (default %(default)s)")
    parser.add_argument(
        "--keep-going", action="store_true", help="do not stop at the first violation"
    )
    add_world_arguments(parser, FAULTY)


def run(args: argparse.Namespace) -> int:
    if wants_bug_list(args):
        print_bug_list()
        return 0
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    settings = settings_from_args(args)
    first, count = args.start, args.seeds
    command = shlex.join(["pypaxos", "synod", *settings.cli_args()])
    print(f"# seeds {first}..{first + count - 1} of: {command}")
    print(
        f"# heal at t={settings.fault_ticks}; liveness bound: every learner learns within "
        f"{liveness_bound_ticks(settings)} ticks of the heal"
    )
    every = max(1, count // PROGRESS_REPORTS)
    violations = 0
    done = 0
    began = time.perf_counter()
    for seed in range(first, first + count):
        result = run_synod(settings, seed)
        done += 1
        if result.violation is not None:
            violations += 1
            print(f"seed {seed}: {result.violation}")
            print(f"  replay: {settings.replay_command(seed)}", flush=True)
            if not args.keep_going:
                break
        if done % every == 0 and done < count:
            rate = done / max(time.perf_counter() - began, 1e-9)
            print(
                f"  {done}/{count} seeds, {violations} violation(s), {rate:.0f} seeds/s",
                flush=True,
            )
    elapsed = max(time.perf_counter() - began, 1e-9)
    print(
        f"{done} seed(s) run, {violations} violation(s), {elapsed:.1f} s, "
        f"{done / elapsed:.0f} seeds/s"
    )
    return 1 if violations else 0
