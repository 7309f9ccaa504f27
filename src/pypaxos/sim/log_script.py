"""A tiny language for driving Multi-Paxos nodes by hand, one step at a time.

The log's golden interaction tests (tests/interaction/log/*.txt) are written in it, in the
shape of ``sim.script``: a command line starts with ``> `` and everything it causes is printed,
indented, below it.  The nodes are real ``multi.Node`` actors; no clock, no asyncio, one seeded
``random.Random`` per node lifetime.  The durability contract is honoured as ``sim.disk`` does
it: a ``Persist`` is an fsync before anything of its list; a ``PersistOwnVote`` waits in the
page cache until the next one, which a crash empties.  Output is deterministic (sends in order
of destination).

More (the commands): docs/testing.md, 'The log script language'.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any, assert_never

import msgspec

from pypaxos.core.bugs import UnknownBug, parse_bugs
from pypaxos.core.effects import Persist, Send
from pypaxos.multi import (
    NOOP,
    Accept,
    Accepted,
    AcceptRecord,
    Applied,
    Batch,
    Busy,
    CatchUp,
    CompactLog,
    Decided,
    Effect,
    Heartbeat,
    HeartbeatAck,
    LearnedRecord,
    LocalReply,
    LogBug,
    Message,
    MultiConfig,
    Nack,
    Node,
    PersistOwnVote,
    Prepare,
    PreVoteReply,
    PreVoteRequest,
    Promise,
    PromiseRecord,
    ReadIndexReply,
    ReadIndexRequest,
    Record,
    Redirect,
    Reply,
    SendSnapshot,
    SnapshotChunk,
    SnapshotRecord,
    SnapshotRequest,
    TakeSnapshot,
    WholeStateSnapshots,
    capture,
    chunk_messages,
)
from pypaxos.multi.membership import MembershipRefused
from pypaxos.sim.script import ScriptError

SCRIPT_CONFIG = MultiConfig(pre_vote=False)
"""What a script starts from: the classic election, a timer that fires sends ``Prepare`` at
once; ``config pre_vote=on`` asks the voters first (``multi.election``, "Pre-vote")."""

TICKS_UNTIL_MAX = 1000
"""``tick N until`` gives up (a ``ScriptError``) after this many quiet ticks."""

DELIVERIES_MAX = 10_000
"""``deliver all`` gives up after this many deliveries: the messages never stop."""


class ScriptMachine(WholeStateSnapshots):
    """The state machine under the log: it keeps every command; the result is its position.
    Its snapshot is one chunk (``multi.WholeStateSnapshots``)."""

    def __init__(self) -> None:
        self.commands: list[bytes] = []

    def apply(self, command: bytes) -> bytes:
        self.commands.append(command)
        return str(len(self.commands)).encode()

    def query(self, command: bytes) -> bytes:
        """A read: how many commands are applied (``command`` is not looked at)."""
        return str(len(self.commands)).encode()

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self.commands)

    def restore(self, data: bytes) -> None:
        self.commands = msgspec.msgpack.decode(data, type=list[bytes])


# -- how things print ---------------------------------------------------------------------------


def name(node_id: int) -> str:
    return f"N{node_id}"


def _round(read_round: int) -> str:
    return f" round={read_round}" if read_round else ""


def describe_batch(batch: Batch) -> str:
    if batch == NOOP:
        return "noop"
    return "[" + " ".join(entry.command.decode(errors="replace") for entry in batch) + "]"


def describe_commands(commands: list[bytes]) -> str:
    return "[" + " ".join(c.decode(errors="replace") for c in commands) + "]"


def describe_snapshot(data: bytes) -> str:
    return describe_commands(msgspec.msgpack.decode(data, type=list[bytes]))


def describe_message(msg: Message) -> str:
    """One message as the trace shows it, e.g. ``Accept 0.1 slot=2 [x] commit=1``."""
    match msg:
        case Prepare():
            return f"Prepare {msg.ballot} from_slot={msg.first_slot}"
        case Promise():
            votes = " ".join(f"{v.slot}:{describe_batch(v.value)}@{v.ballot}" for v in msg.votes)
            return (
                f"Promise {msg.ballot} log_start={msg.log_start} commit={msg.commit_index}"
                f" votes=({votes})"
            )
        case Accept():
            value = describe_batch(msg.value)
            return f"Accept {msg.ballot} slot={msg.slot} {value} commit={msg.commit_index}"
        case Accepted():
            return f"Accepted {msg.ballot} slot={msg.slot}"
        case Nack():
            return f"Nack {msg.ballot} promised={msg.promised}"
        case Heartbeat():
            return f"Heartbeat {msg.ballot} commit={msg.commit_index}{_round(msg.read_round)}"
        case HeartbeatAck():
            return f"HeartbeatAck {msg.ballot} commit={msg.commit_index}{_round(msg.read_round)}"
        case CatchUp():
            return f"CatchUp from_slot={msg.from_slot}"
        case Decided():
            values = " ".join(describe_batch(v) for v in msg.values)
            return f"Decided from_slot={msg.first_slot} ({values}) commit={msg.commit_index}"
        case ReadIndexRequest():
            return f"ReadIndexRequest round={msg.request_round}"
        case ReadIndexReply():
            return f"ReadIndexReply round={msg.request_round} read_index={msg.read_index}"
        case PreVoteRequest():
            return f"PreVoteRequest round={msg.request_round}"
        case PreVoteReply():
            answer = "yes" if msg.granted else "no"
            return f"PreVoteReply round={msg.request_round} {answer} promised={msg.promised}"
        case SnapshotChunk():
            if not msg.chunk_count:
                return f"SnapshotChunk slot={msg.slot} gone"
            machine = describe_snapshot(msg.data)
            return (
                f"SnapshotChunk slot={msg.slot} {msg.seq + 1}/{msg.chunk_count} machine={machine}"
            )
        case SnapshotRequest():
            return f"SnapshotRequest slot={msg.slot} chunks={msg.first_seq}+{msg.count}"
        case _:
            assert_never(msg)


def describe_record(record: Record) -> str:
    match record:
        case PromiseRecord():
            return f"promise {record.ballot}"
        case AcceptRecord():
            return f"accept slot={record.slot} {describe_batch(record.value)}@{record.ballot}"
        case SnapshotRecord():
            machines = " ".join(describe_snapshot(chunk) for chunk in record.chunks)
            return f"snapshot slot={record.slot} machine={machines}"
        case LearnedRecord():
            values = " ".join("vote" if v is None else describe_batch(v) for v in record.values)
            return f"learned slot={record.first_slot} {values}"
        case _:
            assert_never(record)


def describe_node(node: Node, machine: ScriptMachine) -> str:
    """Role, ballot, indexes, the acceptor's votes (the log) and what the machine applied."""
    status = node.status
    leader = "?" if status.leader_id is None else name(status.leader_id)
    votes = " ".join(
        f"{slot}:{describe_batch(vote.value)}@{vote.ballot}"
        for slot, vote in sorted(node.acceptor.accepted.items())
    )
    parts = [
        status.role.value,
        f"ballot={status.ballot}",
        f"leader={leader}",
        f"commit={status.commit_index}",
        f"applied={status.applied_index}",
    ]
    if node.acceptor.log_start:
        parts.append(f"log_start={node.acceptor.log_start}")
    if node.replica.snapshot_slot:
        parts.append(f"snapshot={node.replica.snapshot_slot}")
    parts += [f"log=({votes})", f"machine={describe_commands(machine.commands)}"]
    return " ".join(parts)


# -- the world ----------------------------------------------------------------------------------


@dataclass(slots=True)
class CachedWrite:
    """A record in a node's page cache: durable at the next fsync, lost by a crash before."""

    record: Record
    own_vote: bool  # a ``PersistOwnVote``: the node hears ``synced`` once it is durable
    durable: bool = False


@dataclass(frozen=True, slots=True)
class InTransit:
    sender: int
    to: int
    msg: Message


@dataclass
class LogInteraction:
    """The world a script drives: nodes, their disks and page caches, the messages in flight."""

    config: MultiConfig = SCRIPT_CONFIG
    seed: int = 0
    nodes: dict[int, Node] = field(default_factory=dict)
    machines: dict[int, ScriptMachine] = field(default_factory=dict)
    disks: dict[int, list[Record]] = field(default_factory=dict)
    caches: dict[int, list[CachedWrite]] = field(default_factory=dict)
    lifetimes: dict[int, int] = field(default_factory=dict)
    manual_sync: set[int] = field(default_factory=set)
    in_flight: list[InTransit] = field(default_factory=list)
    crashed: set[int] = field(default_factory=set)
    groups: dict[int, int] = field(default_factory=dict)  # node -> partition group; {}: healed
    request_ids: int = 0
    started: bool = False  # a command other than ``config`` ran

    def __post_init__(self) -> None:
        for node_id in self.config.node_ids:
            self.disks[node_id] = []
            self.caches[node_id] = []
            self.lifetimes[node_id] = 0
            self._boot(node_id)

    def _boot(self, node_id: int) -> None:
        """A fresh process for ``node_id``, recovered from its disk (empty at the start)."""
        rng = random.Random(self.seed * 1009 + node_id * 31 + self.lifetimes[node_id])
        machine = ScriptMachine()
        self.machines[node_id] = machine
        self.nodes[node_id] = Node.recover(node_id, self.config, rng, machine, self.disks[node_id])

    def run(self, line: str) -> list[str]:
        words = line.split()
        if not words:
            return []
        word, args = words[0], words[1:]
        if word != "config":
            self.started = True
        match word:
            case "propose":
                return self._propose(args)
            case "read":
                self._arity(word, args, 1, 1)
                node_id = self._up(args[0])
                self.request_ids += 1
                rid = self.request_ids
                out = [f"  {args[0]} takes read r{rid}"]
                return out + self._feed(node_id, lambda node: node.read(rid, b"read"))
            case "deliver":
                return self._deliver(args)
            case "drop":
                return self._drop(args)
            case "dup":
                return self._dup(args)
            case "tick":
                return self._tick(args)
            case "sync":
                return self._sync(args)
            case "crash":
                return self._crash(args)
            case "restart":
                return self._restart(args)
            case "partition":
                return self._partition(args)
            case "heal":
                self._arity(word, args, 0, 0)
                self.groups = {}
                return ["  healed"]
            case "pending":
                self._arity(word, args, 0, 0)
                return [f"  {self._line(m)}" for m in self.in_flight] or ["  (nothing in flight)"]
            case "state":
                self._arity(word, args, 0, 0)
                return [self._state_line(node_id) for node_id in self.config.node_ids]
            case "config":
                raise ScriptError("config must be the script's first command")
            case _:
                raise ScriptError(f"unknown command {word!r}")

    # -- parsing helpers ----------------------------------------------------------------------

    @staticmethod
    def _arity(word: str, args: list[str], low: int, high: int) -> None:
        if not low <= len(args) <= high:
            raise ScriptError(f"{word} takes {low} to {high} arguments, got {len(args)}")

    def _id(self, text: str) -> int:
        if text.startswith("N") and text[1:].isdigit() and int(text[1:]) in self.nodes:
            return int(text[1:])
        raise ScriptError(f"no node named {text!r}")

    def _up(self, text: str) -> int:
        node_id = self._id(text)
        if node_id in self.crashed:
            raise ScriptError(f"{text} is down")
        return node_id

    def _line(self, m: InTransit) -> str:
        return f"{name(m.sender)} -> {name(m.to)}  {describe_message(m.msg)}"

    def _state_line(self, node_id: int) -> str:
        if node_id in self.crashed:
            return f"  {name(node_id)}: down"
        return f"  {name(node_id)}: {describe_node(self.nodes[node_id], self.machines[node_id])}"

    # -- carrying out effects -----------------------------------------------------------------

    def _step(self, node_id: int, effects: list[Effect]) -> list[str]:
        """Carry out one effect list: persists first, then the rest; sends by destination."""
        me = name(node_id)
        out: list[str] = []
        sends: list[tuple[int, Message]] = []
        snapshots: list[SnapshotRecord] = []
        for effect in effects:
            match effect:
                case Persist():
                    record = effect.state
                    assert isinstance(
                        record, PromiseRecord | AcceptRecord | SnapshotRecord | LearnedRecord
                    )
                    if effect.sync:
                        self._fsync(node_id)
                        self.disks[node_id].append(record)
                        out.append(f"  {me} persists {describe_record(record)}")
                    else:
                        self.caches[node_id].append(CachedWrite(record, own_vote=False))
                        out.append(f"  {me} writes {describe_record(record)} (unsynced)")
                case PersistOwnVote():
                    self.caches[node_id].append(CachedWrite(effect.record, own_vote=True))
                    out.append(f"  {me} writes own vote {describe_record(effect.record)}")
                case Send():
                    sends.append((effect.to, effect.msg))
                case Reply():
                    result = effect.result.decode(errors="replace")
                    out.append(f"  {me} replies r{effect.request_id}: {result}")
                case LocalReply():  # the scripts' reads are encoded queries: never here
                    out.append(f"  {me} replies r{effect.request_id}: {effect.answer!r}")
                case Redirect():
                    hint = "?" if effect.leader_id is None else name(effect.leader_id)
                    out.append(f"  {me} redirects r{effect.request_id} to {hint}")
                case Busy():
                    out.append(f"  {me} is busy: r{effect.request_id} dropped")
                case Applied():
                    out.append(f"  {me} applies slot={effect.slot} {describe_batch(effect.value)}")
                case MembershipRefused():
                    reason = effect.reason.value
                    out.append(f"  {me} refuses change r{effect.request_id}: {reason}")
                case TakeSnapshot():
                    snapshots.append(capture(self.nodes[node_id]))
                case CompactLog():
                    out.append(f"  {me} compacts its log below slot={effect.slot}")
                    self._compact(node_id, effect.slot)
                case SendSnapshot():
                    durable = self._durable_snapshot(node_id)
                    sends += [(effect.to, m) for m in chunk_messages(node_id, effect, durable)]
                case _:
                    assert_never(effect)
        for to, msg in sorted(sends, key=lambda send: send[0]):
            sent = InTransit(node_id, to, msg)
            self.in_flight.append(sent)
            out.append(f"  {self._line(sent)}")
        if node_id not in self.manual_sync:
            out += self._report_synced(node_id)
        for snapshot in snapshots:  # written out of line: saved after the list's effects
            self._fsync(node_id)
            self.disks[node_id].append(snapshot)
            out.append(f"  {me} saves {describe_record(snapshot)}")
            saved = partial(Node.snapshot_saved, slot=snapshot.slot)
            out += self._feed(node_id, saved)
        return out

    def _durable_snapshot(self, node_id: int) -> SnapshotRecord | None:
        snapshots = [r for r in self.disks[node_id] if isinstance(r, SnapshotRecord)]
        return max(snapshots, key=lambda r: r.slot) if snapshots else None

    def _compact(self, node_id: int, slot: int) -> None:
        """Drop the durable accepts below ``slot`` and the older snapshots."""
        latest = self._durable_snapshot(node_id)
        self.disks[node_id] = [
            r
            for r in self.disks[node_id]
            if not (isinstance(r, AcceptRecord) and r.slot < slot)
            and not (isinstance(r, SnapshotRecord) and r is not latest)
            and not (isinstance(r, LearnedRecord) and r.first_slot + len(r.values) <= slot)
        ]

    def _feed(self, node_id: int, call: Callable[[Node], list[Effect]]) -> list[str]:
        """Give the node one input; say so if its role changed, then carry out the effects."""
        node = self.nodes[node_id]
        before = node.role
        effects = call(node)
        out: list[str] = []
        if node.role is not before:
            out.append(f"  {name(node_id)} becomes {node.role.value} at {node.ballot}")
        return out + self._step(node_id, effects)

    def _fsync(self, node_id: int) -> None:
        """Everything in the page cache reaches the disk, in the order it was written."""
        for write in self.caches[node_id]:
            if not write.durable:
                self.disks[node_id].append(write.record)
                write.durable = True

    def _report_synced(self, node_id: int) -> list[str]:
        """Fsync, then tell the node which of its own votes are durable now."""
        if not self.caches[node_id]:
            return []
        self._fsync(node_id)
        done = [w.record for w in self.caches[node_id] if w.own_vote]
        self.caches[node_id] = []
        out: list[str] = []
        for record in done:
            assert isinstance(record, AcceptRecord)
            out.append(f"  {name(node_id)} synced own vote slot={record.slot}@{record.ballot}")
            out += self._feed(node_id, partial(Node.synced, slot=record.slot, ballot=record.ballot))
        return out

    def _deliver_at(self, index: int) -> list[str]:
        m = self.in_flight.pop(index)
        if m.to in self.crashed:
            return [f"  {name(m.to)} is down: {describe_message(m.msg)} lost"]
        if self.groups and self.groups.get(m.sender, -1) != self.groups.get(m.to, -1):
            return [f"  partitioned: {self._line(m)} lost"]
        return self._feed(m.to, lambda node: node.handle(m.msg))

    def _find(self, sender: str, to: str) -> int:
        s, t = self._id(sender), self._id(to)
        for index, m in enumerate(self.in_flight):
            if m.sender == s and m.to == t:
                return index
        raise ScriptError(f"no message in flight from {sender} to {to}")

    def _addressed_to(self, to: str) -> list[InTransit]:
        t = self._id(to)
        chosen = [m for m in self.in_flight if m.to == t]
        if not chosen:
            raise ScriptError(f"no message in flight to {to}")
        return chosen

    # -- commands -----------------------------------------------------------------------------

    def _propose(self, args: list[str]) -> list[str]:
        if len(args) < 2:
            raise ScriptError("propose takes a node and at least one command")
        node_id = self._up(args[0])
        proposals: list[tuple[int, bytes]] = []
        for command in args[1:]:
            self.request_ids += 1
            proposals.append((self.request_ids, command.encode()))
        taken = " ".join(f"r{r}={c.decode()}" for r, c in proposals)
        out = [f"  {args[0]} takes {taken}"]
        if len(proposals) == 1:
            return out + self._feed(node_id, lambda node: node.propose(*proposals[0]))
        return out + self._feed(node_id, lambda node: node.propose_many(proposals))

    def _deliver(self, args: list[str]) -> list[str]:
        self._arity("deliver", args, 1, 2)
        if len(args) == 2:
            return self._deliver_at(self._find(args[0], args[1]))
        out: list[str] = []
        if args[0] == "next":
            if not self.in_flight:
                raise ScriptError("no message in flight")
            return self._deliver_at(0)
        if args[0] == "all":
            for _ in range(DELIVERIES_MAX):
                if not self.in_flight:
                    return out
                out += self._deliver_at(0)
            raise ScriptError(f"deliver all: still messages in flight after {DELIVERIES_MAX}")
        for m in self._addressed_to(args[0]):
            out += self._deliver_at(self.in_flight.index(m))
        return out

    def _drop(self, args: list[str]) -> list[str]:
        self._arity("drop", args, 1, 2)
        if len(args) == 2:
            lost = [self.in_flight[self._find(args[0], args[1])]]
        else:
            lost = self._addressed_to(args[0])
        for m in lost:
            self.in_flight.remove(m)
        return [f"  dropped {self._line(m)}" for m in lost]

    def _dup(self, args: list[str]) -> list[str]:
        self._arity("dup", args, 2, 2)
        m = self.in_flight[self._find(args[0], args[1])]
        self.in_flight.append(m)
        return [f"  duplicated {self._line(m)}"]

    def _tick(self, args: list[str]) -> list[str]:
        self._arity("tick", args, 1, 2)
        if args[0] == "all":
            targets = [n for n in self.config.node_ids if n not in self.crashed]
        else:
            targets = [self._up(args[0])]
        until = len(args) == 2 and args[1] == "until"
        if until and len(targets) != 1:
            raise ScriptError("tick until takes one node")
        count = TICKS_UNTIL_MAX if until else self._count(args[1] if len(args) == 2 else "1")
        out: list[str] = []
        for _ in range(count):
            for node_id in targets:
                caused = self._feed(node_id, Node.tick)
                if caused:
                    now = self.nodes[node_id].detector.now
                    out += [f"  {name(node_id)} at tick {now}:", *caused]
            if until and out:
                return out
        if until:
            raise ScriptError(f"tick {args[0]} until: nothing happened in {count} ticks")
        return out

    @staticmethod
    def _count(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise ScriptError(f"expected a tick count >= 1 or 'until', got {text!r}")
        return int(text)

    def _sync(self, args: list[str]) -> list[str]:
        self._arity("sync", args, 1, 2)
        node_id = self._up(args[0])
        if len(args) == 1:
            return self._report_synced(node_id) or [f"  {args[0]} has nothing to sync"]
        match args[1]:
            case "manual":
                self.manual_sync.add(node_id)
                return [f"  {args[0]} syncs its own votes only when told"]
            case "auto":
                self.manual_sync.discard(node_id)
                return [f"  {args[0]} syncs its own votes after every step"]
            case _:
                raise ScriptError(f"sync mode must be manual or auto, got {args[1]!r}")

    def _crash(self, args: list[str]) -> list[str]:
        self._arity("crash", args, 1, 1)
        node_id = self._up(args[0])
        self.crashed.add(node_id)
        lost = [w.record for w in self.caches[node_id] if not w.durable]
        self.caches[node_id] = []
        return [f"  {args[0]} crashed"] + [
            f"  {args[0]} lost unsynced {describe_record(r)}" for r in lost
        ]

    def _restart(self, args: list[str]) -> list[str]:
        self._arity("restart", args, 1, 1)
        node_id = self._id(args[0])
        if node_id not in self.crashed:
            raise ScriptError(f"{args[0]} is not down")
        self.crashed.discard(node_id)
        self.lifetimes[node_id] += 1
        self._boot(node_id)
        records = len(self.disks[node_id])
        return [f"  {args[0]} restarted from {records} records", self._state_line(node_id)]

    def _partition(self, args: list[str]) -> list[str]:
        groups: list[list[int]] = [[]]
        for word in args:
            if word == "/":
                groups.append([])
            else:
                groups[-1].append(self._id(word))
        named = [n for group in groups for n in group]
        if len(set(named)) != len(named) or not all(groups):
            raise ScriptError("partition: groups split by '/', each non-empty, no node twice")
        rest = [n for n in self.config.node_ids if n not in named]
        if rest:
            groups.append(rest)
        if len(groups) < 2:
            raise ScriptError("partition needs two groups")
        self.groups = {n: index for index, group in enumerate(groups) for n in group}
        return ["  partition: " + " / ".join(" ".join(name(n) for n in sorted(g)) for g in groups)]


# -- scripts ------------------------------------------------------------------------------------


def parse_config(args: list[str], bugs: frozenset[LogBug]) -> tuple[MultiConfig, int]:
    """``config`` arguments: ``nodes=N``, ``seed=S`` and ``MultiConfig`` fields (ints, on/off)."""
    kinds = {f.name: f.type for f in fields(MultiConfig)}
    values: dict[str, Any] = {}  # MultiConfig keyword arguments, checked by its constructor
    seed = 0
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep:
            raise ScriptError(f"config takes key=value, got {arg!r}")
        if key == "nodes":
            values["node_ids"] = tuple(range(1, _int(key, text) + 1))
        elif key == "seed":
            seed = _int(key, text)
        elif key == "bugs":
            try:
                bugs = bugs | parse_bugs(text.split(","), LogBug)
            except UnknownBug as error:
                raise ScriptError(f"config: {error}") from None
        elif kinds.get(key) == "int":
            values[key] = _int(key, text)
        elif kinds.get(key) == "bool" and text in ("on", "off"):
            values[key] = text == "on"
        else:
            raise ScriptError(f"config: no setting {arg!r}")
    try:
        config = replace(SCRIPT_CONFIG, bugs=bugs, **values)
    except ValueError as error:
        raise ScriptError(f"config: {error}") from None
    return config, seed


def _int(key: str, text: str) -> int:
    if not text.isdigit():
        raise ScriptError(f"config: {key} must be a whole number, got {text!r}")
    return int(text)


def run_log_script(text: str, bugs: frozenset[LogBug] = frozenset()) -> str:
    """Run the ``> `` lines of ``text``; return the transcript (commands and their output).

    ``bugs`` switches planted bugs on (``multi.bugs``) on top of what ``config`` names: a test
    uses it to show that a golden script notices a change of behaviour.
    """
    world = LogInteraction(replace(SCRIPT_CONFIG, bugs=bugs))
    out: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("> "):
            out.append(raw)
            words = raw[2:].split()
            if words and words[0] == "config":
                if world.started:
                    raise ScriptError("config must be the script's first command")
                config, seed = parse_config(words[1:], bugs)
                world = LogInteraction(config, seed)
            else:
                out.extend(world.run(raw[2:]))
        elif raw.startswith("#") or raw.strip() == "":
            out.append(raw)
    return "\n".join(out).rstrip("\n") + "\n"
