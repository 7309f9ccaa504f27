"""``pypaxos lincheck HISTORY...``: is a recorded key-value history linearizable?

Two checkers decide it by different algorithms: ``wgl`` (the default, ``sim.linearizability``:
Wing & Gong's depth-first search with Lowe's memoisation) and ``jit`` (``sim.lincheck_jit``: a
breadth-first sweep of just-in-time linearizations).  ``--checker both`` runs the two on every
file so that a bug in one shows up as a disagreement.  Each HISTORY may be a directory: every
``*.jsonl`` in it is checked (as ``pypaxos sim kv --history DIR`` writes them), and several
files end with one summary line.  The keys of a ``--collections`` run's hashes, lists, sets
and sorted sets (any key with an operation other than read, write, cas, delete and incr) are
checked against the Redis model instead (``lincheck.model_check``), whichever checker is named.

Exit status: 0 every file linearizable, 1 one is not (the key and the operations around the
point no order gets past), 2 bad usage or an unreadable or malformed file, 3 the ``--timeout``
ran out before a verdict (neither verified nor refuted) or, with ``both``, the checkers disagree
(both verdicts are printed).  A disagreement outranks everything, then 2, then 1, then undecided.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pypaxos.cli.usage import UsageError
from pypaxos.lincheck.jit import check_jsonl_jit
from pypaxos.lincheck.model_check import check_history as check_model_history
from pypaxos.lincheck.model_check import history_from_events as model_history_from_events
from pypaxos.lincheck.model_check import split_lines
from pypaxos.lincheck.wgl import check_history, parse_history

EXIT_TIMEOUT = 3
EXIT_DISAGREE = 3
CHECKERS = ("wgl", "jit", "both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check JSON Lines histories of read/write/cas/delete/incr operations on keys for "
        "linearizability, each key on its own. Exit 0: linearizable; 1: not; 2: bad input; "
        "3: timed out undecided, or (--checker both) the two checkers disagree."
    )
    parser.add_argument(
        "history",
        metavar="HISTORY",
        nargs="+",
        help="JSON Lines file, one event a line in real-time order ('-' reads stdin), or a "
        "directory whose *.jsonl files are all checked",
    )
    parser.add_argument(
        "--checker",
        choices=CHECKERS,
        default="wgl",
        help="wgl: Wing & Gong search with Lowe's memoisation (default); jit: just-in-time "
        "linearization over configuration sets (an independent second implementation); "
        "both: run the two and exit 3 if they disagree",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up (exit 3) after this many seconds of search per file and checker; "
        "default: no limit",
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One checker's answer on one file: linearizable, violation, unknown or error."""

    outcome: str
    text: str
    seconds: float


@dataclass(slots=True)
class Tally:
    """What the summary line adds up over the files."""

    files: int = 0
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    disagreements: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _natural(path: Path) -> list[object]:
    """Sort key putting seed-2 before seed-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _expand(names: list[str]) -> list[str]:
    if names.count("-") > 1:
        raise UsageError("'-' (stdin) can be given only once")
    files: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            found = sorted(path.glob("*.jsonl"), key=_natural)
            if not found:
                raise UsageError(f"{name}: a directory without *.jsonl files")
            files.extend(str(p) for p in found)
        else:
            files.append(name)
    return files


def _read(name: str) -> list[str]:
    try:
        if name == "-":
            return sys.stdin.readlines()
        with open(name, encoding="utf-8") as stream:
            return stream.readlines()
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None


def _wgl(lines: list[str], timeout: float | None) -> Verdict:
    started = time.perf_counter()
    try:
        result = check_history(parse_history(lines), timeout_s=timeout)
    except ValueError as error:
        return Verdict("error", str(error), time.perf_counter() - started)
    outcome = {"ok": "linearizable", "violation": "violation"}.get(result.outcome, "unknown")
    return Verdict(outcome, result.explain(), time.perf_counter() - started)


def _jit(lines: list[str], timeout: float | None) -> Verdict:
    started = time.perf_counter()
    try:
        result = check_jsonl_jit(lines, timeout_s=timeout)
    except ValueError as error:
        return Verdict("error", str(error), time.perf_counter() - started)
    return Verdict(result.outcome, result.explain(), time.perf_counter() - started)


def _decided(verdict: Verdict) -> bool:
    return verdict.outcome != "unknown"


def _model(events: list[Mapping[str, object]], timeout: float | None) -> Verdict:
    started = time.perf_counter()
    try:
        result = check_model_history(model_history_from_events(events), timeout_s=timeout)
    except ValueError as error:
        return Verdict("error", str(error), time.perf_counter() - started)
    outcome = {"ok": "linearizable", "violation": "violation"}.get(result.outcome, "unknown")
    return Verdict(outcome, result.explain(), time.perf_counter() - started)


def _with_model(verdict: Verdict, model: Verdict | None) -> Verdict:
    """A register checker's verdict joined with the model's on the other keys: the worse."""
    if model is None:
        return verdict
    rank = ("linearizable", "unknown", "violation", "error")
    outcome = max(verdict.outcome, model.outcome, key=rank.index)
    return Verdict(outcome, f"{verdict.text}\n{model.text}", verdict.seconds + model.seconds)


def _check_file(name: str, args: argparse.Namespace, tally: Tally, single: bool) -> None:
    lines = _read(name)
    tally.files += 1
    tally.events += sum(1 for line in lines if line.strip())
    names = ("wgl", "jit") if args.checker == "both" else (args.checker,)
    runners = {"wgl": _wgl, "jit": _jit}
    lines, model_events = split_lines(lines)
    model = _model(model_events, args.timeout) if model_events else None
    verdicts = {
        checker: _with_model(runners[checker](lines, args.timeout), model) for checker in names
    }
    for checker, verdict in verdicts.items():
        tally.seconds[checker] = tally.seconds.get(checker, 0.0) + verdict.seconds
    outcomes = {v.outcome for v in verdicts.values() if _decided(v)}
    if len(outcomes) > 1:  # a verdict each way (an error counts: one parser accepted the file)
        tally.disagreements += 1
        print(f"DISAGREEMENT on {name}:")
        for checker, verdict in verdicts.items():
            print(f"  {checker}: {verdict.text}".replace("\n", "\n  "))
        return
    verdict = next(iter(verdicts.values()))
    if "error" in outcomes:
        if single:
            raise UsageError(f"{name}: {verdict.text}")
        outcome = "error"
    elif outcomes:
        outcome = outcomes.pop()
    else:
        outcome = "unknown"
    tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
    if single:
        for checker, each in verdicts.items():
            print(each.text if len(verdicts) == 1 else f"{checker}: {each.text}")
    elif any(each.outcome != "linearizable" for each in verdicts.values()):
        print(f"{name}: {outcome}")
        for checker, each in verdicts.items():
            if each.outcome != "linearizable":
                print(f"  {checker}: {each.text}".replace("\n", "\n  "))


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    files = _expand(args.history)
    single = len(files) == 1
    tally = Tally()
    started = time.perf_counter()
    for name in files:
        _check_file(name, args, tally, single)
    if not single or args.checker == "both":
        counts = tally.outcomes
        timing = ", ".join(f"{c} {s:.1f} s" for c, s in sorted(tally.seconds.items()))
        print(
            f"lincheck ({args.checker}): {tally.files} files, {tally.events} events, "
            f"{counts.get('linearizable', 0)} linearizable, {counts.get('violation', 0)} not, "
            f"{counts.get('unknown', 0)} undecided, {counts.get('error', 0)} malformed, "
            f"{tally.disagreements} disagreements; {timing}; "
            f"{time.perf_counter() - started:.1f} s in all"
        )
    if tally.disagreements:
        return EXIT_DISAGREE
    if tally.outcomes.get("error"):
        return 2
    if tally.outcomes.get("violation"):
        return 1
    if tally.outcomes.get("unknown"):
        return EXIT_TIMEOUT
    return 0
