"""``pypaxos synod``: run one simulated single-decree instance and print its trace.

The first line is the exact command that replays the run, the second the heal time and the
liveness bound; then one line per event: its virtual time and a step in the one text form of
``sim.steps`` (``A1 <- Prepare 0.4 from P1`` a delivery, ``<-x`` a message lost as it was
sent, ``A1 crashes``, ``P1's phase timer fires``...), or a note marked ``--`` (a decision, a
partition, the heal); and last the chosen value and who learned it, or the violation.  Exit 0
when no invariant broke, 1 when one did, 2 for bad usage.

The options shared with ``pypaxos sim synod`` are defined here, once, so that a replay command
printed by either one means the same run.  The first line always spells every setting out, so
it replays a ``--swarm`` run (whose mix the seed drew) without the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pypaxos.cli.usage import UsageError, add_bug_argument
from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.sim.steps import Deliver, Drop, Timed, render_message
from pypaxos.sim.synod import SynodSettings, run_synod, swarm_settings

NO_FAULTS = SynodSettings()


# Each world option: its settings field, and its help (the default is appended).
_FAULT_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--drop", "drop", float, "per-message loss probability"),
    ("--dup", "dup", float, "per-message duplication probability"),
    ("--crash", "crash", float, "chance, every 10 ticks, that one random actor crashes"),
    (
        "--crash-after-handle",
        "crash_after_handle",
        float,
        "chance that an actor crashes right after handling a message",
    ),
    (
        "--crash-roles",
        "crash_roles",
        str,
        "which roles may crash: letters P (proposers), A (acceptors), L (learners)",
    ),
    (
        "--crash-points",
        "crash_points",
        str,
        "crash after handling a message only when the actor sent one of these kinds "
        "(comma-separated, e.g. Accept,Promise; empty: after any message)",
    ),
    (
        "--partition",
        "partition",
        str,
        "'random' (random splits come and go) or groups of actors that can talk, "
        "e.g. A1,P1/A2,A3,P2 (unlisted actors form one more group)",
    ),
    ("--fault-ticks", "fault_ticks", int, "length of the fault phase; the heal comes then"),
    ("--min-delay", "delay_min_ticks", int, "message delays are uniform in [min, max] ticks"),
    ("--max-delay", "delay_max_ticks", int, "message delays are uniform in [min, max] ticks"),
    (
        "--min-downtime",
        "downtime_min_ticks",
        int,
        "a crashed actor restarts after [min, max] ticks",
    ),
    (
        "--max-downtime",
        "downtime_max_ticks",
        int,
        "a crashed actor restarts after [min, max] ticks",
    ),
)
_DEPLOYMENT_OPTIONS = (
    ("--proposers", "proposers"),
    ("--acceptors", "acceptors"),
    ("--learners", "learners"),
)


def add_world_arguments(
    parser: argparse.ArgumentParser, defaults: SynodSettings, swarm: bool = False
) -> None:
    """Options describing the deployment and its faults, defaulting to ``defaults``.

    Every option defaults to ``None`` so that ``pinned_fields`` can tell which were given;
    ``settings_from_args`` fills the others in.  With ``swarm``, the help says a seed draws them.
    """

    def default_help(field: str) -> str:
        value = getattr(defaults, field)
        if swarm:
            return f"(default: drawn per seed; with --no-swarm {value!r})"
        return f"(default {value!r})"

    world = parser.add_argument_group("deployment")
    for option, field in _DEPLOYMENT_OPTIONS:
        world.add_argument(option, type=int, dest=field, help=default_help(field))
    add_bug_argument(world)
    faults = parser.add_argument_group("faults (during the fault phase, before the heal)")
    for option, field, kind, text in _FAULT_OPTIONS:
        metavar = "SPEC" if field == "partition" else option[2:].upper().replace("-", "_")
        help_text = f"{text} {default_help(field)}"
        faults.add_argument(option, type=kind, dest=field, metavar=metavar, help=help_text)


def pinned_fields(args: argparse.Namespace) -> frozenset[str]:
    """The settings fields whose option was given on the command line."""
    fields = [field for _, field in _DEPLOYMENT_OPTIONS]
    fields += [field for _, field, _, _ in _FAULT_OPTIONS]
    return frozenset(field for field in fields if getattr(args, field) is not None)


def wants_bug_list(args: argparse.Namespace) -> bool:
    return "list" in args.bug


def print_bug_list() -> None:
    width = max(len(bug.value) for bug in SynodBug)
    for bug in SynodBug:
        print(f"{bug.value:<{width}}  {bug.description}")


def pinned_words(args: argparse.Namespace) -> list[str]:
    """The given world options as command-line words, in the order ``--help`` lists them."""
    options = [(option, field) for option, field in _DEPLOYMENT_OPTIONS]
    options += [(option, field) for option, field, _, _ in _FAULT_OPTIONS]
    given = [(option, getattr(args, field)) for option, field in options]
    return [word for option, value in given if value is not None for word in (option, str(value))]


def settings_from_args(
    args: argparse.Namespace, defaults: SynodSettings = NO_FAULTS
) -> SynodSettings:
    """``defaults`` with the given options and bugs; bad values become a ``UsageError``."""
    given = {field: getattr(args, field) for field in pinned_fields(args)}
    try:
        return replace(defaults, bugs=parse_bugs(args.bug, SynodBug), **given)
    except ValueError as error:
        raise UsageError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default %(default)s)")
    parser.add_argument(
        "--svg", metavar="FILE", help="also write the run's message-sequence diagram as SVG"
    )
    parser.add_argument(
        "--swarm",
        action="store_true",
        help="draw the seed's fault mix as 'pypaxos sim synod' does (given options pin theirs)",
    )
    add_world_arguments(parser, NO_FAULTS)


def trace_svg(settings: SynodSettings, events: Sequence[Timed], title: str) -> str:
    """The run's message-sequence diagram (delivered messages; lost ones marked ``✗``)."""
    from pypaxos.explorer.svg import sequence_svg  # only this option needs the renderer

    config = settings.config()
    name = config.name
    actors = [name(i) for i in (*config.proposer_ids, *config.acceptor_ids, *config.learner_ids)]
    rows = []
    for event in events:
        match event.entry:
            case Deliver(to=to, message=msg):
                rows.append((float(event.time), name(msg.sender), name(to), render_message(msg)))
            case Drop(to=to, message=msg):
                label = f"✗ {render_message(msg)}"
                rows.append((float(event.time), name(msg.sender), name(to), label))
            case _:
                pass  # not a message
    return sequence_svg(actors, rows, title=title)


def run(args: argparse.Namespace) -> int:
    if wants_bug_list(args):
        print_bug_list()
        return 0
    settings = settings_from_args(args)
    if args.swarm:
        settings = swarm_settings(settings, args.seed, pinned_fields(args))
    result = run_synod(settings, args.seed, trace=True)
    for line in result.report_lines():
        print(line)
    if args.svg is not None:
        title = settings.replay_command(args.seed)
        Path(args.svg).write_text(trace_svg(settings, result.events, title))
    return 0 if result.violation is None else 1
