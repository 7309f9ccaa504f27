"""A user's replicated class under the deterministic simulator, with faults, then judged.

``run_check(factory, workload, seed)`` builds ``settings.nodes`` ``multi.Node`` s, each over an
``ObjectMachine`` of a fresh object from ``factory`` (the simulator's ``NodeActor`` with that
machine), and ``settings.clients`` client actors that call methods drawn by ``workload`` (one
at a time each, retrying with the same ``(client_id, seq)``; reads of unmarked methods take the
read-index path, ``Node.read``).  The KV simulation's nemesis (``sim.kv_faults``) crashes nodes
(the leader too, mid-batch), restarts them from their disks, partitions and isolates the
leader, over a network that drops, duplicates and reorders; snapshots are taken every few slots
so restarts and catch-up go through ``snapshot``/``restore``.  After ``HEAL_FRACTION`` of the
calls no more faults happen; the run ends when every client is done and every node has applied
the same prefix.

Judged (``CheckReport.violations``):

* **same state everywhere**: every node applied the same value in every slot, and at the end
  every node holds a byte-identical snapshot at the same applied index;
* **linearizable**: the calls and their results, with the user's class as the sequential model
  (``testing.linearizable``);
* **independent of the process**: the decided log is applied again in fresh interpreters with
  two different hash seeds (``testing.replay``), and every result and the final state must be
  the same as here: this is what finds an iteration over a set of strings, ``hash()``, a clock
  read or a random draw that happened to agree inside one process;
* **serves**: the run finishes within a bound after the heal.

One ``random.Random(seed)`` drives the whole run, so a seed replays it exactly
(``CheckReport.replay``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pypaxos.core.effects import CancelTimer, Send, SetTimer
from pypaxos.multi import (
    Applied,
    Batch,
    MultiConfig,
    Reply,
    SnapshotChunk,
    TakeSnapshot,
    capture,
)
from pypaxos.objects import (
    Call,
    ObjectMachine,
    SessionExpired,
    Stale,
    decode_call,
    decode_result,
    encode_call,
)
from pypaxos.objects.bugs import ObjectBug
from pypaxos.sim.kv_client import (
    ClientBusy,
    ClientRedirect,
    ClientReply,
    ClientRequest,
    is_read_request,
    read_request_id,
    request_id,
)
from pypaxos.sim.kv_faults import NO_FAULTS, Nemesis, NemesisSettings, StragglerNetwork
from pypaxos.sim.kv_node import LeaderStats, NodeActor, RecordLogDisk
from pypaxos.sim.network import NetworkSettings
from pypaxos.sim.replica_world import CLIENT_ID_BASE, ReplicaWorld
from pypaxos.testing.linearizable import LinearizabilityResult, Op, check_linearizable

HEAL_FRACTION = 0.75
FINISH_TICKS = 6_000  # after the heal, everything must be done this fast
BACKOFF_TICKS = 4  # a client waits this long after Busy or a redirect that names nobody

Factory = Callable[[], object]


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call a workload asks for: ``target.method(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: str = ""


Workload = Callable[[random.Random], Invocation]


@dataclass(frozen=True)
class CheckSettings:
    """What, with a seed, determines a run."""

    nodes: int = 3
    clients: int = 3
    calls: int = 60
    faults: bool = True
    drop: float = 0.05
    dup: float = 0.05
    delay_min_ticks: int = 1
    delay_max_ticks: int = 4
    tick_interval_ticks: int = 2
    snapshot_every_slots: int = 6  # small: restarts and catch-up go through snapshots
    timeout_ticks: int = 40
    attempts_max: int = 12
    think_max_ticks: int = 4
    replay_hash_seeds: tuple[int, ...] = (1, 2)  # () skips the replay in fresh interpreters
    bugs: frozenset[ObjectBug] = frozenset()  # planted in the nodes' machines (not the model)

    def config(self) -> MultiConfig:
        return MultiConfig(
            node_ids=tuple(range(1, self.nodes + 1)),
            snapshot_every_slots=self.snapshot_every_slots,
            log_window_slots=8 + self.snapshot_every_slots + 64,
        )

    def nemesis(self) -> NemesisSettings:
        return NemesisSettings() if self.faults else NO_FAULTS


@dataclass(frozen=True)
class CheckReport:
    """The verdict on one seed, with what is needed to replay it."""

    seed: int
    violations: tuple[str, ...]
    calls: int
    ok: int
    unknown: int
    failed: int
    leader_changes: int
    crashes: int
    partitions: int
    applied_slots: int
    snapshots_sent: int
    linearizability: str
    search_configurations: int  # what the linearizability search visited (0: not run)
    history: tuple[str, ...]
    replay: str

    @property
    def passed(self) -> bool:
        return not self.violations

    def summary(self, replay: bool = True) -> str:
        """One line of counts and the verdict, then each violation and (``replay``) how to
        replay the seed."""
        verdict = "OK" if self.passed else "VIOLATION"
        text = (
            f"seed {self.seed}: {verdict}: {self.calls} calls ({self.ok} ok, {self.unknown} "
            f"unknown, {self.failed} not applied), {self.applied_slots} slots, "
            f"{self.leader_changes} leader changes, {self.crashes} crashes, "
            f"{self.partitions} partitions, {self.snapshots_sent} snapshots sent; "
            f"{self.linearizability}"
        )
        for violation in self.violations:
            text += f"\n  - {violation}"
        if self.violations and replay:
            text += f"\n  replay: {self.replay}"
        return text


def machine_of(factory: Factory, bugs: frozenset[ObjectBug] = frozenset()) -> ObjectMachine:
    """The machine around what ``factory`` builds (a machine already, or one object)."""
    built = factory()
    if not isinstance(built, ObjectMachine):
        return ObjectMachine(built, bugs=bugs)
    built.bugs = bugs
    return built


class CallClient:
    """A client actor: one call at a time, retried under the same ``(client_id, seq)``."""

    __slots__ = (
        "attempts",
        "call",
        "client_id",
        "command",
        "id",
        "node_ids",
        "on_finish",
        "process",
        "read",
        "reads",
        "rid",
        "seq",
        "settings",
        "target",
        "world",
    )

    def __init__(self, actor_id: int, world: ObjectWorld) -> None:
        self.id = actor_id
        self.world = world
        self.process = actor_id - CLIENT_ID_BASE
        self.client_id = self.process
        self.settings = world.settings
        self.node_ids = world.config.node_ids
        self.seq = 0
        self.reads = 0
        self.call: Call | None = None
        self.read = False
        self.command = b""
        self.rid = 0
        self.attempts = 0
        self.target = self.node_ids[int(world.rng.random() * len(self.node_ids))]
        self.on_finish: Callable[[bytes | None], None] | None = None

    def start(self) -> list[object]:
        return [self._think()] if self.world.workload is not None else []

    def on_timer(self, name: str) -> list[object]:
        if name == "think":
            return self._next()
        if name == "retry":
            return self._send()
        self.target = self._next_node()  # "timeout"
        return self._send()

    def handle(self, msg: object) -> list[object]:
        if not isinstance(msg, ClientReply | ClientRedirect | ClientBusy):
            raise TypeError(f"client {self.id} got {msg!r}")
        if self.call is None or msg.rid != self.rid:
            return []  # a late copy
        if isinstance(msg, ClientReply):
            return self._complete(msg.result)
        if isinstance(msg, ClientRedirect) and msg.leader is not None and msg.leader != msg.node:
            self.target = msg.leader
            return self._send()
        if isinstance(msg, ClientRedirect):
            self.target = self._next_node()
        return [SetTimer("retry", BACKOFF_TICKS), CancelTimer("timeout")]

    def begin(self, invocation: Invocation, read: bool) -> list[object]:
        """Invoke ``invocation`` now (a command takes the next ``seq``)."""
        self.read = read
        if read:
            self.reads += 1
            seq, self.rid = 0, read_request_id(self.client_id, self.reads)
        else:
            self.seq += 1
            seq, self.rid = self.seq, request_id(self.client_id, self.seq)
        self.command = encode_call(
            self.client_id,
            seq,
            invocation.method,
            invocation.args,
            invocation.kwargs,
            target=invocation.target,
            now_ms=self.world.now,
        )
        self.call = decode_call(self.command)
        self.attempts = 0
        self.world.invoked(self)
        return self._send()

    def _next(self) -> list[object]:
        invocation = self.world.next_invocation()
        if invocation is None:
            self.world.client_done(self.id)
            return []
        return self.begin(invocation, self.world.is_read(invocation))

    def _send(self) -> list[object]:
        if self.attempts >= self.settings.attempts_max:
            return self._finish(None)
        self.attempts += 1
        request = ClientRequest(self.rid, self.command, self.read)
        return [Send(self.target, request), SetTimer("timeout", self.settings.timeout_ticks)]

    def _complete(self, data: bytes) -> list[object]:
        result = decode_result(data)
        if isinstance(result, Stale):
            self.world.violate(f"client {self.process}: a retry was answered {result!r}")
        if isinstance(result, SessionExpired):
            self.client_id += self.world.session_stride  # a new session: a fresh client id
            self.seq = 0
        return self._finish(data)

    def _finish(self, data: bytes | None) -> list[object]:
        self.world.completed(self, data)
        self.call = None
        if self.on_finish is not None:
            self.on_finish(data)
            return [CancelTimer("timeout"), CancelTimer("retry")]
        return [CancelTimer("timeout"), CancelTimer("retry"), self._think()]

    def _next_node(self) -> int:
        ids = self.node_ids
        return ids[(ids.index(self.target) + 1) % len(ids)]

    def _think(self) -> SetTimer:
        return SetTimer("think", 1 + int(self.world.rng.random() * self.settings.think_max_ticks))


class ObjectWorld(ReplicaWorld):
    """One simulated cluster of replicated objects, its clients, faults and ghost state."""

    def __init__(
        self,
        factory: Factory,
        workload: Workload | None,
        seed: int,
        settings: CheckSettings,
        clients: int | None = None,
    ) -> None:
        rng = random.Random(seed)
        self.object_factory = factory
        self.workload = workload
        self.seed = seed
        self.settings = settings
        self.config = settings.config()
        self.node_list = self.config.node_ids
        client_count = settings.clients if clients is None else clients
        self.client_ids = tuple(CLIENT_ID_BASE + i for i in range(1, client_count + 1))
        self.session_stride = client_count + 1  # client actor i uses ids i, i + stride, ...
        self.stats = LeaderStats()
        self.violations: list[str] = []
        self.chosen: dict[int, Batch] = {}
        self.ops: list[Op] = []
        self.open: dict[int, tuple[int, Call, bool]] = {}  # process -> (invoked, call, read)
        self.failed = 0
        self.calls_left = settings.calls if workload is not None else 0
        self.done: set[int] = set()
        self.healed = False
        self.heal_time = -1
        self.snapshots_sent = 0
        self.read_points: dict[int, int] = {}  # read request id -> commands applied before it
        self.probe = machine_of(factory)  # answers is_read for the workload's calls
        network = StragglerNetwork(
            rng,
            NetworkSettings(
                settings.drop, settings.dup, settings.delay_min_ticks, settings.delay_max_ticks
            ),
            settings.nemesis().straggle_prob,
            settings.nemesis().straggle_ticks,
        )
        self.record_disk = RecordLogDisk()
        super().__init__(
            (*self.node_list, *self.client_ids), self._build, rng, network, self.record_disk
        )
        self.nemesis = Nemesis(
            self,
            settings.nemesis(),
            self.node_list,
            self.client_ids,
            self.current_leader,
            lambda node: bool(self.node_actor(node).node.leader.inflight),
        )

    # -- actors ----------------------------------------------------------------------------

    def _build(
        self, actor: int, durable: object | None, rng: random.Random
    ) -> NodeActor | CallClient:
        if actor < CLIENT_ID_BASE:
            records = durable if isinstance(durable, tuple) else None
            factory = partial(machine_of, self.object_factory, self.settings.bugs)
            return NodeActor(actor, self.config, rng, records, self.stats, factory)
        return CallClient(actor, self)

    def client(self, actor: int) -> CallClient:
        client = self.actor(actor)
        assert isinstance(client, CallClient)
        return client

    def machine(self, node: int) -> ObjectMachine:
        machine = self.node_actor(node).machine
        assert isinstance(machine, ObjectMachine)
        return machine

    # -- the clients' side -----------------------------------------------------------------

    def is_read(self, invocation: Invocation) -> bool:
        """Whether the call takes the read path (a call naming nothing goes to the log, to be
        refused there and reported as the workload's mistake)."""
        if invocation.target not in self.probe.targets():
            return False
        spec = self.probe.methods(invocation.target).methods.get(invocation.method)
        return spec is not None and not spec.is_command

    def next_invocation(self) -> Invocation | None:
        if self.calls_left <= 0 or self.workload is None:
            return None
        self.calls_left -= 1
        return self.workload(self.rng)

    def invoked(self, client: CallClient) -> None:
        assert client.call is not None
        self.open[client.process] = (self.now, client.call, client.read)
        invoked = len(self.ops) + len(self.open) + self.failed
        if not self.healed and invoked >= self.settings.calls * HEAL_FRACTION:
            self._heal()

    def completed(self, client: CallClient, data: bytes | None) -> None:
        invoked, call, read = self.open.pop(client.process)
        if data is not None and isinstance(decode_result(data), SessionExpired):
            self.failed += 1  # not applied: not an operation of the history
            return
        returned = None if data is None else self.now
        point = self.read_points.get(client.rid) if read else None
        rank = None if point is None else point - 0.5
        self.ops.append(Op(client.process, call, read, invoked, returned, data, rank))

    def client_done(self, actor: int) -> None:
        self.done.add(actor)

    # -- running ---------------------------------------------------------------------------

    def begin(self) -> None:
        self.start()
        self.at(self.settings.tick_interval_ticks, self._tick_nodes)
        self.nemesis.begin()

    def _tick_nodes(self) -> None:
        for node in self.node_list:
            if self.is_up(node) and node not in self.nemesis.stopped_clocks:
                self.apply(node, self.node_actor(node).tick())
        self.at(self.now + self.settings.tick_interval_ticks, self._tick_nodes)

    def _heal(self) -> None:
        self.healed = True
        self.heal_time = self.now
        self.nemesis.heal()

    def run_until(self, done: Callable[[], bool], deadline: int) -> bool:
        """Step until ``done()`` (True) or virtual time passes ``deadline`` (False)."""
        while not self.violations:
            if done():
                return True
            when = self.next_time()
            if when is None or when > deadline:
                return False
            self.step()
        return False

    def converged(self) -> bool:
        if not all(self.is_up(n) for n in self.node_list):
            return False
        indexes = {self.node_actor(n).node.applied_index for n in self.node_list}
        return len(indexes) == 1 and max(indexes) >= len(self.chosen)

    # -- effects and ghost state -----------------------------------------------------------

    def on_effect(self, node: int, effect: object) -> None:
        if type(effect) is Applied:
            first = self.chosen.setdefault(effect.slot, effect.value)
            if first != effect.value:
                self.violate(f"n{node} applied a different value in slot {effect.slot}")
        elif type(effect) is Reply:
            if is_read_request(effect.request_id):  # the point of the log it read from
                self.read_points.setdefault(effect.request_id, self.machine(node).applied)
            reply = ClientReply(node, effect.request_id, effect.result)
            self.apply(node, [Send(self._client_of(effect.request_id), reply)])
        elif type(effect) is TakeSnapshot:  # written at once: the KV simulator delays it
            actor = self.node_actor(node)
            record = capture(actor.node)
            self.record_disk.write(node, record, sync=True)
            self.apply(node, actor.node.snapshot_saved(record.slot))
        else:  # answers to clients, a leader's own vote, compaction, snapshot transfer
            super().on_effect(node, effect)

    def on_send(self, src: int, dst: int, msg: object) -> None:
        super().on_send(src, dst, msg)
        if type(msg) is SnapshotChunk and msg.seq == 0:  # a transfer begins (or restarts)
            self.snapshots_sent += 1

    def violate(self, text: str) -> None:
        self.violations.append(text)

    # -- the end ---------------------------------------------------------------------------

    def decided_commands(self) -> list[bytes]:
        """Every command of the decided log, in slot order (what each replica applied)."""
        return [entry.command for slot in sorted(self.chosen) for entry in self.chosen[slot]]

    def check_replicas(self) -> None:
        snapshots = {n: self.machine(n).snapshot() for n in self.node_list}
        first = snapshots[self.node_list[0]]
        differ = [f"n{n}" for n, data in snapshots.items() if data != first]
        if differ:
            self.violate(
                f"replicas disagree: {', '.join(differ)} hold a different state from "
                f"n{self.node_list[0]} at the same applied index"
            )

    def check_linearizable(self) -> LinearizabilityResult:
        """The history against the user's class; each command ranked by where the decided
        log holds it (the search tries that order first: a hint, not an assumption)."""
        positions: dict[tuple[int, int], int] = {}
        replica = machine_of(self.object_factory)  # the machine's own rules say what ran
        for position, command in enumerate(self.decided_commands()):
            outcome = decode_result(replica.apply(command))
            if isinstance(outcome, Stale | SessionExpired):
                continue  # refused: it did not run here
            try:
                call = decode_call(command)
            except ValueError:
                continue
            positions.setdefault((call.client_id, call.seq), position)  # later: from memory
        history = [
            op if op.read else replace(op, rank=positions.get((op.call.client_id, op.call.seq)))
            for op in sorted(self.ops, key=lambda op: (op.invoke_tick, op.process))
        ]
        open_ops = [
            Op(process, call, read, invoked, None, None, positions.get((call.client_id, call.seq)))
            for process, (invoked, call, read) in sorted(self.open.items())
        ]
        result = check_linearizable(history + open_ops, partial(machine_of, self.object_factory))
        if result.verdict == "not linearizable":
            self.violate(result.summary())
        return result


def describe_history(ops: list[Op]) -> tuple[str, ...]:
    lines = []
    for op in sorted(ops, key=lambda o: (o.invoke_tick, o.process)):
        end = "?" if op.return_tick is None else str(op.return_tick)
        lines.append(f"t={op.invoke_tick}..{end} {op.describe()}")
    return tuple(lines)
