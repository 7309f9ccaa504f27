"""``pypaxos demo``: the short, self-explaining tour of single-decree Paxos (``make demo``).

It drives the real actors through the scripted scenarios (see ``sim/script.py``), then lets the
simulator and the model checker attack them, including with a planted bug switched on.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from pypaxos.sim.script import run_script

SCENARIOS: tuple[tuple[str, str, str], ...] = (
    (
        "The normal case",
        "One proposer, three acceptors, one learner.  Phase 1: P1 sends Prepare and collects a "
        "majority of Promises.  Phase 2: it sends Accept; each acceptor persists, then tells the "
        "proposer and the learner.  A majority of Accepted in one ballot means x is chosen.",
        """> propose P1 x
> deliver all
> state""",
    ),
    (
        "A proposer must adopt an accepted value",
        "P1 got x accepted by A1 only, then stalled.  P2 wants y, but A1's Promise reports x at "
        "ballot 0.4, so P2 must propose x: once a value may have been chosen, every later ballot "
        "carries it (P2c in Paxos Made Simple).",
        """> propose P1 x
> deliver A1
> deliver A2
> drop P1 A3
> deliver P1
> deliver P1 A1
> drop P1 A2
> drop P1 A3
> propose P2 y
> deliver A1
> deliver A3
> deliver P2
> deliver all
> state""",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pause-s",
        type=float,
        default=0.0,
        help="seconds to pause between sections (default 0)",
    )


def _section(console: Console, title: str, text: str) -> None:
    console.print()
    console.print(Panel(text, title=f"[bold]{title}[/bold]", expand=False, width=100))


def _run_cli(console: Console, argv: list[str]) -> int:
    from pypaxos.cli.main import main

    console.print(f"[dim]$ pypaxos {' '.join(argv)}[/dim]")
    return main(argv)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    pause: Callable[[], None] = lambda: time.sleep(args.pause_s)  # noqa: E731
    console.print(
        "[bold]pypaxos[/bold]: single-decree Paxos as pure actors, attacked by a "
        "simulator and a model checker."
    )
    for title, explanation, script in SCENARIOS:
        _section(console, title, explanation)
        console.print(run_script(script), markup=False)
        pause()
    for title, explanation, argv, expected in _attacks():
        _section(console, title, explanation)
        status = _run_cli(console, argv)
        if status != expected:
            console.print(f"[red]unexpected exit status {status} (expected {expected})[/red]")
            return 1
        pause()
    console.print("\nMore: `pypaxos --help`, and the README in " + str(Path.cwd()))
    return 0


def _attacks() -> list[tuple[str, str, list[str], int]]:
    """Simulator and model-checker sections: (title, explanation, argv, expected exit)."""
    return [
        (
            "A simulated run with faults",
            "The same actors under the deterministic simulator: messages are lost (20%), "
            "duplicated (10%) and delayed; one seed fixes the whole run, so this trace is "
            "reproduced exactly by the command shown.",
            ["synod", "--seed", "7", "--drop", "0.2", "--dup", "0.1"],
            0,
        ),
        (
            "Five hundred random runs",
            "Each seed draws its own losses, duplicates, delays, partitions and crashes; "
            "after every step the simulator checks that at most one value is chosen, that it "
            "was proposed, and that no learner changes its mind.",
            ["sim", "synod", "--seeds", "500"],
            0,
        ),
        (
            "A planted bug, caught",
            "Switch on 'ignore-promised-values' (a proposer that ignores the values reported in "
            "promises) and the simulator catches it: the proposer's value breaks P2c (Paxos "
            "Made Simple, 2.2), with the command that replays the seed.",
            ["sim", "synod", "--seeds", "200", "--bug", "ignore-promised-values"],
            1,
        ),
        (
            "Every interleaving, exhaustively",
            "The model checker runs the real actors through every order of deliveries, "
            "duplicates, losses and an acceptor crash (here one proposer that may retry once, "
            "so it finishes in seconds; `pypaxos check synod` does 2 proposers), and checks the "
            "same invariants in every reachable state.",
            ["check", "synod", "--proposers", "1", "--max-ballot", "1", "--quiet"],
            0,
        ),
        (
            "The model checker finds the shortest bug",
            "With 'learner-mixes-ballots' switched on (a learner that counts acceptances of one "
            "value across ballots), it prints the shortest execution where a learner decides "
            "a value that was never chosen.",
            [
                *("check", "synod", "--max-ballot", "0", "--max-crashes", "0"),
                *("--bug", "learner-mixes-ballots", "--quiet"),
            ],
            1,
        ),
    ]
