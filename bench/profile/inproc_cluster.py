"""CPU per one-client GET through a whole cluster in one process: the Python work of a read's path.

Three ``NodeApp`` s (fsync never, in a temporary directory) run in this process's one event loop
and talk over real loopback sockets; one client connection sends ``GET`` s one at a time to the
leader, each after the last answer.  Every hop a read takes in a real cluster is taken (the
client port, the router, the driver's prompt steps, the confirmation round's heartbeats and
acknowledgements, the reply), but no process waits to be scheduled: the figure is
``time.process_time`` per read over ``--requests`` reads (and its kernel part, from
``os.times``), median of ``--repeats``, which moves
far less with the machine's other load than a latency does.  The difference between
``--reads read-index`` and ``--reads lease`` is the cost of the confirmation round, on every
node it touches.  The leader's idle spin is off (it would only poll the same loop).

    .venv/bin/python bench/profile/inproc_cluster.py [--reads read-index|lease] [--nodes 3]
        [--requests 3000] [--repeats 5] [--tick-ms 10] [--thrifty-reads] [--cprofile] [--top 40]
        [--follower] [--pipeline 1]

``--follower`` reads from a follower with ``follower_reads = true``; ``--pipeline N`` sends N
``GET`` s at once and reads their N answers (the figures are per ``GET``).

Instructions per read (independent of the machine's load): run it under
``valgrind --tool=callgrind --instr-atstart=no`` with ``--callgrind --tick-ms 100 --repeats 1``
(counting only the reads, with few ticks among them) at two ``--requests`` counts, and divide
the difference of the totals by the difference of the counts.

Run another tree's code with ``PYTHONPATH=TREE/src`` for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config
from pypaxos.transport import preferred_loop_factory

SET = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def config_text(
    nodes: int, reads: str, tick_ms: int, thrifty_reads: bool = False, follower: bool = False
) -> str:
    ports = free_ports(2 * nodes)
    text = (
        'cluster_id = "inproc"\ndata_dir = "data"\nfsync = "never"\n'
        f'tick_ms = {tick_ms}\nreads = "{reads}"\n'
    )
    if thrifty_reads:  # only when asked: a tree without the key refuses it
        text += "thrifty_reads = true\n"
    if follower:
        text += "follower_reads = true\n"
    if tick_ms > 10:  # few ticks and heartbeats per read when slowed down (callgrind)
        text += (
            "[timeouts]\nheartbeat_ticks = 30\nelection_timeout_min_ticks = 40\n"
            "election_timeout_max_ticks = 50\nleader_stickiness_ticks = 35\n"
            "lease_ticks = 35\nstep_down_ticks = 100\n"
        )
    for i in range(nodes):
        text += (
            f'[[members]]\nid = {i + 1}\npeer = "127.0.0.1:{ports[2 * i]}"\n'
            f'client = "127.0.0.1:{ports[2 * i + 1]}"\n'
        )
    return text


def callgrind_instrument(on: bool) -> None:
    """Turn callgrind's counting on or off in this process (started with
    ``--instr-atstart=no``); the call itself is counted too, the same in every run."""
    state = "on" if on else "off"
    subprocess.run(["callgrind_control", f"--instr={state}", str(os.getpid())], check=False)


async def measure(
    args: argparse.Namespace,
) -> tuple[list[float], list[float], cProfile.Profile | None]:
    with tempfile.TemporaryDirectory(prefix="pypaxos-inproc-cluster-") as directory:
        path = Path(directory) / "cluster.toml"
        path.write_text(
            config_text(args.nodes, args.reads, args.tick_ms, args.thrifty_reads, args.follower)
        )
        config = load_config(path)
        apps = [NodeApp(config, member.id) for member in config.members]
        for app in apps:
            await app.start()
        writer: asyncio.StreamWriter | None = None
        try:
            while not any(app.is_leader for app in apps):
                await asyncio.sleep(0.01)
            for app in apps:
                assert app.driver is not None
                app.driver.idle_spin_s = 0.0
            leader = next(app for app in apps if app.is_leader)
            target = next(app for app in apps if not app.is_leader) if args.follower else leader
            port = int(target.member.client.rpartition(":")[2])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            writer.write(SET)
            await reader.readuntil(b"\r\n")
            await asyncio.sleep(0.3)  # the lease (if any) is held by now
            results: list[float] = []
            system: list[float] = []
            profile = cProfile.Profile(time.perf_counter, builtins=False) if args.cprofile else None
            if args.callgrind:  # count the reads only, not the start-up or the election
                callgrind_instrument(True)
            for repeat in range(args.repeats):
                if profile is not None and repeat == args.repeats - 1:
                    profile.enable()
                started = time.process_time()
                system_started = os.times().system
                batch = GET * args.pipeline
                for _ in range(args.requests):
                    writer.write(batch)
                    for _ in range(args.pipeline):
                        await reader.readuntil(b"\r\n")  # $3
                        await reader.readuntil(b"\r\n")  # abc
                reads = args.requests * args.pipeline
                results.append(1e6 * (time.process_time() - started) / reads)
                system.append(1e6 * (os.times().system - system_started) / reads)
            if args.callgrind:
                callgrind_instrument(False)
            if profile is not None:
                profile.disable()
            return results, system, profile
        finally:
            if writer is not None:
                writer.close()
            for app in apps:
                await app.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", default="read-index", choices=("read-index", "lease", "log"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tick-ms",
        type=int,
        default=10,
        help="above 10: elections in a few ticks, so that few ticks run per read when the "
        "process is slowed down (callgrind)",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under valgrind --tool=callgrind --instr-atstart=no: count the measured reads only",
    )
    parser.add_argument(
        "--thrifty-reads",
        action="store_true",
        help="thrifty_reads = true: a read's round to the peers a quorum needs only",
    )
    parser.add_argument(
        "--follower",
        action="store_true",
        help="follower_reads = true, and the client reads from a follower",
    )
    parser.add_argument(
        "--pipeline",
        type=int,
        default=1,
        help="GETs sent at once, then all their answers read (figures are per GET)",
    )
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=preferred_loop_factory()) as runner:
        results, system, profile = runner.run(measure(args))
    print(
        f"{args.reads} nodes={args.nodes}: CPU per one-client GET, median "
        f"{statistics.median(results):.1f} us ({', '.join(f'{r:.1f}' for r in results)}), "
        f"of which in the kernel {statistics.median(system):.1f} us"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
