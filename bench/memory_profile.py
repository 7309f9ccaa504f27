"""Where a node's memory goes under the large-data load, measured in-process.

Builds what a 3-node cluster holds after ``redis-benchmark -t set -r N -n 2N -d 128 -P 32
-c 32``, without sockets or disks: three ``multi.Node`` s with the runtime's limits
(``runtime.config.RUNTIME_LIMITS``), each on its own ``KVStateMachine``; every message is
encoded and decoded by the peer transport's codec (so each node holds its own copies, as in
separate processes); a snapshot is "saved" as soon as it is asked for (kept by the pump, as
the shell keeps it on disk; the forked child's write is not modelled).  Each of the 32
clients has one pipeline of 32 ``SET`` s outstanding, as one ``RequestBatch`` (what the
server proposes for a pipelining connection).  Then, for each node, the bytes each part holds
(``sys.getsizeof`` over the objects, each counted once, in the first part that reaches it)::

    .venv/bin/python bench/memory_profile.py [--keys 100000] [--requests 200000]
                                             [--log-retained-bytes-max N] [--tracemalloc]
    .venv/bin/python bench/memory_profile.py --imports

``--tracemalloc`` also prints the largest allocation sites (slower: every allocation traced).
After the parts, the process's resident size before and after ``malloc_trim`` (what the C heap
held freed but resident; ``runtime.heap`` trims a real node after each compaction).
``--imports`` prints instead what a node costs before it holds any data: the resident size of
a fresh interpreter after each group of what ``pypaxos node`` imports, in import order, then
of what it loads on first use only (a scrape of its metrics port, a script, ``--machine``).
"""

from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

from pypaxos.core.effects import Persist, Send
from pypaxos.kv import KVStateMachine, RequestBatch, Set, encode_request
from pypaxos.multi import (
    Busy,
    Message,
    MultiConfig,
    Node,
    PersistOwnVote,
    Redirect,
    Reply,
    Role,
    SendSnapshot,
    SnapshotRecord,
    TakeSnapshot,
    capture,
    chunk_messages,
)
from pypaxos.runtime.config import RUNTIME_LIMITS, RUNTIME_TIMEOUTS
from pypaxos.runtime.heap import HeapTrimmer
from pypaxos.transport.codec import Codec

CLIENTS = 32
PIPELINE = 32
VALUE_BYTES = 128


def deep_size(roots: Iterable[object], seen: set[int]) -> int:
    """Bytes of the objects reachable from ``roots`` (``sys.getsizeof``), skipping ``seen``
    ones and adding the new ones to it; classes, modules and functions are not followed."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | type(sys) | type(deep_size)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, bytes | str | int | float | bool) or obj is None:
            continue
        stack.extend(gc.get_referents(obj))
    return total


class Load:
    """The three nodes and the clients' pipelines."""

    def __init__(self, keys: int, config: MultiConfig, seed: int) -> None:
        self.keys = keys
        self.rng = random.Random(seed)
        self.codec: Codec[Message] = Codec(Message)
        self.nodes = {
            i: Node(i, config, random.Random(seed + i), KVStateMachine(state_digest=False))
            for i in config.node_ids
        }
        self.queue: list[tuple[int, bytes]] = []
        self.snapshots: dict[int, SnapshotRecord] = {}
        self.seq = dict.fromkeys(range(1, CLIENTS + 1), 0)
        self.outstanding: dict[int, int] = {}  # request id -> client
        self.next_request_id = 1
        self.sent_sets = 0
        self.clock_ms = 1_700_000_000_000

    def leader(self) -> Node | None:
        leaders = [n for n in self.nodes.values() if n.role is Role.LEADER]
        return leaders[0] if leaders else None

    def run(self, node: Node, effects: list[Any]) -> None:
        for effect in effects:
            if type(effect) is Send:
                self.queue.append((effect.to, self.codec.encode_frame(effect.msg)[5:]))
            elif type(effect) is PersistOwnVote:
                self.run(node, node.synced(effect.record.slot, effect.record.ballot))
            elif type(effect) is TakeSnapshot:
                self.snapshots[node.id] = capture(node)  # the shell's file, not the node's
                self.run(node, node.snapshot_saved(effect.slot))
            elif type(effect) is SendSnapshot:
                for msg in chunk_messages(node.id, effect, self.snapshots.get(node.id)):
                    self.queue.append((effect.to, self.codec.encode_frame(msg)[5:]))
            elif type(effect) is Reply:
                client = self.outstanding.pop(effect.request_id, None)
                if client is not None:
                    self.propose(client)
            elif type(effect) in (Redirect, Busy):
                client = self.outstanding.pop(effect.request_id, None)
                if client is not None:
                    self.seq[client] -= 1  # resend the same seq
                    self.propose(client)
            elif type(effect) is Persist:
                pass  # the pure node's records: durable at once here

    def propose(self, client: int, total: list[int] | None = None) -> None:
        if self.sent_sets >= self.requests:
            return
        leader = self.leader()
        if leader is None:
            return
        self.seq[client] += 1
        ops = tuple(
            Set(b"key:%012d" % self.rng.randrange(self.keys), b"x" * VALUE_BYTES)
            for _ in range(PIPELINE)
        )
        self.sent_sets += PIPELINE
        self.clock_ms += 1
        command = encode_request(RequestBatch(client, self.seq[client], ops, self.clock_ms))
        request_id = self.next_request_id
        self.next_request_id += 1
        self.outstanding[request_id] = client
        self.run(leader, leader.propose(request_id, command))

    def drive(self, requests: int) -> None:
        self.requests = requests
        for _ in range(200):  # elect
            for node in self.nodes.values():
                self.run(node, node.tick())
            self.deliver()
            if self.leader() is not None:
                break
        for client in range(1, CLIENTS + 1):
            self.propose(client)
        for _ in range(1_000_000):
            self.deliver()
            for node in self.nodes.values():
                self.run(node, node.tick())
            if not self.outstanding:
                if self.sent_sets >= requests and self.converged():
                    return
                for client in range(1, CLIENTS + 1):
                    self.propose(client)
        raise RuntimeError("the load did not finish")

    def converged(self) -> bool:
        return len({node.applied_index for node in self.nodes.values()}) == 1

    def deliver(self) -> bool:
        moved = False
        while self.queue:
            batch, self.queue = self.queue, []
            for to, payload in batch:
                node = self.nodes[to]
                self.run(node, node.handle(self.codec.decode_message(payload)))
                moved = True
        return moved


def breakdown(node: Node) -> list[tuple[str, int, str]]:
    """(part, bytes, what was counted) for one node, largest first."""
    machine = node.replica.machine
    assert isinstance(machine, KVStateMachine)
    seen: set[int] = set()
    parts = [
        ("store (keys and values)", [machine._data], f"{len(machine._data):,} keys"),
        ("deadlines", [machine._expires], f"{len(machine._expires):,}"),
        ("sessions", [machine._sessions], f"{machine.session_count:,}"),
        (
            "decided log kept (Replica.decided)",
            [node.replica.decided],
            f"{node.replica.retained_slots:,} slots, "
            f"{node.replica.retained_bytes / 2**20:.1f} MiB of commands",
        ),
        (
            "acceptor votes (beyond the decided log)",
            [node.acceptor.accepted],
            f"{len(node.acceptor.accepted):,} slots",
        ),
        ("leader in flight and queue", [node.leader], ""),
        ("the rest of the node", [node], ""),
    ]
    return [(name, deep_size(roots, seen), what) for name, roots, what in parts]


IMPORT_GROUPS = (
    ("the interpreter (python -c pass)", ()),
    ("asyncio (with ssl: libssl, libcrypto)", ("asyncio",)),
    ("msgspec", ("msgspec",)),
    ("uvloop", ("uvloop",)),
    ("pypaxos.core, multi", ("pypaxos.core", "pypaxos.multi")),
    ("pypaxos.kv", ("pypaxos.kv",)),
    ("pypaxos.storage, transport", ("pypaxos.storage", "pypaxos.transport")),
    ("pypaxos.runtime (app, server, commands)", ("pypaxos.runtime.app",)),
    ("pypaxos.cli.node (what the command adds)", ("pypaxos.cli.node",)),
    # Loaded on first use only: a scrape of the metrics port, a script, ``--machine``.
    ("first scrape: prometheus_client, http.server", ("pypaxos.runtime.metrics",
                                                      "prometheus_client")),
    ("first script: lupa (Lua 5.1), kv.scripts", ("pypaxos.kv.scripts",)),
    ("--machine: pypaxos.objects, objects_port", ("pypaxos.runtime.objects_port",)),
)  # fmt: skip

_IMPORT_PROBE = """
import importlib, sys
def rss_kib():
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS:'))
for group in sys.argv[1:]:
    for name in filter(None, group.split(',')):
        importlib.import_module(name)
    print(rss_kib(), len(sys.modules))
"""


def print_imports() -> None:
    """The resident size of a fresh interpreter as it imports what a node imports, by group."""
    groups = [",".join(modules) for _, modules in IMPORT_GROUPS]
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, *groups], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    previous = 0
    print(f"  {'group':<48} {'VmRSS KiB':>10} {'added':>8}  modules")
    for (name, _), line in zip(IMPORT_GROUPS, out, strict=False):
        rss_kib, modules = (int(field) for field in line.split())
        print(f"  {name:<48} {rss_kib:>10,} {rss_kib - previous:>+8,}  {modules}")
        previous = rss_kib


def resident_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=0, help="SETs (default: 2 x keys)")
    parser.add_argument("--log-retained-bytes-max", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--imports", action="store_true", help="what a node imports, and costs")
    args = parser.parse_args()
    if args.imports:
        print_imports()
        return 0
    limits = dict(RUNTIME_LIMITS)
    if args.log_retained_bytes_max is not None:
        limits["log_retained_bytes_max"] = args.log_retained_bytes_max
    timeouts = {k: v for k, v in RUNTIME_TIMEOUTS.items() if k not in ("lease_ticks",)}
    timeouts.pop("clock_drift_ppm", None)
    config = MultiConfig(node_ids=(1, 2, 3), thrifty=True, **timeouts, **limits)
    if args.tracemalloc:
        tracemalloc.start()
    load = Load(args.keys, config, args.seed)
    began = time.monotonic()
    load.drive(args.requests or 2 * args.keys)
    took_s = time.monotonic() - began
    gc.collect()
    leader = load.leader()
    print(
        f"{load.sent_sets:,} SETs over {args.keys:,} keys in {took_s:.0f} s "
        f"(snapshot_every_slots {config.snapshot_every_slots}, log_retained_bytes_max "
        f"{config.log_retained_bytes_max:,})"
    )
    for node in load.nodes.values():
        label = "leader" if node is leader else "follower"
        print(f"\nnode {node.id} ({label}), applied {node.applied_index:,} slots")
        total = 0
        machine = node.replica.machine
        assert isinstance(machine, KVStateMachine)
        keys = max(1, len(machine._data))
        for name, size, what in breakdown(node):
            total += size
            print(f"  {name:<42} {size / 2**20:8.1f} MiB {size / keys:7.0f} B/key  {what}")
        print(f"  {'total':<42} {total / 2**20:8.1f} MiB {total / keys:7.0f} B/key")
    heap = HeapTrimmer()
    if heap.available:
        before_kib = resident_kib()
        heap.request()
        heap.wait()
        print(
            f"\nthis process (three nodes): VmRSS {before_kib / 1024:.1f} MiB, "
            f"{resident_kib() / 1024:.1f} MiB after malloc_trim"
        )
    if args.tracemalloc:
        print("\nlargest allocation sites (all three nodes):")
        snap = tracemalloc.take_snapshot()
        for stat in snap.statistics("lineno")[:15]:
            frame = stat.traceback[0]
            print(
                f"  {stat.size / 2**20:8.1f} MiB {stat.count:>9,}  {frame.filename}:{frame.lineno}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
