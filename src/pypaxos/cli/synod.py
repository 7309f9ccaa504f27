"""``pypaxos synod``: run one simulated single-decree instance and print its trace.

The first line is the exact command that replays the run, the second the heal time and the
liveness bound; then one line per event (virtual time, sender -> receiver, message; ``-x``
marks a message lost when sent, ``[lost: X down]`` one that arrived at a crashed actor), and
last the chosen value and who learned it, or the violation.  Exit 0 when no invariant broke,
1 when one did, 2 for bad usage.

The options shared with ``pypaxos sim synod`` are defined here, once, so that a replay command
printed by either one means the same run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pypaxos.cli.usage import UsageError
from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.sim.synod import SynodSettings, run_synod

NO_FAULTS = SynodSettings()


def add_world_arguments(parser: argparse.ArgumentParser, defaults: SynodSettings) -> None:
    """Options describing the deployment and its faults, defaulting to ``defaults``."""
    d = defaults
    world = parser.add_argument_group("deployment")
    world.add_argument("--proposers", type=int, default=d.proposers, help="(default %(default)s)")
    world.add_argument("--acceptors", type=int, default=d.acceptors, help="(default %(default)s)")
    world.add_argument("--learners", type=int, default=d.learners, help="(default %(default)s)")
    world.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a planted bug (repeatable); '--bug list' lists them",
    )
    faults = parser.add_argument_group("faults (during the fault phase, before the heal)")
    faults.add_argument(
        "--drop",
        type=float,
        default=d.drop,
        help="per-message loss probability (default %(default)s)",
    )
    faults.add_argument(
        "--dup",
        type=float,
        default=d.dup,
        help="per-message duplication probability (default %(default)s)",
    )
    faults.add_argument(
        "--crash",
        type=float,
        default=d.crash,
        help="chance, every 10 ticks, that one random actor crashes (default %(default)s)",
    )
    faults.add_argument(
        "--crash-after-handle",
        type=float,
        default=d.crash_after_handle,
        help="chance that an actor crashes right after handling a message (default %(default)s)",
    )
    faults.add_argument(
        "--partition",
        default=d.partition,
        metavar="SPEC",
        help="'random' (random splits come and go) or groups of actors that can talk, "
        "e.g. A1,P1/A2,A3,P2 (unlisted actors form one more group)",
    )
    faults.add_argument(
        "--fault-ticks",
        type=int,
        default=d.fault_ticks,
        help="length of the fault phase; the heal comes then (default %(default)s)",
    )
    faults.add_argument("--min-delay", type=int, default=d.delay_min_ticks, help="ticks")
    faults.add_argument(
        "--max-delay",
        type=int,
        default=d.delay_max_ticks,
        help="message delays are uniform in [min, max] ticks (default %(default)s)",
    )
    faults.add_argument("--min-downtime", type=int, default=d.downtime_min_ticks, help="ticks")
    faults.add_argument(
        "--max-downtime",
        type=int,
        default=d.downtime_max_ticks,
        help="a crashed actor restarts after [min, max] ticks (default %(default)s)",
    )


def wants_bug_list(args: argparse.Namespace) -> bool:
    return "list" in args.bug


def print_bug_list() -> None:
    width = max(len(bug.value) for bug in SynodBug)
    for bug in SynodBug:
        print(f"{bug.value:<{width}}  {bug.description}")


def settings_from_args(args: argparse.Namespace) -> SynodSettings:
    """Build settings from parsed options; bad values become a ``UsageError`` (exit 2)."""
    try:
        return SynodSettings(
            proposers=args.proposers,
            acceptors=args.acceptors,
            learners=args.learners,
            bugs=parse_bugs(args.bug, SynodBug),
            drop=args.drop,
            dup=args.dup,
            crash=args.crash,
            crash_after_handle=args.crash_after_handle,
            partition=args.partition,
            fault_ticks=args.fault_ticks,
            delay_min_ticks=args.min_delay,
            delay_max_ticks=args.max_delay,
            downtime_min_ticks=args.min_downtime,
            downtime_max_ticks=args.max_downtime,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default %(default)s)")
    parser.add_argument(
        "--svg", metavar="FILE", help="also write the run's message-sequence diagram as SVG"
    )
    add_world_arguments(parser, NO_FAULTS)


# A message line of the trace: time, sender, "->" (delivered) or "-x" (lost), receiver, message.
_MESSAGE_LINE = re.compile(r"^t=\s*(\d+)  (\S+) (->|-x) (\S+)  (.*)$")


def trace_svg(settings: SynodSettings, trace: list[str], title: str) -> str:
    """The run's message-sequence diagram (delivered messages; lost ones marked ``✗``)."""
    from pypaxos.explorer.svg import sequence_svg  # only this option needs the renderer

    config = settings.config()
    actors = [config.name(i) for i in (*config.proposer_ids, *config.acceptor_ids)]
    actors += [config.name(i) for i in config.learner_ids]
    events = []
    for line in trace:
        match = _MESSAGE_LINE.match(line)
        if match:
            time, sender, arrow, receiver, label = match.groups()
            events.append((float(time), sender, receiver, label if arrow == "->" else f"✗ {label}"))
    return sequence_svg(actors, events, title=title)


def run(args: argparse.Namespace) -> int:
    if wants_bug_list(args):
        print_bug_list()
        return 0
    settings = settings_from_args(args)
    result = run_synod(settings, args.seed, trace=True)
    for line in result.report_lines():
        print(line)
    if args.svg is not None:
        lines = result.report_lines()
        Path(args.svg).write_text(trace_svg(settings, lines, lines[0].lstrip("# ")))
    return 0 if result.violation is None else 1
