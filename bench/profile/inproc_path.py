"""The client path's CPU per command in one process, without sockets: an A/B tool for its code.

A one-node cluster (``NodeApp``, fsync never, in a temporary directory) serves ``--clients``
connections whose transports are in-memory (``RespConnection`` over a collecting transport, as
the server's own tests drive it).  Each round feeds every connection ``--pipeline`` pipelined
commands (``GET`` or ``SET`` of 128 bytes over 10,000 keys, filled first), then runs the event
loop until every reply is written.  The figure is ``time.process_time`` per command over
``--rounds`` rounds, best and median of ``--repeats``: parse, plan, route, driver, node,
state machine, reply encoding and the write call, with the loop's socket work and the
peers left out, so it moves much less with the machine's other load than a cluster run does.

    .venv/bin/python bench/profile/inproc_path.py [--reads lease|read-index|log]
        [--test get|set] [--clients 50] [--pipeline 16] [--rounds 400] [--repeats 5]
        [--cprofile] [--tick-ms 10] [--spin-off]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config
from pypaxos.runtime.server import RespConnection
from pypaxos.transport import preferred_loop_factory
from pypaxos.transport.resp import encode_command

KEYS = 10_000
VALUE = b"v" * 128


class Collecting:
    """An in-memory transport: counts what the server writes."""

    def __init__(self) -> None:
        self.written_bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.written_bytes += len(data)
        self.writes += 1

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def config_text(port_base: int, reads: str, tick_ms: int = 10) -> str:
    return (
        f'cluster_id = "inproc"\ndata_dir = "data"\nfsync = "never"\ntick_ms = {tick_ms}\n'
        f'reads = "{reads}"\n[[members]]\nid = 1\n'
        f'peer = "127.0.0.1:{port_base}"\nclient = "127.0.0.1:{port_base + 1}"\n'
    )


def free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free on 127.0.0.1 now."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return int(port)


async def settle(connections: list[RespConnection]) -> None:
    while any(c.pending_replies or c.flush_scheduled for c in connections):
        await asyncio.sleep(0)


async def measure(args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="pypaxos-inproc-") as directory:
        path = Path(directory) / "cluster.toml"
        path.write_text(config_text(free_port_pair(), args.reads, args.tick_ms))
        config = load_config(path)
        app = NodeApp(config, 1)
        await app.start()
        try:
            while not app.is_leader:
                await asyncio.sleep(0.01)
            if args.spin_off:
                assert app.driver is not None
                app.driver.idle_spin_s = 0.0
            assert app.server is not None
            connections = []
            transports = []
            for _ in range(args.clients):
                connection = RespConnection(app.server)
                transport = Collecting()
                connection.connection_made(transport)  # type: ignore[arg-type]
                connections.append(connection)
                transports.append(transport)
            fill = [encode_command(b"SET", b"key:%012d" % i, VALUE) for i in range(KEYS)]
            for start in range(0, KEYS, 500):
                connections[0].data_received(b"".join(fill[start : start + 500]))
                await settle(connections)
            await asyncio.sleep(0.2)  # the lease (if any) is held by now
            counter = 0

            def batch() -> bytes:
                nonlocal counter
                parts = []
                for _ in range(args.pipeline):
                    key = b"key:%012d" % (counter % KEYS)
                    counter += 7919
                    if args.test == "get":
                        parts.append(encode_command(b"GET", key))
                    else:
                        parts.append(encode_command(b"SET", key, VALUE))
                return b"".join(parts)

            # At most ten rounds of inputs, cycled: a run of N rounds and one of M then build
            # the same inputs, so the difference of their instruction counts is serving only.
            feeds = [[batch() for _ in connections] for _ in range(min(args.rounds, 10))]
            results = []
            profile = cProfile.Profile(time.process_time, builtins=False) if args.cprofile else None
            for _ in range(args.repeats):
                started = time.process_time()
                if profile is not None:
                    profile.enable()
                for round_index in range(args.rounds):
                    feed = feeds[round_index % len(feeds)]
                    for connection, data in zip(connections, feed, strict=True):
                        connection.data_received(data)
                    await settle(connections)
                if profile is not None:
                    profile.disable()
                spent = time.process_time() - started
                results.append(1e6 * spent / (args.rounds * args.clients * args.pipeline))
            if profile is not None:
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
            assert app.router is not None
            stats = app.router.stats
            lease, rounds = stats.reads_lease, stats.reads_read_index
            print(f"reads answered: {lease:,} under the lease, {rounds:,} after a round")
            return results
        finally:
            await app.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", default="lease", choices=("lease", "read-index", "log"))
    parser.add_argument("--test", default="get", choices=("get", "set"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    # Longer ticks keep the node's timers out of an instruction count under valgrind, where
    # a round lasts fifty times longer and would meet fifty times the ticks.
    parser.add_argument("--tick-ms", type=int, default=10)
    # ... and so does the leader's idle spin (it polls for as long as the round lasts).
    parser.add_argument("--spin-off", action="store_true")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=preferred_loop_factory()) as runner:
        results = runner.run(measure(args))
    print(
        f"{args.test} reads={args.reads} c={args.clients} P={args.pipeline}: "
        f"best {min(results):.2f} us/cmd, median {statistics.median(results):.2f} "
        f"({', '.join(f'{r:.2f}' for r in results)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
