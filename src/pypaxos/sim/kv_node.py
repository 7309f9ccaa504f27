"""A Multi-Paxos KV node as a simulator actor, and the append-only disk it persists to.

``NodeActor`` is the thin server shell around a pure ``multi.Node`` running a
``kv.KVStateMachine``: a ``ClientRequest`` becomes ``propose(request_id, command)`` (or
``read(request_id, command)`` when marked ``read``), a peer
message goes to ``handle``, and the world's periodic clock calls ``tick()`` (every
``tick_interval_ticks`` of virtual time, one event for all nodes rather than a timer per node:
fewer heap events on the hot path).
The node's client effects (``Reply``, ``Redirect``, ``Busy``) and ``Applied`` go back to the
world through the simulator's ``on_effect`` hook, which routes answers to the client over the
simulated network and feeds ``Applied`` to the replica checks.  The actor also counts leader
changes (a node starting to lead at a new ballot) for the report.

``RecordLogDisk`` replaces the generic disk's "one durable state per actor" with an append-only
write-ahead log, because a Multi-Paxos node persists *records* (``PromiseRecord``,
``AcceptRecord``, ``SnapshotRecord``) to be replayed in order by ``Node.recover``.  It keeps the
generic contract: ``write(sync=True)`` makes the record, and every unsynced record written
before it, durable at once (an fsync flushes the whole file); ``write(sync=False)`` waits in the
page cache for the flush event the simulator schedules (or for ``sync(node)``, a leader's fsync of
its own vote, see ``multi.effects.PersistOwnVote``); a crash drops the page cache only.  The
observer (the world's ghost record of acceptances) sees a record when it becomes durable: a vote
lost in a crash was never cast.
A ``SnapshotRecord`` is written to it out of line (``sim.kv``, ``TakeSnapshot``), and it compacts
when the node says so (``CompactLog``, sent only once that snapshot is durable): the accepts
below the slot, the older snapshots and all promises but the highest go, which ``Node.recover``
would ignore anyway.  So a restart replays a bounded log however long the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import cast

from pypaxos.core.types import NULL_BALLOT
from pypaxos.kv import KVStateMachine
from pypaxos.multi import (
    AcceptRecord,
    Effect,
    LearnedRecord,
    Message,
    MultiConfig,
    Node,
    PromiseRecord,
    Record,
    Role,
    SnapshotRecord,
    StateMachine,
)
from pypaxos.sim.disk import Disk
from pypaxos.sim.kv_client import ClientRequest
from pypaxos.sim.kv_publish import Recording

MachineFactory = Callable[[], StateMachine]


class RecordLogDisk(Disk):
    """An append-only record log per actor; only synced records survive a crash."""

    __slots__ = ("_generation", "_logs", "_unsynced", "observer")

    def __init__(self, observer: Callable[[int, object], None] | None = None) -> None:
        super().__init__()
        self.observer = observer  # sees every record made durable (ghost state for the checks)
        self._logs: dict[int, list[object]] = {}
        self._unsynced: dict[int, tuple[int, list[object]]] = {}  # node -> (generation, records)
        self._generation = 0

    def read(self, node: int) -> object | None:
        """A copy of the durable records of ``node`` in append order (``None``: none yet)."""
        log = self._logs.get(node)
        return None if log is None else tuple(log)

    def records(self, node: int) -> int:
        return len(self._logs.get(node, ()))

    def write(self, node: int, state: object, sync: bool) -> int | None:
        if sync:
            self.sync(node)
            log = self._logs.setdefault(node, [])
            log.append(state)
            if self.observer is not None:
                self.observer(node, state)
            return None
        dirty = self._unsynced.get(node)
        if dirty is not None:
            dirty[1].append(state)
            return None
        self._generation += 1
        self._unsynced[node] = (self._generation, [state])
        return self._generation

    def flush(self, node: int, generation: int) -> bool:
        dirty = self._unsynced.get(node)
        if dirty is None or dirty[0] != generation:
            return False
        return self.sync(node)

    def sync(self, node: int) -> bool:
        """An fsync of ``node``'s log: its unsynced records become durable, in append order."""
        dirty = self._unsynced.pop(node, None)
        if dirty is None:
            return False
        log = self._logs.setdefault(node, [])
        log.extend(dirty[1])
        if self.observer is not None:
            for record in dirty[1]:
                self.observer(node, record)
        return True

    def crash(self, node: int) -> bool:
        return self._unsynced.pop(node, None) is not None

    def compact(self, node: int, slot: int) -> None:
        """``CompactLog``: drop the durable accepts below ``slot`` (and what recovery ignores)."""
        log = self._logs.get(node)
        if log is not None:
            log[:] = compact_records(log, slot)

    def latest_snapshot(self, node: int) -> SnapshotRecord | None:
        """The newest durable snapshot of ``node`` (what it can send a peer)."""
        snapshots = [r for r in self._logs.get(node, ()) if isinstance(r, SnapshotRecord)]
        return max(snapshots, key=lambda r: r.slot) if snapshots else None

    def unsynced(self, node: int) -> bool:
        return node in self._unsynced


def compact_records(records: list[object], slot: int) -> list[object]:
    """The records left once the accepts below ``slot`` go, in append order: the highest
    promise, the latest snapshot, and the accepts and learned values at or above ``slot``.
    (With a correct node ``slot`` is a durable snapshot's, so ``Node.recover`` rebuilds the same
    node from them.)"""
    snapshots = [r for r in records if isinstance(r, SnapshotRecord)]
    latest = max(snapshots, key=lambda r: r.slot) if snapshots else None
    promised = max((r.ballot for r in records if isinstance(r, PromiseRecord)), default=NULL_BALLOT)
    kept: list[object] = [] if promised.is_null() else [PromiseRecord(promised)]
    if latest is not None:
        kept.append(latest)
    kept += [
        r
        for r in records
        if (isinstance(r, AcceptRecord) and r.slot >= slot)
        or (isinstance(r, LearnedRecord) and r.first_slot + len(r.values) > slot)
    ]
    return kept


class LeaderStats:
    """Leader changes seen: one per (node, ballot) that started leading."""

    __slots__ = ("changes", "last", "lease_reads")

    def __init__(self) -> None:
        self.changes = 0
        self.lease_reads = 0  # reads answered under a lease, summed over every node's life
        self.last: object = None


class NodeActor:
    """One KV node: a ``multi.Node`` with a ``KVStateMachine``, driven by the simulator."""

    __slots__ = ("id", "leading", "machine", "node", "publications", "stats")

    def __init__(
        self,
        node_id: int,
        config: MultiConfig,
        rng: random.Random,
        records: tuple[Record, ...] | None,
        stats: LeaderStats,
        machine_factory: MachineFactory = KVStateMachine,
        record: Callable[[int, KVStateMachine], Recording] | None = None,
    ) -> None:
        self.id = node_id
        self.machine = machine_factory()
        # Publications recorded from the start, a recovery's replay included (sim.kv_publish).
        self.publications = (
            record(node_id, self.machine)
            if record is not None and isinstance(self.machine, KVStateMachine)
            else None
        )
        if records is None:
            self.node = Node(node_id, config, rng, self.machine)
        else:
            self.node = Node.recover(node_id, config, rng, self.machine, records)
        self.stats = stats
        self.leading: object = None

    def start(self) -> list[object]:
        return []

    def handle(self, msg: object) -> list[Effect]:
        node = self.node
        if isinstance(msg, ClientRequest):
            if msg.read:
                before = node.lease_reads
                effects = node.read(msg.rid, msg.command)
                self.stats.lease_reads += node.lease_reads - before
            else:
                effects = node.propose(msg.rid, msg.command)
        else:
            effects = node.handle(cast(Message, msg))  # else a peer's: Node.handle refuses others
        if node.role is Role.LEADER:
            self._note_leading()
        if self.publications is not None:
            self.publications.take()
        return effects

    def on_timer(self, name: str) -> list[object]:
        raise AssertionError(f"a node sets no timers, yet {name!r} fired")

    def tick(self) -> list[Effect]:
        node = self.node
        effects = node.tick()
        if node.role is Role.LEADER:
            self._note_leading()
        if self.publications is not None:
            self.publications.take()
        return effects

    def _note_leading(self) -> None:
        ballot = self.node.leader.ballot
        if ballot != self.leading:
            self.leading = ballot
            self.stats.changes += 1
