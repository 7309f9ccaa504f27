"""A tiny deterministic message pump for Multi-Paxos nodes, shared by the tests in tests/multi.

Nodes live in a dict; messages wait in one list; one seeded ``random.Random`` picks the next
message (FIFO or random order), drops, duplicates, crashes and client traffic.  Every ``Persist``
is appended to the node's "disk" at once (the pump models synced writes), and a restart rebuilds
the node with ``Node.recover`` from that list.  A leader's ``PersistOwnVote`` is written to a page
cache instead: it becomes durable ``own_vote_sync_ticks`` ticks later (0, the default: right after
the effect list that wrote it; or with the node's next ``Persist``, as one fsync covers the whole
log), then the pump calls ``Node.synced``; a crash before that loses it.  A ``TakeSnapshot`` is
copied at once and written ``snapshot_save_ticks`` later (0: right after its effect list), then
the pump calls ``Node.snapshot_saved``; a crash before that loses it.  ``CompactLog`` drops the
disk's accepts below its slot, ``SendSnapshot`` sends the durable snapshot's chunks.  Ghost
records of what every node applied and accepted back the safety checks: one value per slot
across nodes and lifetimes, and every acknowledged command really in the log.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from pypaxos.core.effects import Persist, Send
from pypaxos.multi import (
    AcceptRecord,
    Applied,
    Batch,
    Busy,
    CompactLog,
    Effect,
    LearnedRecord,
    LogBug,
    Message,
    MultiConfig,
    Node,
    PersistOwnVote,
    Record,
    Redirect,
    Reply,
    Role,
    SendSnapshot,
    SnapshotRecord,
    TakeSnapshot,
    capture,
    chunk_messages,
)
from pypaxos.multi.membership import (
    AddLearner,
    Change,
    MembershipRefused,
    MembershipState,
    Promote,
    Remove,
    Replace,
)
from pypaxos.sim.log_script import ScriptMachine

Filter = Callable[[int, int, Message], bool]

SLOW_OWN_VOTE_SYNC_TICKS = 3
SLOW_SNAPSHOT_SAVE_TICKS = 4
"""A snapshot written out of line takes this long in ``chaos``: a crash can fall in between
(``compact-before-snapshot-saved``)."""
"""A slow fsync of a leader's own vote, for ``chaos``: the followers' votes come back first, so
a leader that counted its vote early can crash in between (``count-own-vote-before-sync``)."""


class LogMachine(ScriptMachine):
    """The script language's machine (every command kept, the result is its position), whose
    read answers the last command applied (``command`` is not looked at)."""

    def query(self, command: bytes) -> bytes:
        return self.commands[-1] if self.commands else b""


class Cluster:
    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        bugs: Iterable[LogBug] = (),
        spares: int = 0,
        machine_factory: Callable[[], LogMachine] = LogMachine,
        **config: int,
    ) -> None:
        """``n`` voters; ``spares`` more nodes outside the configuration, waiting to be added
        (the membership is then reconfigurable)."""
        self.machine_factory = machine_factory
        self.seed = seed
        self.rng = random.Random(seed)
        voters = tuple(range(1, n + 1))
        ids = tuple(range(1, n + spares + 1))
        if spares:
            config.setdefault("reconfigurable", True)
        self.config = MultiConfig(node_ids=voters, bugs=frozenset(bugs), **config)  # type: ignore[arg-type]
        self.refusals: list[tuple[int, MembershipRefused]] = []
        self.change_requests: set[tuple[int, int]] = set()  # (node, request id) of changes
        self.disks: dict[int, list[Record]] = {i: [] for i in ids}
        self.machines: dict[int, LogMachine] = {}
        self.nodes: dict[int, Node] = {}
        self.lifetimes: dict[int, int] = dict.fromkeys(ids, 0)
        for i in ids:
            self.machines[i] = machine_factory()
            self.nodes[i] = Node(i, self.config, self._node_rng(i), self.machines[i])
        self.queue: list[tuple[int, int, Message]] = []
        self.down: set[int] = set()
        self.filter: Filter | None = None  # return False to drop a message
        self.hold: Filter | None = None  # return True to set a message aside (see release)
        self.held: list[tuple[int, int, Message]] = []
        self.reorder = False
        self.drop_rate = 0.0
        self.duplicate_rate = 0.0
        self.time = 0
        self.sent: list[tuple[int, int, Message]] = []
        self.replies: dict[tuple[int, int], bytes] = {}
        self.redirects: list[tuple[int, Redirect]] = []
        self.busy: list[int] = []
        # node -> [due tick, record, durable already], the own votes not yet reported synced
        self.unsynced: dict[int, list[tuple[int, AcceptRecord, bool]]] = {i: [] for i in ids}
        self.own_vote_sync_ticks = 0
        self.snapshot_save_ticks = 0
        self.slow_snapshot_saves: set[int] = set()  # nodes whose snapshots are never durable
        # node -> [(due tick, the copy)]: snapshots taken, not yet durable
        self.saving: dict[int, list[tuple[int, SnapshotRecord]]] = {i: [] for i in ids}
        self.snapshots_saved = 0
        self.accepted_ever: dict[int, list[AcceptRecord]] = {i: [] for i in ids}  # ghost
        self.applied: dict[int, dict[int, Batch]] = {i: {} for i in ids}
        self.chosen: dict[int, Batch] = {}
        self.violations: list[str] = []

    def _node_rng(self, node_id: int) -> random.Random:
        return random.Random(self.seed * 1009 + node_id * 31 + self.lifetimes[node_id])

    # -- effects ----------------------------------------------------------------------------

    def run(self, node_id: int, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Persist():
                    assert isinstance(effect.state, Record), effect
                    self._flush(node_id)
                    self._write(node_id, effect.state)
                case PersistOwnVote():
                    due = self.time + self.own_vote_sync_ticks
                    self.unsynced[node_id].append((due, effect.record, False))
                case Send():
                    msg = effect.msg
                    self.sent.append((node_id, effect.to, msg))
                    self.queue.append((node_id, effect.to, msg))
                case Reply():
                    self.replies[(node_id, effect.request_id)] = effect.result
                case Redirect():
                    self.redirects.append((node_id, effect))
                case Busy():
                    self.busy.append(effect.request_id)
                case Applied():
                    self._record_applied(node_id, effect.slot, effect.value)
                case MembershipRefused():
                    self.refusals.append((node_id, effect))
                case TakeSnapshot():
                    due = self.time + self.snapshot_save_ticks
                    if node_id in self.slow_snapshot_saves:
                        due = 10**9  # until ``speed_up_snapshot_saves``
                    self.saving[node_id].append((due, capture(self.nodes[node_id])))
                case CompactLog():
                    self._compact(node_id, effect.slot)
                case SendSnapshot():
                    for msg in chunk_messages(node_id, effect, self.durable_snapshot(node_id)):
                        self.sent.append((node_id, effect.to, msg))
                        self.queue.append((node_id, effect.to, msg))
        if self.own_vote_sync_ticks == 0 and node_id not in self.down:
            self._report_synced(node_id)
        if self.snapshot_save_ticks == 0 and node_id not in self.down:
            self._save_snapshots(node_id)

    def _write(self, node_id: int, record: Record) -> None:
        self.disks[node_id].append(record)
        if isinstance(record, AcceptRecord):
            self.accepted_ever[node_id].append(record)

    def _save_snapshots(self, node_id: int) -> None:
        """Write the node's snapshots that are due, then tell it (``Node.snapshot_saved``)."""
        due = [record for tick, record in self.saving[node_id] if tick <= self.time]
        self.saving[node_id] = [e for e in self.saving[node_id] if e[0] > self.time]
        for record in due:
            self._flush(node_id)
            self.disks[node_id].append(record)
            self.snapshots_saved += 1
            self.run(node_id, self.nodes[node_id].snapshot_saved(record.slot))

    def speed_up_snapshot_saves(self, node_id: int) -> None:
        """The slow disk of ``node_id`` (in ``slow_snapshot_saves``) catches up: its snapshots
        are due now."""
        self.slow_snapshot_saves.discard(node_id)
        saving = self.saving[node_id]
        self.saving[node_id] = [(min(due, self.time), record) for due, record in saving]

    def durable_snapshot(self, node_id: int) -> SnapshotRecord | None:
        snapshots = [r for r in self.disks[node_id] if isinstance(r, SnapshotRecord)]
        return max(snapshots, key=lambda r: r.slot) if snapshots else None

    def _compact(self, node_id: int, slot: int) -> None:
        """``CompactLog``: the disk drops its accepts and learned values below ``slot`` and older
        snapshots."""
        latest = self.durable_snapshot(node_id)
        self.disks[node_id] = [
            r
            for r in self.disks[node_id]
            if not (isinstance(r, AcceptRecord) and r.slot < slot)
            and not (isinstance(r, SnapshotRecord) and r is not latest)
            and not (isinstance(r, LearnedRecord) and r.first_slot + len(r.values) <= slot)
        ]

    def _flush(self, node_id: int) -> None:
        """An fsync of the node's log: its pending own votes are durable, in append order."""
        pending = self.unsynced[node_id]
        for _due, record, durable in pending:
            if not durable:
                self._write(node_id, record)
        self.unsynced[node_id] = [(due, record, True) for due, record, _ in pending]

    def sync_own_votes(self, node_id: int) -> None:
        """Complete the node's pending fsync of its own votes now, whatever their due tick."""
        self.unsynced[node_id] = [(self.time, r, d) for _, r, d in self.unsynced[node_id]]
        self._report_synced(node_id)

    def _report_synced(self, node_id: int) -> None:
        """Tell the node which own votes are durable now (their fsync completed)."""
        pending = self.unsynced[node_id]
        if not pending or pending[0][0] > self.time:
            return
        self._flush(node_id)
        done = [record for due, record, _ in pending if due <= self.time]
        self.unsynced[node_id] = [entry for entry in pending if entry[0] > self.time]
        for record in done:
            self.run(node_id, self.nodes[node_id].synced(record.slot, record.ballot))

    def _record_applied(self, node_id: int, slot: int, value: Batch) -> None:
        mine = self.applied[node_id]
        if slot in mine and mine[slot] != value:
            self.violations.append(f"node {node_id} applied slot {slot} twice, differently")
        mine[slot] = value
        first = self.chosen.setdefault(slot, value)
        if first != value:
            self.violations.append(f"slot {slot}: {first!r} and {value!r} both applied")

    # -- driving ----------------------------------------------------------------------------

    def deliver_one(self) -> bool:
        if not self.queue:
            return False
        index = self.rng.randrange(len(self.queue)) if self.reorder else 0
        src, to, msg = self.queue.pop(index)
        if self.hold is not None and self.hold(src, to, msg):
            self.held.append((src, to, msg))
            return True
        if to in self.down or (self.filter is not None and not self.filter(src, to, msg)):
            return True
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return True
        if self.duplicate_rate and self.rng.random() < self.duplicate_rate:
            self.queue.append((src, to, msg))
        self.run(to, self.nodes[to].handle(msg))
        return True

    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.deliver_one():
                return
        raise AssertionError("message storm: the queue never drained")

    def tick(self) -> None:
        """One tick: deliver what is in flight (and what that causes), then tick every node."""
        for _ in range(max(1, len(self.queue))):
            self.deliver_one()
        self.time += 1
        for node_id in sorted(self.nodes):
            if node_id not in self.down:
                self._report_synced(node_id)
                self._save_snapshots(node_id)
                self.run(node_id, self.nodes[node_id].tick())

    def ticks(self, count: int) -> None:
        for _ in range(count):
            self.tick()

    def run_until(self, done: Callable[[], bool], max_ticks: int = 2000) -> None:
        for _ in range(max_ticks):
            if done():
                return
            self.tick()
        raise AssertionError(f"not done after {max_ticks} ticks (seed {self.seed})")

    def propose(self, node_id: int, request_id: int, command: bytes) -> None:
        self.run(node_id, self.nodes[node_id].propose(request_id, command))

    def propose_change(self, node_id: int, request_id: int, change: Change) -> None:
        self.change_requests.add((node_id, request_id))
        self.run(node_id, self.nodes[node_id].propose_membership_change(request_id, change))

    def release(self, which: Filter) -> None:
        """Deliver the held messages that ``which`` selects, now, in the order they were held."""
        chosen = [m for m in self.held if which(*m)]
        self.held = [m for m in self.held if not which(*m)]
        for _src, to, msg in chosen:
            if to not in self.down:
                self.run(to, self.nodes[to].handle(msg))

    def crash(self, node_id: int) -> None:
        self.down.add(node_id)
        self.queue = [m for m in self.queue if m[1] != node_id]
        self.unsynced[node_id] = []  # the page cache is gone
        self.saving[node_id] = []  # and the snapshots being written

    def restart(self, node_id: int, membership: MembershipState | None = None) -> None:
        """Rebuild the node from its disk; ``membership``: one the shell gives it (as the
        runtime does for a node that joined: the configuration it was added to)."""
        self.lifetimes[node_id] += 1
        self.machines[node_id] = self.machine_factory()
        rng = self._node_rng(node_id)
        disk = self.disks[node_id]
        node = Node.recover(node_id, self.config, rng, self.machines[node_id], disk, membership)
        self.nodes[node_id] = node
        self.down.discard(node_id)
        self._check_recovered_votes(node_id, node)

    def _check_recovered_votes(self, node_id: int, node: Node) -> None:
        """A restart keeps every durable vote not covered by the durable snapshot it restored:
        a vote lost by compacting too early is an acceptance the quorum counted on."""
        accepted, log_start = node.acceptor.accepted, node.acceptor.log_start
        for record in self.accepted_ever[node_id]:
            vote = accepted.get(record.slot)
            if record.slot >= log_start and (vote is None or vote.ballot < record.ballot):
                self.violations.append(
                    f"node {node_id} restarted without its durable vote in slot {record.slot}"
                )
                return

    # -- observations -----------------------------------------------------------------------

    def leaders(self) -> list[int]:
        return [i for i, n in sorted(self.nodes.items()) if i not in self.down and _leads(n)]

    def elect(self, max_ticks: int = 500) -> int:
        self.run_until(lambda: len(self.leaders()) == 1, max_ticks)
        return self.leaders()[0]

    def up(self) -> list[int]:
        return [i for i in sorted(self.nodes) if i not in self.down]

    def members(self) -> list[int]:
        """The up nodes of the latest configuration (all up nodes while membership is fixed)."""
        if not self.config.reconfigurable:
            return self.up()
        leaders = self.leaders()
        if not leaders:
            return self.up()
        latest = self.nodes[leaders[0]].members().latest
        return [i for i in self.up() if i in latest.members]

    def converged(self) -> bool:
        indexes = {self.nodes[i].applied_index for i in self.members()}
        return len(indexes) == 1 and not self.queue

    def chosen_by_acceptance(self) -> dict[int, set[Batch]]:
        """Per slot, every value a majority accepted in one ballot (from the disks' records)."""
        votes: dict[tuple[int, object, Batch], set[int]] = {}
        for node_id, records in self.accepted_ever.items():
            for record in records:
                key = (record.slot, record.ballot, record.value)
                votes.setdefault(key, set()).add(node_id)
        chosen: dict[int, set[Batch]] = {}
        for (slot, _, value), voters in votes.items():
            if self.config.quorum().is_phase2_quorum(voters):
                chosen.setdefault(slot, set()).add(value)
        return chosen

    def safety_problems(self) -> list[str]:
        """Every broken safety property: conflicting applies, two values chosen, lost acks."""
        problems = list(self.violations)
        if self.config.reconfigurable:  # no fixed majority to count accepts by: applies only
            lost = self.acknowledged_but_lost()
            return problems + [f"acknowledged {key} is in no slot" for key in lost]
        by_acceptance = self.chosen_by_acceptance()
        for slot, values in sorted(by_acceptance.items()):
            if len(values) > 1:
                problems.append(f"slot {slot}: {len(values)} values chosen")
        for slot, value in sorted(self.chosen.items()):
            if value not in by_acceptance.get(slot, set()):
                problems.append(f"slot {slot}: applied a value no majority accepted")
        problems += [f"acknowledged {key} is in no slot" for key in self.acknowledged_but_lost()]
        return problems

    def acknowledged_but_lost(self) -> list[tuple[int, int]]:
        """Replies for commands that no slot holds (checked once the cluster converged)."""
        in_log = {(e.origin, e.request_id) for batch in self.chosen.values() for e in batch}
        lost = [key for key in self.replies if key not in in_log]
        return sorted(key for key in lost if key not in self.change_requests)


def _leads(node: Node) -> bool:
    return node.role is Role.LEADER


def chaos(
    seed: int,
    bugs: Iterable[LogBug] = (),
    n: int = 3,
    active_ticks: int = 300,
    crash_rate: float = 0.01,
    drop_rate: float = 0.05,
    **config: int,
) -> Cluster:
    """A random run: client traffic, reordering, loss, crashes and restarts, then a heal.

    At most a minority is down at once.  After ``active_ticks`` every node restarts, the network
    turns reliable and the run continues until all nodes applied the same prefix.
    """
    c = Cluster(n, seed, bugs, **config)
    c.own_vote_sync_ticks = SLOW_OWN_VOTE_SYNC_TICKS
    c.snapshot_save_ticks = SLOW_SNAPSHOT_SAVE_TICKS
    c.reorder = True
    c.drop_rate = drop_rate
    rng = c.rng
    request_id = 0
    for _ in range(active_ticks):
        if rng.random() < 0.4:
            target = (c.leaders() or c.up())[0] if rng.random() < 0.8 else rng.choice(c.up())
            request_id += 1
            c.propose(target, request_id, f"cmd{request_id}".encode())
        if rng.random() < crash_rate and len(c.down) < (n - 1) // 2:
            c.crash(rng.choice(c.up()))
        elif c.down and rng.random() < 0.05:
            c.restart(min(c.down))
        c.tick()
    heal(c)
    return c


def heal(c: Cluster, max_ticks: int = 3000) -> None:
    c.drop_rate = 0.0
    c.filter = None
    for node_id in sorted(c.down):
        c.restart(node_id)
    c.run_until(lambda: bool(c.leaders()) and c.converged(), max_ticks)
    leader = c.leaders()[0]
    c.propose(leader, 10**9, b"final")  # forces one more slot: holes before it get filled
    c.run_until(lambda: c.converged() and (leader, 10**9) in c.replies, max_ticks)


def draw_change(c: Cluster, leader: int, rng: random.Random) -> Change:
    """A membership change that makes sense against ``leader``'s latest configuration: add a
    spare as a learner, promote a learner, replace a voter by a learner, or remove a voter (the
    leader too) while at least three remain."""
    latest = c.nodes[leader].members().latest
    spares = [i for i in sorted(c.nodes) if i not in latest.members]
    options: list[Change] = [AddLearner(i) for i in spares]
    for learner in latest.learners:
        options.append(Promote(learner))
        options += [Replace(voter, learner) for voter in latest.voters]
    if len(latest.voters) > 3:
        options += [Remove(voter) for voter in latest.voters]
    options += [Remove(learner) for learner in latest.learners]
    return rng.choice(options)


def reconfig_chaos(
    seed: int,
    bugs: Iterable[LogBug] = (),
    n: int = 3,
    spares: int = 2,
    active_ticks: int = 400,
    crash_rate: float = 0.01,
    drop_rate: float = 0.05,
    change_rate: float = 0.05,
    leader_crash_rate: float = 0.3,
    **config: int,
) -> Cluster:
    """``chaos`` with membership changes: the leader is asked for a change now and then (most
    are refused while one is in flight), at most one node is down at once, then a heal."""
    c = Cluster(n, seed, bugs, spares, **config)
    c.own_vote_sync_ticks = SLOW_OWN_VOTE_SYNC_TICKS
    c.reorder = True
    c.drop_rate = drop_rate
    rng = c.rng
    request_id = 0
    crash_at = -1
    for _ in range(active_ticks):
        leaders = c.leaders()
        if rng.random() < 0.4:
            target = (leaders or c.up())[0] if rng.random() < 0.8 else rng.choice(c.up())
            request_id += 1
            c.propose(target, request_id, f"cmd{request_id}".encode())
        if leaders and rng.random() < change_rate:
            request_id += 1
            c.propose_change(leaders[0], request_id, draw_change(c, leaders[0], rng))
            if rng.random() < leader_crash_rate and not c.down:
                crash_at = c.time + rng.randint(1, 12)  # the leader dies mid-change
        if c.time == crash_at and leaders and not c.down:
            c.crash(leaders[0])
        elif rng.random() < crash_rate and not c.down:
            c.crash(rng.choice(c.up()))
        elif c.down and rng.random() < 0.05:
            c.restart(min(c.down))
        c.tick()
    heal(c)
    return c
