"""What every command shares: the one bad-input error (stderr, exit status 2), and the
``--bug`` option every command that runs the protocol takes."""

import argparse

PASSWORD_ENV = "PYPAXOS_PASSWORD"
"""Where a command that logs in to a cluster reads the password (never the command line)."""


class UsageError(Exception):
    """Bad command-line input; reported on stderr with exit status 2."""


def add_bug_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str | None = None
) -> None:
    """``--bug NAME`` (repeatable); the command parses the names (``core.bugs.parse_bugs``)."""
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help=help_text or "switch on a planted bug (repeatable); '--bug list' lists them",
    )
