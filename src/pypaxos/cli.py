"""The ``pypaxos`` command line.

Exit status everywhere: 0 when no violation is found, 1 when one is, 2 for bad usage.  Each
subcommand lives in the module that owns its work and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# (command path, module, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("synod",),
        "pypaxos.sim.cmd_synod",
        "run one simulated single-decree instance, print its trace",
    ),
    (("sim", "synod"), "pypaxos.sim.cmd_sim", "run many random simulator seeds with faults"),
    (("check", "synod"), "pypaxos.sim.cmd_check", "exhaustively model-check single-decree Paxos"),
    (("lincheck",), "pypaxos.sim.cmd_lincheck", "check a JSON Lines history for linearizability"),
    (("explore",), "pypaxos.explorer.cmd", "watch and drive single-decree Paxos in a browser"),
    (("demo",), "pypaxos.demo", "a short, self-explaining demonstration (what `make run` runs)"),
)


class UsageError(Exception):
    """Bad command-line input; reported on stderr with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pypaxos",
        description="Paxos for Python: simulate, model-check and run single-decree Paxos.",
    )
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parents: dict[str, argparse.ArgumentParser] = {}
    for path, module_name, help_text in COMMANDS:
        subparsers = top
        for depth, word in enumerate(path[:-1]):
            key = " ".join(path[: depth + 1])
            if key not in groups:
                group_parser = subparsers.add_parser(word, help=f"{word} commands")
                parents[key] = group_parser
                groups[key] = group_parser.add_subparsers(
                    dest=f"sub_{depth}", metavar="TARGET", required=True
                )
            subparsers = groups[key]
        sub = subparsers.add_parser(path[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except UsageError as error:
        print(f"pypaxos: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":
    sys.exit(main())
