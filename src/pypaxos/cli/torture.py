"""``pypaxos torture --time S --nodes 3|5 --nemesis KINDS|all [--bug NAME] [--spares N]``.

A Jepsen-style run against real ``pypaxos node`` processes (see ``run.py`` for the steps and
``nemesis.py`` for the faults).  The last line printed is the summary: operations, ok, fail,
info, faults injected and the verdict.  Exit 0 when the verdict is clean, 1 when not, 130 when
interrupted (every process, namespace and rule of the run is removed in every case).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pypaxos.cli.usage import add_bug_argument
from pypaxos.core.bugs import UnknownBug, parse_bugs
from pypaxos.kv import KvBug
from pypaxos.multi import LogBug
from pypaxos.storage.file import FSYNC_MODES
from pypaxos.torture.hosts import SLOTS_MAX
from pypaxos.torture.locks import LockBug
from pypaxos.torture.nemesis import AIMED_NEMESES, MEMBER_NEMESES, NEMESES
from pypaxos.torture.reads import READ_MODES, ReadSetup
from pypaxos.torture.run import Options, Verdict, default_seed, torture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time", type=float, default=60.0, metavar="SECONDS", help="(60)")
    parser.add_argument("--nodes", type=int, choices=(3, 5), default=3, help="(3)")
    parser.add_argument(
        "--nemesis",
        default="all",
        metavar="KINDS",
        help=f"comma-separated from {','.join(NEMESES)}, or all (default), or none; "
        f"aimed kinds (not in all): {','.join(AIMED_NEMESES)}; {','.join(MEMBER_NEMESES)} "
        "(not in all: membership changes, need --spares)",
    )
    parser.add_argument(
        "--spares",
        type=int,
        metavar="N",
        help="node slots laid out beyond --nodes for the member nemesis to add "
        "(2 with a member nemesis, else 0)",
    )
    add_bug_argument(parser)
    parser.add_argument(
        "--mode",
        choices=("auto", "netns", "loopback"),
        default="auto",
        help="netns when root and ip netns work (auto, the default), or force one",
    )
    parser.add_argument(
        "--fsync",
        choices=FSYNC_MODES,
        default="always",
        help="the nodes' fsync setting (always); never shows what the power nemesis catches",
    )
    parser.add_argument("--out", type=Path, help="run folder (default: a new temporary one)")
    parser.add_argument("--seed", type=int, help="nemesis and workload seed (default: random)")
    parser.add_argument("--clients", type=int, default=5, help="concurrent clients (5)")
    parser.add_argument("--keys", type=int, default=3, help="shared keys (3)")
    parser.add_argument(
        "--reads",
        choices=READ_MODES,
        default="read-index",
        help="how the nodes serve reads (read-index; follower: read-index with follower reads)",
    )
    parser.add_argument(
        "--readers",
        type=int,
        default=0,
        metavar="N",
        help="read-only clients, each bound to one node for good (0)",
    )
    parser.add_argument(
        "--read-fraction",
        type=float,
        default=0.45,
        metavar="F",
        help="share of the clients' operations that are reads (0.45)",
    )
    parser.add_argument(
        "--lease-ticks",
        type=int,
        metavar="N",
        help="with --reads lease: the lease length in ticks (default: the runtime's)",
    )
    parser.add_argument(
        "--locks",
        type=int,
        default=0,
        metavar="N",
        help="lock workers: holders of client.Lock acting on a fenced resource (0)",
    )
    parser.add_argument(
        "--lock-bug",
        action="append",
        default=[],
        metavar="NAME",
        help="plant a bug in the lock workload: " + ", ".join(b.value for b in LockBug),
    )
    parser.add_argument(
        "--agreement-rounds",
        type=int,
        metavar="N",
        help="leaders read through after the heal (default: one per node)",
    )


def parse_nemeses(text: str) -> list[str]:
    from pypaxos.cli.usage import UsageError

    if text == "all":
        return list(NEMESES)
    if text == "none":
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    known = (*NEMESES, *AIMED_NEMESES, *MEMBER_NEMESES)
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise UsageError(f"unknown nemesis {', '.join(unknown)}; known: {', '.join(known)}")
    return kinds


def run(args: argparse.Namespace) -> int:
    from pypaxos.cli.usage import UsageError

    if "list" in args.bug:
        for bug in (*LogBug, *KvBug):
            print(f"{bug.value:28} {bug.description}")
        return 0
    try:
        parse_bugs(args.bug, LogBug, KvBug)  # the nodes get the names; refuse a typo here
    except UnknownBug as error:
        raise UsageError(f"unknown bug {error.name} (--bug list shows them)") from None
    try:
        parse_bugs(args.lock_bug, LockBug)
    except UnknownBug as error:
        raise UsageError(f"unknown lock bug {error.name}") from None
    if args.locks < 0 or (args.lock_bug and args.locks == 0):
        raise UsageError("--locks must not be negative, and --lock-bug needs --locks")
    if args.time <= 0 or args.clients < 1 or args.keys < 1:
        raise UsageError("--time, --clients and --keys must be positive")
    if args.readers < 0 or not 0.0 <= args.read_fraction <= 1.0:
        raise UsageError("--readers must not be negative, --read-fraction in [0, 1]")
    try:
        reads = ReadSetup(args.reads, args.lease_ticks)
    except ValueError as error:
        raise UsageError(str(error)) from None
    nemeses = parse_nemeses(args.nemesis)
    members = [kind for kind in nemeses if kind in MEMBER_NEMESES]
    spares = args.spares if args.spares is not None else 2 * bool(members)
    if spares < 0 or args.nodes + spares > SLOTS_MAX:
        raise UsageError(f"--spares must not be negative, and --nodes + --spares <= {SLOTS_MAX}")
    if members and spares == 0:
        raise UsageError(f"the {members[0]} nemesis needs a spare slot (--spares 1 or more)")
    if reads.mode == "lease" and "clock" in nemeses:
        print(
            "torture: note: the clock nemesis breaks the lease's clock assumption on purpose; "
            "a violation may be the assumption's (clock-drift keeps to it)",
            flush=True,
        )
    options = Options(
        time_s=args.time,
        nodes=args.nodes,
        nemeses=nemeses,
        bugs=args.bug,
        mode=args.mode,
        out=args.out,
        seed=args.seed if args.seed is not None else default_seed(),
        clients=args.clients,
        keys=args.keys,
        agreement_rounds=args.agreement_rounds,
        reads=reads,
        readers=args.readers,
        read_fraction=args.read_fraction,
        fsync=args.fsync,
        locks=args.locks,
        lock_bugs=args.lock_bug,
        spares=spares,
    )
    try:
        verdict = asyncio.run(_main(options))
    except KeyboardInterrupt:
        print("torture: interrupted; every process, namespace and rule it made is removed")
        return 130
    except RuntimeError as error:
        print(f"torture: error: {error}", file=sys.stderr)
        return 1
    if verdict is None:
        print("torture: interrupted; every process, namespace and rule it made is removed")
        return 130
    if verdict.explanation:
        print(verdict.explanation)
    print(f"torture: history, nemesis log and node logs in {verdict.run_dir}")
    print(verdict.summary_line(), flush=True)
    return 0 if verdict.clean else 1


async def _main(options: Options) -> Verdict | None:
    """The run, or ``None`` when SIGINT or SIGTERM cancelled it (after its cleanup ran)."""
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cancels the run as Ctrl-C does, so every `finally` stops what it started.  SIGINT
    # gets the same handler explicitly: a shell starts background jobs with SIGINT ignored, and
    # Python then never raises KeyboardInterrupt, so `kill -INT` would go unheard.
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await torture(options, lambda text: print(text, flush=True))
    except asyncio.CancelledError:
        return None
