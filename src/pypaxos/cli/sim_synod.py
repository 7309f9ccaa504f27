"""``pypaxos sim synod``: run many seeds of the simulated single-decree instance with faults.

Seeds ``start .. start+N-1`` run one after the other without traces (that is what makes
thousands of seeds per run cheap).  Progress is printed about ten times; every violation is
printed with its seed and the exact ``pypaxos synod ... --seed N`` command that replays it with
its full trace.  The run stops at the first violation unless ``--keep-going``.  The last line
gives the count and the speed in seeds per second.  Exit 0 when no seed broke an invariant,
1 when one did, 2 for bad usage.

Swarm testing by default (Groce et al., "Swarm Testing", ISSTA 2012): each seed draws its own
deployment and fault mix (``sim.synod.SynodSwarm``), some fault kinds switched off altogether,
so that a few hundred seeds cover mixes no single fixed setting does.  An option that is given
pins its dimension for every seed (``--drop 0.2``); ``--no-swarm`` runs every seed with the one
fixed faulty mix ``FAULTY`` instead.  A violation's replay command spells the seed's drawn mix
out, so ``pypaxos synod`` replays it exactly, trace and all.

With ``--explore``, the first seed that broke safety is run again with its trace and opened in
the explorer (``pypaxos explore``): its events are replayed there one step each
(``explorer/trace.py``) and the page opens where the violation appears.  ``--seed N`` runs that
one seed.  The server runs until Ctrl-C; the exit status is then the run's.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from pypaxos.cli.synod import (
    add_world_arguments,
    pinned_fields,
    pinned_words,
    print_bug_list,
    settings_from_args,
    wants_bug_list,
)
from pypaxos.cli.usage import UsageError
from pypaxos.explorer.options import add_serve_arguments
from pypaxos.sim.synod import (
    SynodResult,
    SynodSettings,
    liveness_bound_ticks,
    run_synod,
    swarm_settings,
)

FAULTY = SynodSettings(drop=0.1, dup=0.05, crash=0.05, crash_after_handle=0.01, partition="random")
PROGRESS_REPORTS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds", type=int, default=1000, help="how many seeds to run (default %(default)s)"
    )
    parser.add_argument("--start", type=int, default=0, help="first seed (default %(default)s)")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="run only seed N (the same as --start N --seeds 1)"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="do not stop at the first violation"
    )
    parser.add_argument(
        "--no-swarm",
        dest="swarm",
        action="store_false",
        help="run every seed with the same fixed fault mix instead of drawing one per seed",
    )
    add_world_arguments(parser, FAULTY, swarm=True)
    explorer = parser.add_argument_group("opening a violation in the explorer")
    explorer.add_argument(
        "--explore",
        action="store_true",
        help="serve the explorer on 127.0.0.1 with the first seed that broke safety replayed, "
        "opened where it broke (until Ctrl-C)",
    )
    add_serve_arguments(explorer, what="with --explore: ")


def run(args: argparse.Namespace) -> int:
    if wants_bug_list(args):
        print_bug_list()
        return 0
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    base = settings_from_args(args, FAULTY)
    pinned = pinned_fields(args)
    first, count = (args.start, args.seeds) if args.seed is None else (args.seed, 1)

    def settings_for(seed: int) -> SynodSettings:
        return swarm_settings(base, seed, pinned) if args.swarm else base

    if args.swarm:
        given = pinned_words(args)
        print(f"# seeds {first}..{first + count - 1}, swarm: each seed draws its own fault mix")
        print(f"# pinned: {shlex.join(given) if given else 'nothing'} (see --help; --no-swarm)")
    else:
        command = shlex.join(["pypaxos", "synod", *base.cli_args()])
        print(f"# seeds {first}..{first + count - 1} of: {command}")
        print(
            f"# heal at t={base.fault_ticks}; liveness bound: every learner learns within "
            f"{liveness_bound_ticks(base)} ticks of the heal"
        )
    every = max(1, count // PROGRESS_REPORTS)
    violations = 0
    done = 0
    unsafe: int | None = None  # the first seed that broke safety, for --explore
    began = time.perf_counter()
    for seed in range(first, first + count):
        settings = settings_for(seed)
        result = run_synod(settings, seed)
        done += 1
        if result.violation is not None:
            violations += 1
            if unsafe is None and result.violation.kind == "safety":
                unsafe = seed
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
    status = 1 if violations else 0
    if not args.explore:
        return status
    if unsafe is None:
        print("no safety violation, so nothing to explore: the explorer is not started")
        return status
    return _open_in_explorer(run_synod(settings_for(unsafe), unsafe, trace=True), args) or status


def _open_in_explorer(result: SynodResult, args: argparse.Namespace) -> int:
    """Serve the run in the explorer until Ctrl-C; nonzero if that failed."""
    # Imported here: aiohttp and the page are only needed when a run is opened.
    from pypaxos.cli.explore import serve_session
    from pypaxos.explorer.session import Session
    from pypaxos.explorer.trace import TraceError, simulation_scenario

    try:
        scenario = simulation_scenario(result)
    except TraceError as error:
        print(
            f"pypaxos sim: cannot replay seed {result.seed} in the explorer: {error}",
            file=sys.stderr,
        )
        return 1
    print(f"opening seed {result.seed} in the explorer at step {scenario.open_at}", flush=True)
    return serve_session(Session(scenario), args.port, not args.no_browser)
