"""``pypaxos lincheck HISTORY``: is a recorded key-value history linearizable?

Exit status: 0 linearizable (one summary line), 1 not linearizable (the key and the operations
around the point no order gets past), 2 bad usage or an unreadable or malformed file, 3 the
``--timeout`` ran out before a verdict (neither verified nor refuted).
"""

from __future__ import annotations

import argparse
import sys

from pypaxos.cli import UsageError
from pypaxos.sim.linearizability import check_history, parse_history

EXIT_TIMEOUT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check a JSON Lines history of read/write/cas/delete/incr operations on keys for "
        "linearizability (Wing & Gong search with Lowe's memoisation, each key on its own). "
        "Exit 0: linearizable; 1: not; 2: bad input; 3: timed out undecided."
    )
    parser.add_argument(
        "history",
        metavar="HISTORY",
        help="JSON Lines file, one event a line in real-time order ('-' reads stdin)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up (exit 3) after this many seconds of search; default: no limit",
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    try:
        if args.history == "-":
            history = parse_history(sys.stdin)
        else:
            with open(args.history, encoding="utf-8") as stream:
                history = parse_history(stream)
    except OSError as error:
        raise UsageError(f"cannot read {args.history}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{args.history}: not UTF-8 text") from None
    except ValueError as error:
        raise UsageError(f"{args.history}: {error}") from None
    result = check_history(history, timeout_s=args.timeout)
    print(result.explain())
    if result.outcome == "ok":
        return 0
    if result.outcome == "violation":
        return 1
    return EXIT_TIMEOUT
