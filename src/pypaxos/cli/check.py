"""``pypaxos check synod``: the exhaustive model checker from the command line.

Exit status: 0 when every reachable state is safe and a decision is reachable, 1 on a
violation (the shortest trace to it is printed) or when no decision is reachable (the check
would be vacuous), 2 for bad usage.

With ``--explore``, a violation is also opened in the explorer (``pypaxos explore``): the
trace is replayed there step by step (``explorer/trace.py`` maps each step to an explorer
command) and the page opens at the failing step, from where it can be walked back and forth.
The server runs until Ctrl-C; the exit status is then the check's.  Without a violation
nothing is served.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pypaxos.cli.usage import UsageError, add_bug_argument
from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.core.synod import SynodConfig
from pypaxos.explorer.options import add_serve_arguments
from pypaxos.modelcheck.model import DEFAULT_MAX_BALLOT, DEFAULT_MAX_CRASHES
from pypaxos.modelcheck.search import ExploreOptions, ExploreResult, Progress, explore, render_trace

if TYPE_CHECKING:  # rich is imported only when a terminal shows the progress
    from rich.live import Live


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proposers", type=int, default=2, help="proposers (default 2)")
    parser.add_argument("--acceptors", type=int, default=3, help="acceptors (default 3)")
    parser.add_argument("--learners", type=int, default=1, help="learners (default 1)")
    parser.add_argument(
        "--max-ballot",
        type=int,
        default=DEFAULT_MAX_BALLOT,
        help=f"highest ballot round a proposer may use (default {DEFAULT_MAX_BALLOT})",
    )
    parser.add_argument(
        "--max-crashes",
        type=int,
        default=DEFAULT_MAX_CRASHES,
        help=f"crash-and-restart actions per execution (default {DEFAULT_MAX_CRASHES})",
    )
    parser.add_argument(
        "--crash-proposers", action="store_true", help="let proposers crash too, not only acceptors"
    )
    add_bug_argument(parser)
    parser.add_argument(
        "--no-symmetry",
        action="store_true",
        help="store every state, not one per renaming of the acceptors (slower; a cross-check)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    explorer = parser.add_argument_group("opening a counterexample in the explorer")
    explorer.add_argument(
        "--explore",
        action="store_true",
        help="on a violation, serve the explorer on 127.0.0.1 with the shortest trace loaded, "
        "at its failing step (until Ctrl-C)",
    )
    add_serve_arguments(explorer, what="with --explore: ")


def _options(args: argparse.Namespace) -> ExploreOptions:
    try:
        config = SynodConfig(
            proposers=args.proposers,
            acceptors=args.acceptors,
            learners=args.learners,
            bugs=parse_bugs(args.bug, SynodBug),
        )
        return ExploreOptions(
            config,
            max_ballot=args.max_ballot,
            max_crashes=args.max_crashes,
            crash_proposers=args.crash_proposers,
            symmetry=not args.no_symmetry,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


_PROGRESS_LINE_EVERY_SECONDS = 5.0


def progress_line(progress: Progress) -> str:
    """States, rate, frontier and how long the frontier alone takes to expand at this rate."""
    rate = progress.states / max(progress.elapsed_seconds, 1e-9)
    drain_seconds = progress.frontier / max(rate, 1e-9)
    return (
        f"exploring: {progress.states:,} states ({rate:,.0f}/s), "
        f"{progress.transitions:,} transitions, depth {progress.depth}, "
        f"frontier {progress.frontier:,} (>= {drain_seconds:,.0f} s more), "
        f"{progress.elapsed_seconds:,.0f} s so far"
    )


def _progress_printer(
    quiet: bool,
) -> tuple[Live, Callable[[Progress], None]] | tuple[None, Callable[[Progress], None] | None]:
    """A live line on a terminal; otherwise a line on stderr every few seconds."""
    if quiet:
        return None, None
    if not sys.stderr.isatty():
        last = [-_PROGRESS_LINE_EVERY_SECONDS]  # the first report prints at once

        def log(progress: Progress) -> None:
            if progress.elapsed_seconds - last[0] >= _PROGRESS_LINE_EVERY_SECONDS:
                last[0] = progress.elapsed_seconds
                print(progress_line(progress), file=sys.stderr, flush=True)

        return None, log
    from rich.console import Console
    from rich.live import Live

    live = Live(console=Console(stderr=True), transient=True, refresh_per_second=4)

    def show(progress: Progress) -> None:
        live.update(progress_line(progress))

    return live, show


def _report(result: ExploreResult) -> int:
    o = result.options
    c = o.config
    print(
        f"# pypaxos check synod --proposers {c.proposers} --acceptors {c.acceptors} "
        f"--learners {c.learners} --max-ballot {o.max_ballot} --max-crashes {o.max_crashes}"
        + (" --crash-proposers" if o.crash_proposers else "")
        + ("" if o.symmetry else " --no-symmetry")
        + "".join(f" --bug {b.value}" for b in sorted(c.bugs))
    )
    rate = result.states_per_second
    print(
        f"states explored: {result.states:,}  transitions: {result.transitions:,}  "
        f"depth: {result.depth}  time: {result.elapsed_seconds:.1f} s  rate: {rate:,.0f} states/s"
    )
    if result.violation is not None:
        print(f"VIOLATION: {'; '.join(result.violation.problems)}")
        print(f"shortest trace ({len(result.violation.trace)} steps):")
        for line in render_trace(result.violation.trace):
            print(line)
        print("state reached:")
        for line in result.violation.final_state:
            print(f"  {line}")
        return 1
    if not result.decision_reached:
        print("VACUOUS: no state where a value is chosen and learned was reached")
        return 1
    assert result.decision_trace is not None
    print(f"no violation; a decision is reachable (shortest: {len(result.decision_trace)} steps)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.bug == ["list"]:
        for bug in sorted(SynodBug):
            print(f"{bug.value:28} {bug.description}")
        return 0
    options = _options(args)
    live, show = _progress_printer(args.quiet)
    if live is None:
        result = explore(options, show)
    else:
        with live:
            result = explore(options, show)
    status = _report(result)
    if not args.explore:
        return status
    if result.violation is None:
        print("no violation, so no counterexample to explore: the explorer is not started")
        return status
    return _open_in_explorer(result, args.port, not args.no_browser) or status


def _open_in_explorer(result: ExploreResult, port: int, open_browser: bool) -> int:
    """Serve the violation's trace in the explorer until Ctrl-C; nonzero if that failed."""
    # Imported here: aiohttp and the page are only needed when a trace is opened.
    from pypaxos.cli.explore import serve_session
    from pypaxos.explorer.session import Session
    from pypaxos.explorer.trace import Counterexample, TraceError, trace_scenario

    violation = result.violation
    assert violation is not None
    steps = tuple(step.step for step in violation.trace)
    try:
        scenario = trace_scenario(Counterexample(result.options.config, violation.problems, steps))
    except TraceError as error:
        print(f"pypaxos check: cannot replay the trace in the explorer: {error}", file=sys.stderr)
        return 1
    print(f"opening the trace in the explorer at its failing step ({len(steps)})", flush=True)
    return serve_session(Session(scenario), port, open_browser)
