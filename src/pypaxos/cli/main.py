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
from typing import Any

from pypaxos.cli.usage import UsageError

# (command path, module, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("synod",),
        "pypaxos.cli.synod",
        "run one simulated single-decree instance, print its trace",
    ),
    (("sim", "synod"), "pypaxos.cli.sim_synod", "run many random simulator seeds with faults"),
    (
        ("sim", "kv"),
        "pypaxos.cli.sim_kv",
        "simulate the replicated key-value store with faults",
    ),
    (
        ("sim", "rejoin"),
        "pypaxos.cli.sim_rejoin",
        "count disruptive elections when a cut-off follower comes back",
    ),
    (("check", "synod"), "pypaxos.cli.check", "exhaustively model-check single-decree Paxos"),
    (("lincheck",), "pypaxos.cli.lincheck", "check a JSON Lines history for linearizability"),
    (("explore",), "pypaxos.cli.explore", "watch and drive single-decree Paxos in a browser"),
    (("node",), "pypaxos.cli.node", "run one node of a cluster (Redis protocol clients)"),
    (("passwd",), "pypaxos.cli.passwd", "hash a client password into a [[users]] entry"),
    (
        ("demo",),
        "pypaxos.cli.demo",
        "a short, self-explaining tour of single-decree Paxos (what `make demo` runs)",
    ),
    (("cluster", "up"), "pypaxos.cli.cluster_up", "start a local cluster of node processes"),
    (("certs",), "pypaxos.cli.certs", "make a development CA and TLS certificates for members"),
    (("cluster", "status"), "pypaxos.cli.cluster_status", "show each node's role and progress"),
    (("cluster", "down"), "pypaxos.cli.cluster_down", "stop the local cluster's nodes"),
    (
        ("snapshot", "save"),
        "pypaxos.cli.snapshot_save",
        "save a consistent backup of a running cluster's data to a file",
    ),
    (
        ("snapshot", "restore"),
        "pypaxos.cli.snapshot_restore",
        "seed a new cluster's data directories from a backup file",
    ),
    (("snapshot", "inspect"), "pypaxos.cli.snapshot_inspect", "check a backup file, show it"),
    (("cluster", "add"), "pypaxos.cli.cluster_members", "grow a local cluster by one node"),
    (("cluster", "remove"), "pypaxos.cli.cluster_members", "remove a node of a local cluster"),
    (("member",), "pypaxos.cli.member", "list, add, promote, remove or replace members"),
    (("live",), "pypaxos.cli.live", "run a workload on a local cluster, kill its leader, verify"),
    (("torture",), "pypaxos.cli.torture", "Jepsen-style faults on a real cluster; check history"),
    (("bench",), "pypaxos.cli.bench", "measure a local cluster's throughput and latency"),
    (("deploy",), "pypaxos.cli.deploy", "write container manifests: Kubernetes, podman, compose"),
    (("lint-machine",), "pypaxos.cli.lint_machine", "flag nondeterminism in a replicated class"),
    (("check-machine",), "pypaxos.cli.check_machine", "simulate a replicated class with faults"),
)


def _chosen_path(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The command path that ``argv`` names, found without importing any command module."""
    words = [w for w in argv if not w.startswith("-")]
    for path, _, _ in COMMANDS:
        if tuple(words[: len(path)]) == path:
            return path
    return None


class TerminalHelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, sized to the terminal without importing ``shutil``.

    argparse makes a formatter for every ``add_argument`` and, given no width, imports
    ``shutil`` for the terminal's; ``shutil`` loads the bz2 and lzma libraries, about half a
    MiB resident in every node process for a width only help and usage errors print with."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # two columns of margin, as argparse leaves
        super().__init__(prog, indent_increment, max_help_position, width)


def terminal_columns() -> int:
    """The terminal's width in columns as ``shutil.get_terminal_size`` finds it: ``COLUMNS``,
    else standard output's terminal, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (ValueError, OSError):
        return 80


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help formatter is ``TerminalHelpFormatter`` unless told
    otherwise; its subcommands' parsers are of this class too (argparse's default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", TerminalHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported (``None``: all of them).

    Importing one module keeps start-up fast: a node process does not load the explorer,
    the simulator or rich just to parse its flags.
    """
    chosen = None if argv is None else _chosen_path(argv)
    parser = CommandParser(
        prog="pypaxos",
        description="Paxos for Python: simulate, model-check and run Paxos.",
    )
    groups: dict[str, argparse._SubParsersAction[CommandParser]] = {}
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for path, module_name, help_text in COMMANDS:
        subparsers = top
        for depth, word in enumerate(path[:-1]):
            key = " ".join(path[: depth + 1])
            if key not in groups:
                group_parser = subparsers.add_parser(word, help=f"{word} commands")
                groups[key] = group_parser.add_subparsers(
                    dest=f"sub_{depth}", metavar="TARGET", required=True
                )
            subparsers = groups[key]
        sub = subparsers.add_parser(path[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        if argv is None or path == chosen:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
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
