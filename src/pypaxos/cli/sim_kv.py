"""``pypaxos sim kv``: many seeded runs of the simulated Multi-Paxos KV service, with faults.

Each seed is one deterministic run of ``pypaxos.sim.kv`` (nodes, clients, nemesis, heal, and
the four checks: replicas agree, no acknowledged command lost, linearizable, serves again within
the stated bound).  The command prints its own settings first, every violation with its seed and
the exact command that replays it, then a summary: seeds, operations, simulated operations per
second of wall time, leader changes, faults, and how fast service resumed after the heal.

Swarm testing by default (Groce et al., "Swarm Testing", ISSTA 2012): each seed draws its own
cluster size and fault mix (``sim.kv.KVSwarm``), some fault kinds switched off altogether.
``--nodes``, ``--drop``, ``--dup``, ``--max-delay``, ``--reads``, ``--[no-]collections``,
``--[no-]scripts``, ``--[no-]publish``,
``--[no-]thrifty`` and ``--[no-]pre-vote`` pin their dimension for every seed; ``--no-swarm``
runs every seed with the one fixed mix of ``KVSettings``.  A violation prints the seed's mix and
the command that replays it (the seed draws it again).

Exit status: 0 no violation, 1 at least one, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from pypaxos.cli.usage import add_bug_argument
from pypaxos.core.bugs import parse_bugs
from pypaxos.kv import KvBug
from pypaxos.multi import LogBug
from pypaxos.sim.kv import KVResult, KVSettings, liveness_bound_ticks, run_seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Simulate a Multi-Paxos key-value cluster with concurrent clients under message loss, "
        "duplication, delay, partitions and crashes, then heal; check linearizability, replica "
        "agreement, that no acknowledged write is lost, and that service resumes in time. "
        "Exit 0: no violation; 1: a violation (its seed and replay command are printed); "
        "2: bad usage."
    )
    parser.add_argument(
        "--nodes", type=int, help="cluster size (default: drawn per seed; --no-swarm: 3)"
    )
    parser.add_argument("--clients", type=int, default=5, help="concurrent clients (default 5)")
    parser.add_argument(
        "--ops", type=int, default=200, help="client operations per seed (default 200)"
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    add_bug_argument(parser)
    parser.add_argument(
        "--thrifty",
        action=argparse.BooleanOptionalAction,
        help="leaders send each Accept to a quorum's worth of followers, as a real node does, "
        "or with --no-thrifty to every follower (default: drawn per seed; --no-swarm: thrifty)",
    )
    parser.add_argument(
        "--pre-vote",
        action=argparse.BooleanOptionalAction,
        help="a node whose election timer fires asks the voters before it raises its ballot, as "
        "a real node does, or with --no-pre-vote runs phase 1 at once (default: drawn per seed; "
        "--no-swarm: pre-vote)",
    )
    parser.add_argument(
        "--reads",
        choices=("log", "read-index", "lease"),
        help="reads as log commands, or answered by the leader after a heartbeat round "
        "(read-index), or at once under a leader lease with drifting clocks (lease) "
        "(default: drawn per seed; --no-swarm: log)",
    )
    parser.add_argument(
        "--follower-reads",
        action=argparse.BooleanOptionalAction,
        help="with --reads read-index: followers answer reads too, after asking the leader for "
        "a read index (default: drawn per seed; --no-swarm: off)",
    )
    parser.add_argument(
        "--collections",
        action=argparse.BooleanOptionalAction,
        help="half the operations on Redis hashes, lists, sets and sorted sets, checked against "
        "a reference model (default: drawn per seed; --no-swarm: off)",
    )
    parser.add_argument(
        "--scripts",
        action=argparse.BooleanOptionalAction,
        help="a few fixed Lua scripts among the collection operations (with --collections; "
        "default: drawn per seed; --no-swarm: off)",
    )
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        help="clients PUBLISH too; every replica's publications are checked for agreement and "
        "exactly-once (default: drawn per seed; --no-swarm: off)",
    )
    parser.add_argument(
        "--no-swarm",
        dest="swarm",
        action="store_false",
        help="run every seed with the same fixed fault mix instead of drawing one per seed",
    )
    parser.add_argument(
        "--apply-max-commands",
        type=int,
        default=0,
        help="each node applies about this many commands per input, the rest of a run of "
        "decided slots later, as a real node does (default 0: all at once)",
    )
    parser.add_argument(
        "--log-memory-bytes-max",
        type=int,
        default=0,
        help="bound the in-memory log apart from the snapshot interval (bytes of commands; "
        "snapshots then come every 24 slots, not 8; default 0: off)",
    )
    parser.add_argument(
        "--thrifty-reads",
        action="store_true",
        help="a leader sends a read's confirmation round only to the peers a quorum needs, "
        "those that answered the last round first (default: off, to every peer)",
    )
    network = parser.add_argument_group("network (default: drawn per seed)")
    network.add_argument("--drop", type=float, help="per-message loss probability")
    network.add_argument("--dup", type=float, help="per-message duplication probability")
    network.add_argument("--max-delay", type=int, help="message delays are in [1, this] ticks")
    parser.add_argument(
        "--history", metavar="DIR", help="write each seed's history to DIR/seed-N.jsonl"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes (default 1; results are the same)"
    )
    parser.add_argument(
        "--trace", action="store_true", help="print every event of each run (use with --seeds 1)"
    )


def bug_list() -> str:
    lines = ["Multi-Paxos bugs (pypaxos.multi.bugs):"]
    lines += [f"  {bug.value:26} {bug.description}" for bug in sorted(LogBug)]
    lines.append("KV bugs (pypaxos.kv):")
    if list(KvBug):
        lines += [f"  {bug.value:26} {bug.description}" for bug in sorted(KvBug)]
    else:
        lines.append("  (none planted in pypaxos.kv yet)")
    return "\n".join(lines)


def _usage(text: str) -> int:
    print(f"pypaxos sim kv: error: {text}", file=sys.stderr)
    return 2


def settings_from(args: argparse.Namespace) -> KVSettings:
    """The run settings, or ``ValueError`` with what is wrong with the arguments."""
    bugs = parse_bugs(args.bug, LogBug, KvBug)  # UnknownBug is a ValueError
    if args.seeds < 1 or args.start < 0 or args.jobs < 1:
        raise ValueError("--seeds and --jobs must be at least 1, --start at least 0")
    given = {
        name: value
        for name, value in (
            ("nodes", args.nodes),
            ("thrifty", args.thrifty),
            ("pre_vote", args.pre_vote),
            ("reads", args.reads),
            ("follower_reads", args.follower_reads),
            ("collections", args.collections),
            ("scripts", args.scripts),
            ("publish", args.publish),
            ("drop", args.drop),
            ("dup", args.dup),
            ("delay_max_ticks", args.max_delay),
        )
        if value is not None
    }
    return replace(
        KVSettings(clients=args.clients, ops=args.ops, bugs=bugs),
        apply_max_commands=args.apply_max_commands,
        log_memory_bytes_max=args.log_memory_bytes_max,
        thrifty_reads=args.thrifty_reads,
        swarm=args.swarm,
        pinned=frozenset(given) if args.swarm else frozenset(),
        **given,
    )


def run(args: argparse.Namespace) -> int:
    if "list" in args.bug:
        print(bug_list())
        return 0
    try:
        settings = settings_from(args)
    except ValueError as error:
        return _usage(str(error))
    if args.history:
        try:
            os.makedirs(args.history, exist_ok=True)
        except OSError as error:
            return _usage(f"cannot create {args.history}: {error.strerror or error}")
    seeds = range(args.start, args.start + args.seeds)
    print(_header(settings, args))
    started = time.perf_counter()
    results: list[KVResult] = []
    for result in run_seeds(settings, seeds, jobs=args.jobs, trace=args.trace):
        results.append(result)
        if args.trace:
            print("\n".join(result.trace))
        if args.history:
            path = os.path.join(args.history, f"seed-{result.seed}.jsonl")
            with open(path, "w", encoding="utf-8") as stream:
                stream.write("\n".join(result.history) + "\n")
        if result.violations or result.undecided or args.seeds == 1:
            print(_report(result))
    wall_s = time.perf_counter() - started
    print("\n".join(summary_lines(results, wall_s)))
    return 1 if any(r.violations for r in results) else 0


def _header(settings: KVSettings, args: argparse.Namespace) -> str:
    command = settings.replay_command(args.start).split("  # ")[0]
    command = command.replace("--seeds 1 ", f"--seeds {args.seeds} ")
    if settings.swarm:
        return (
            f"# {command}\n"
            f"# swarm: each seed draws its own cluster size and fault mix (sim.kv.KVSwarm); "
            f"{settings.keys} keys; nodes tick every {settings.tick_interval_ticks} ticks\n"
            f"# liveness bound: per seed, derived from the election timeout and the seed's "
            f"delays (see sim.kv.liveness_bound_ticks)"
        )
    bound = liveness_bound_ticks(settings)
    return (
        f"# {command}\n"
        f"# {settings.keys} keys; network: drop {settings.drop}, dup {settings.dup}, delay "
        f"{settings.delay_min_ticks}..{settings.delay_max_ticks} ticks; nodes tick every "
        f"{settings.tick_interval_ticks} ticks\n"
        f"# liveness bound: after the heal an operation invoked after it completes within "
        f"{bound} ticks (derived from the election timeout; see sim.kv.liveness_bound_ticks)"
    )


def _report(result: KVResult) -> str:
    lines = [result.outcome_line()]
    if result.violations or result.undecided:
        if result.settings.swarm:
            lines.append(f"  mix: {describe_mix(result.mix)}")
        lines.append(f"  replay: {result.settings.replay_command(result.seed)}")
    return "\n".join(lines)


def describe_mix(mix: KVSettings) -> str:
    """A seed's drawn settings, one line: cluster, network, and each nemesis fault's chance."""
    n = mix.nemesis
    faults = (
        ("crash", n.crash_prob),
        ("leader-crash", n.leader_crash_prob),
        ("promise-crash", n.promise_crash_prob),
        ("partition", n.partition_prob),
        ("isolate-leader", n.isolate_leader_prob),
        ("blip-leader", n.blip_leader_prob),
        ("stall-leader", n.stall_leader_prob),
        ("cut-leader", n.cut_leader_prob),
    )
    chances = ", ".join(f"{name} {prob}" for name, prob in faults if prob) or "no faults"
    return (
        f"{mix.nodes} nodes, {'thrifty' if mix.thrifty else 'not thrifty'}, "
        f"{'pre-vote' if mix.pre_vote else 'no pre-vote'}, reads: {mix.reads}"
        f"{' (followers too)' if mix.follower_reads and mix.reads != 'log' else ''}"
        f"{', collections' if mix.collections else ''}"
        f"{', scripts' if mix.scripts and mix.collections else ''}"
        f"{', publish' if mix.publish else ''}; drop {mix.drop}, "
        f"dup {mix.dup}, delay {mix.delay_min_ticks}..{mix.delay_max_ticks} ticks, stragglers "
        f"{n.straggle_prob}; every {n.step_ticks} ticks: {chances}; downtime "
        f"{n.restart_ticks[0]}..{n.restart_ticks[1]} ticks"
    )


def summary_lines(results: Sequence[KVResult], wall_s: float) -> list[str]:
    bad = [r for r in results if r.violations]
    undecided = [r for r in results if r.undecided]
    invoked = sum(r.invoked for r in results)
    served = [r.served_after_ticks for r in results if r.served_after_ticks is not None]
    leaders = [r.leader_changes for r in results]
    lines = [
        f"seeds: {len(results)}, violations: {len(bad)}"
        + (f" (first: seed {bad[0].seed})" if bad else "")
        + (f", lincheck undecided: {len(undecided)}" if undecided else ""),
        f"operations: {invoked} invoked, {sum(r.ok for r in results)} ok, "
        f"{sum(r.failed for r in results)} fail, {sum(r.info for r in results)} info",
        f"simulated ops/s: {invoked / wall_s:.0f} ({len(results) / wall_s:.2f} seeds/s, "
        f"{wall_s:.1f} s wall)",
        f"leader changes seen: {sum(leaders)} (max {max(leaders, default=0)} in one seed); "
        f"crashes: {sum(r.crashes for r in results)} "
        f"({sum(r.leader_crashes for r in results)} leaders mid-batch); "
        f"partitions: {sum(r.partitions for r in results)}",
        f"reads answered on the read-index path: {sum(r.read_index_reads for r in results)} "
        f"(in {sum(r.mix.reads != 'log' for r in results)} seeds), by followers: "
        f"{sum(r.follower_reads for r in results)}, under a lease: "
        f"{sum(r.lease_reads for r in results)} (in {sum(r.mix.reads == 'lease' for r in results)}"
        " seeds)",
    ]
    if served and results:
        lines.append(
            f"served again after the heal within {max(served)} ticks at worst "
            f"(mean {sum(served) / len(served):.1f}; bound {_bounds(results)})"
        )
    return lines


def _bounds(results: Sequence[KVResult]) -> str:
    low, high = min(r.bound_ticks for r in results), max(r.bound_ticks for r in results)
    return str(low) if low == high else f"{low}..{high} by seed"
