"""Exhaustive search over Multi-Paxos with one membership change, on the real ``multi.Node``s.

A breadth-first search, so the first violation found comes with a shortest trace.  The world is
small: voters 1, 2, 3 and a learner 4 (``MultiConfig.learner_ids``), ``alpha = window = 1``,
node 1 already leading (``ReconfigModel.initial`` runs the election with every message
delivered).  From there every interleaving of these inputs is explored:

* deliver any message in flight (each at most once; one never delivered is one the network
  dropped, so loss needs no input of its own);
* the membership change ``Replace(3, 4)`` asked of whoever leads (once);
* a client command ``a`` asked of whoever leads (``client_commands`` times);
* an election timeout at a voter (``timeouts`` times in all), a heartbeat at a leader
  (``heartbeats`` times), a crash and restart from the node's records (``crashes`` times).

Every ``Persist`` is durable at once and a leader's own vote is synced right away.  The
invariant: no two nodes apply different values in one slot, in any lifetime (a ghost of the
first value applied per slot).  A state is keyed by every field of the nodes the protocol reads
(not the clocks: the search decides when timers fire), the messages in flight, the ghost and
the budgets left.  More: docs/testing.md, "Reconfiguration in the model checker".
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from pypaxos.core.effects import Persist, Send
from pypaxos.multi import (
    Applied,
    Batch,
    Effect,
    LogBug,
    Message,
    MultiConfig,
    Node,
    PersistOwnVote,
    Record,
    Role,
)
from pypaxos.multi.membership import Replace
from pypaxos.sim.log_script import ScriptMachine

VOTERS = (1, 2, 3)
LEARNER = 4
NODES = (*VOTERS, LEARNER)
CHANGE = Replace(3, LEARNER)
CHANGE_REQUEST = 1_000


@dataclass(frozen=True, slots=True)
class Bounds:
    """How many of each input one execution may use."""

    client_commands: int = 1
    timeouts: int = 1
    heartbeats: int = 1
    crashes: int = 0
    max_states: int = 400_000
    timeout_nodes: tuple[int, ...] = VOTERS  # whose election timers may fire


@dataclass(slots=True)
class World:
    nodes: dict[int, Node]
    disks: dict[int, list[Record]]
    in_flight: set[tuple[int, int, Message]] = field(default_factory=set)
    chosen: dict[int, Batch] = field(default_factory=dict)
    violation: str | None = None
    changes: int = 1
    commands: int = 0
    timeouts: int = 0
    heartbeats: int = 0
    crashes: int = 0


@dataclass(frozen=True, slots=True)
class ReconfigResult:
    violation: str | None
    trace: tuple[str, ...]  # the inputs, shortest first found
    states: int
    exhausted: bool  # the whole reachable space (within the bounds) was searched


def _config(bugs: frozenset[LogBug]) -> MultiConfig:
    return MultiConfig(
        node_ids=VOTERS,
        learner_ids=(LEARNER,),
        reconfigurable=True,
        window_slots=1,
        leader_stickiness_ticks=0,  # liveness only: the search decides when Prepares arrive
        pre_vote=False,  # liveness only too: a timer that fires sends Prepare at once
        snapshot_every_slots=64,
        log_window_slots=65,
        promote_lag_max_slots=64,
        bugs=bugs,
    )


class ReconfigModel:
    def __init__(self, bugs: frozenset[LogBug], bounds: Bounds) -> None:
        self.config = _config(bugs)
        self.bounds = bounds

    # -- running the real nodes ---------------------------------------------------------------

    def _run(self, world: World, node_id: int, effects: list[Effect]) -> None:
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            match effect:
                case Persist():
                    world.disks[node_id].append(effect.state)
                case PersistOwnVote():
                    world.disks[node_id].append(effect.record)
                    record = effect.record
                    pending += world.nodes[node_id].synced(record.slot, record.ballot)
                case Send():
                    world.in_flight.add((node_id, effect.to, effect.msg))
                case Applied():
                    first = world.chosen.setdefault(effect.slot, effect.value)
                    if first != effect.value and world.violation is None:
                        world.violation = (
                            f"slot {effect.slot}: n{node_id} applied {effect.value!r}, "
                            f"another node {first!r}"
                        )
                case _:
                    pass  # replies, redirects, refusals: no part of the invariant

    def _new_node(self, node_id: int, records: list[Record] | None) -> Node:
        rng = _ShortestDelays()
        if records is None:
            return Node(node_id, self.config, rng, ScriptMachine())
        return Node.recover(node_id, self.config, rng, ScriptMachine(), records)

    def initial(self) -> World:
        world = World({n: self._new_node(n, None) for n in NODES}, {n: [] for n in NODES})
        world.changes = 1
        self._timeout(world, 1)
        while world.in_flight:  # the election, every message delivered in order
            self._deliver(world, min(world.in_flight, key=_order))
        assert world.nodes[1].role is Role.LEADER
        return world

    def _deliver(self, world: World, message: tuple[int, int, Message]) -> None:
        world.in_flight.discard(message)
        _src, dst, msg = message
        self._run(world, dst, world.nodes[dst].handle(msg))

    def _timeout(self, world: World, node_id: int) -> None:
        node = world.nodes[node_id]
        node.detector.deadline = node.detector.now + 1  # its election timer fires now
        self._run(world, node_id, node.tick())

    def _heartbeat(self, world: World, node_id: int) -> None:
        node = world.nodes[node_id]
        node.detector.next_heartbeat = node.detector.now + 1
        node.detector.leading_since = node.detector.now  # no step-down: the search times it
        self._run(world, node_id, node.tick())

    def _leader(self, world: World) -> int | None:
        leaders = [n for n in NODES if world.nodes[n].role is Role.LEADER]
        return max(leaders, key=lambda n: world.nodes[n].leader.ballot) if leaders else None

    # -- the transition relation --------------------------------------------------------------

    def inputs(self, world: World) -> list[str]:
        b = self.bounds
        moves = [f"deliver {s}->{d} {_short(m)}" for s, d, m in sorted(world.in_flight, key=_order)]
        leader = self._leader(world)
        if leader is not None and world.changes:
            moves.append(f"change at n{leader}")
        if leader is not None and world.commands < b.client_commands:
            moves.append(f"command at n{leader}")
        if world.timeouts < b.timeouts:
            nodes = [n for n in b.timeout_nodes if world.nodes[n].role is not Role.LEADER]
            moves += [f"timeout n{n}" for n in nodes]
        if leader is not None and world.heartbeats < b.heartbeats:
            moves.append(f"heartbeat n{leader}")
        if world.crashes < b.crashes:
            moves += [f"crash n{n}" for n in NODES]
        return moves

    def step(self, world: World, move: str) -> World:
        """``world`` after ``move`` (``world`` is changed: pass a copy)."""
        words = move.split()
        if words[0] == "deliver":
            message = next(m for m in world.in_flight if _describe(m) == move)
            self._deliver(world, message)
        elif words[0] == "change":
            world.changes -= 1
            leader = int(words[2][1:])
            node = world.nodes[leader]
            self._run(world, leader, node.propose_membership_change(CHANGE_REQUEST, CHANGE))
        elif words[0] == "command":
            world.commands += 1
            leader = int(words[2][1:])
            command = f"a{world.commands}".encode()
            self._run(world, leader, world.nodes[leader].propose(world.commands, command))
        elif words[0] == "timeout":
            world.timeouts += 1
            self._timeout(world, int(words[1][1:]))
        elif words[0] == "heartbeat":
            world.heartbeats += 1
            self._heartbeat(world, int(words[1][1:]))
        else:
            world.crashes += 1
            node_id = int(words[1][1:])
            world.in_flight = {m for m in world.in_flight if m[1] != node_id}
            world.nodes[node_id] = self._new_node(node_id, world.disks[node_id])
        return world

    def key(self, world: World) -> Hashable:
        nodes = tuple(_node_key(world.nodes[n]) for n in NODES)
        in_flight = frozenset((s, d, _freeze(m)) for s, d, m in world.in_flight)
        budgets = (world.changes, world.commands, world.timeouts, world.heartbeats, world.crashes)
        return nodes, in_flight, tuple(sorted(world.chosen.items())), budgets


def explore_reconfig(
    bugs: frozenset[LogBug] = frozenset(), bounds: Bounds = Bounds()
) -> ReconfigResult:
    """Breadth-first over every execution within ``bounds``; the first violation's trace is a
    shortest one."""
    model = ReconfigModel(bugs, bounds)
    start = model.initial()
    # Sleep sets (Godefroid, "Partial-Order Methods for the Verification of Concurrent
    # Systems", 1996): deliveries to two different nodes commute, so of their two orders only
    # one is explored.  A state met again with a sleep set that is not a superset of the one it
    # was queued with is queued again with their intersection, so no state is lost, and swaps
    # keep a trace's length, so breadth-first still finds a shortest one.
    seen: dict[Hashable, frozenset[str]] = {model.key(start): frozenset()}
    # The frontier holds pickled worlds: small, and each move starts from a fresh copy anyway.
    frontier: deque[tuple[bytes, tuple[str, ...], frozenset[str]]] = deque(
        [(_freeze_world(start), (), frozenset())]
    )
    while frontier:
        blob, trace, asleep = frontier.popleft()
        done: list[str] = []
        for move in model.inputs(pickle.loads(blob)):
            if move in asleep:
                continue
            nxt = model.step(pickle.loads(blob), move)
            if nxt.violation is not None:
                return ReconfigResult(nxt.violation, (*trace, move), len(seen), False)
            sleep = frozenset(m for m in (*asleep, *done) if _independent(m, move))
            done.append(move)
            key = model.key(nxt)
            before = seen.get(key)
            if before is not None:
                if before <= sleep:
                    continue
                sleep = before & sleep
            seen[key] = sleep
            if len(seen) >= bounds.max_states:
                return ReconfigResult(None, (), len(seen), False)
            frontier.append((_freeze_world(nxt), (*trace, move), sleep))
    return ReconfigResult(None, (), len(seen), True)


def _independent(first: str, second: str) -> bool:
    """Two inputs that commute: deliveries to different nodes (each changes only its
    receiver, and adds messages to a set)."""
    if not (first.startswith("deliver ") and second.startswith("deliver ")):
        return False
    return _receiver(first) != _receiver(second)


def _receiver(move: str) -> str:
    return move.split()[1].split("->")[1]


class _ShortestDelays:
    """The nodes' random source: the search, not the timers, decides when elections happen,
    so any draw will do; this one is tiny to clone."""

    def randint(self, a: int, b: int) -> int:
        return a


def _freeze_world(world: World) -> bytes:
    return pickle.dumps(world, pickle.HIGHEST_PROTOCOL)


def _order(message: tuple[int, int, Message]) -> tuple[int, int, str]:
    return message[0], message[1], repr(message[2])


def _short(msg: Message) -> str:
    return repr(msg)


def _describe(message: tuple[int, int, Message]) -> str:
    src, dst, msg = message
    return f"deliver {src}->{dst} {_short(msg)}"


def _freeze(msg: Message) -> Hashable:
    return repr(msg)


def _node_key(node: Node) -> Hashable:
    acceptor, replica, leader = node.acceptor, node.replica, node.leader
    inflight = tuple(
        (slot, flight.value, tuple(sorted(flight.acks)))
        for slot, flight in sorted(leader.inflight.items())
    )
    return (
        node.role,
        node.leader_id,
        node.leader_ballot,
        acceptor.promised,
        acceptor.log_start,
        tuple(sorted(acceptor.accepted.items())),
        replica.applied_index,
        tuple(sorted(replica.decided.items())),
        tuple(sorted(replica.awaiting)),
        node.membership.state,
        leader.ballot,
        leader.phase,
        tuple(sorted(leader.promises)),
        inflight,
        leader.next_slot,
        tuple(leader.queue),
        leader.resume_slot,
        node.catch_up_hint,
        node.highest_seen,
        # What the wait for a durable majority reads (``Node._durable_hold``).
        (replica.durable_index, replica.written_from, replica.written_to),
        tuple(sorted(node.follower_durable.items())),
        (leader.hold_slot, leader.hold_cleared),
    )
