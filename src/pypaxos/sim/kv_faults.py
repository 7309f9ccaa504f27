"""The KV simulation's nemesis: crashes (the leader too, mid-batch), partitions, then the heal.

How it works.  During the fault phase, every ``step_ticks`` one fault may start, each kind with
its own probability (``NemesisSettings``):

* ``crash``: a random running node crashes and restarts from its disk ``[5, 60]`` ticks later;
* ``crash leader mid-batch``: the nemesis arms, and crashes the current leader at the first step
  where it has slots in flight (proposed, not yet known chosen): the worst moment for it;
* ``partition``: the nodes split in two random groups, each client joins a random side, for
  ``[20, 120]`` ticks;
* ``isolate leader``: the leader alone with a random subset of the clients, for ``[100, 300]``
  ticks, long enough for the majority to elect a new leader while clients still talk to the
  old one.
* ``stall leader``: ``isolate leader`` with the leader's clock stopped for as long (its ticks
  skipped: timers paused, or a clock running far slow), so it believes it leads well after the
  others elected a new leader.  Nothing in Paxos, nor in read-index reads (``multi.reads``),
  assumes a clock, so a correct leader still never answers from a stale state; a leader that
  skips the confirmation round (``read-index-without-confirmation``, the mistake of a lease
  without a clock bound) does, while the clients with it read.  Under leader leases
  (``multi.lease``), whose stated assumption is that a node never pauses without noticing, the
  stall is a *pause* of the whole process instead: its clock stopped and its messages held, and
  when it resumes it first counts the ticks it missed (as the runtime's driver does with the
  loop clock), then handles what waited (``KVWorld``; ``resume`` is told when).

* ``cut leader``: the leader cut off from the other nodes only, for ``cut_ticks``: every
  client still reaches every node, so while the others elect a new leader and write through it,
  clients that still believe in the old one read from it.  The test of leader leases
  (``multi.lease``): the old leader must stop answering from its lease before a new leader can
  exist.  Drawn in lease runs only (``KVSwarm``); ``drift`` is told the leader, and the world
  may then slow its clock to the slowest rate the drift bound allows (the worst case for a
  lease: a slow leader, fast followers).

* ``crash after promise``: the nemesis arms, and crashes the next node that sends a
  ``Promise`` right after it (restart ``[1, 10]`` ticks later): a recovered acceptor must still
  honour the promise it made just before dying.

Besides, ``StragglerNetwork`` delays a small share of the messages far beyond the usual range
(``[20, 80]`` ticks): an ``Accept`` from a deposed leader that arrives long after a new one
took over is the classic way a forgotten promise or a mis-chosen ballot shows up.

Only one partition holds at a time.  Why its own nemesis rather than ``sim.faults``: the
generic injector cannot target the leader nor place clients in partitions, and it crashes any
listed actor, while clients here must never crash (their history would lose operations).  It
uses the same simulator, network and disk, and the simulator's one ``Random``.

``heal()`` ends the fault phase as in ``sim.faults``: no partition, no more loss or stragglers,
every crashed node restarted, no fault scheduled any more.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pypaxos.sim.network import DELIVERED, Network, NetworkSettings, Partition
from pypaxos.sim.simulator import Simulator


@dataclass(frozen=True)
class NemesisSettings:
    step_ticks: int = 15
    crash_prob: float = 0.08
    leader_crash_prob: float = 0.06
    promise_crash_prob: float = 0.04
    partition_prob: float = 0.06
    isolate_leader_prob: float = 0.03
    blip_leader_prob: float = 0.04
    straggle_prob: float = 0.01  # per message copy, during the fault phase
    stall_leader_prob: float = 0.03
    cut_leader_prob: float = 0.0
    restart_ticks: tuple[int, int] = (5, 60)
    quick_restart_ticks: tuple[int, int] = (1, 10)
    partition_ticks: tuple[int, int] = (20, 120)
    isolate_ticks: tuple[int, int] = (100, 300)
    cut_ticks: tuple[int, int] = (200, 600)  # longer: a lease can outlast an isolation
    blip_ticks: tuple[int, int] = (30, 50)
    straggle_ticks: tuple[int, int] = (20, 80)


NO_FAULTS = NemesisSettings(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class StragglerNetwork(Network):
    """The generic network, plus rare copies delayed by ``straggle_ticks`` (until healed)."""

    __slots__ = ("straggle_prob", "straggle_ticks")

    def __init__(
        self,
        rng: random.Random,
        settings: NetworkSettings,
        straggle_prob: float,
        straggle_ticks: tuple[int, int],
    ) -> None:
        super().__init__(rng, settings)
        self.straggle_prob = straggle_prob
        self.straggle_ticks = straggle_ticks

    def route(self, src: int, dst: int) -> tuple[str, tuple[int, ...]]:
        lost, delays = super().route(src, dst)
        if self.straggle_prob and lost == DELIVERED and self.rng.random() < self.straggle_prob:
            low, high = self.straggle_ticks
            return lost, (low + int(self.rng.random() * (high - low + 1)), *delays[1:])
        return lost, delays


class Nemesis:
    """Injects ``settings``' faults into ``sim`` until ``heal()``."""

    def __init__(
        self,
        sim: Simulator[Any],
        settings: NemesisSettings,
        nodes: Sequence[int],
        clients: Sequence[int],
        leader: Callable[[], int | None],
        in_flight: Callable[[int], bool],
        resume: Callable[[frozenset[int]], None] | None = None,
        drift: Callable[[int], None] | None = None,
    ) -> None:
        self.sim = sim
        self.settings = settings
        self.nodes = tuple(nodes)
        self.clients = tuple(clients)
        self.leader = leader
        self.in_flight = in_flight
        self.resume = resume  # told which stopped clocks start again, before they do
        self.drift = drift  # told the leader cut off (``cut leader``)
        self.active = False
        self.armed = False  # crash the leader as soon as it has slots in flight
        self.promise_armed = False  # crash the next node that promises
        self.partition_until = -1
        self.crashes = 0
        self.leader_crashes = 0
        self.partitions = 0
        self.stopped_clocks: set[int] = set()  # nodes the world does not tick (stall leader)

    def begin(self) -> None:
        if self.settings.step_ticks > 0:
            self.active = True
            self.sim.at(self.sim.now + self.settings.step_ticks, self._step)

    def heal(self) -> None:
        self.active = False
        self.armed = False
        self.promise_armed = False
        sim = self.sim
        self._split(None)
        self._restart_clocks()
        sim.network.configure(sim.network.settings.reliable())
        if isinstance(sim.network, StragglerNetwork):
            sim.network.straggle_prob = 0.0
        for node in self.nodes:
            if sim.restart(node) and sim.trace is not None:
                sim.log(f"n{node} restarted by the heal")

    def after_step(self) -> None:
        """Called by the world after every step while ``armed``."""
        leader = self.leader()
        if leader is not None and self.in_flight(leader):
            self.armed = False
            self.leader_crashes += 1
            self._crash(leader, "leader mid-batch")

    def promised(self, node: int) -> None:
        """Called by the world when ``node`` sends a ``Promise`` while ``promise_armed``."""
        self.promise_armed = False
        self.sim.at(self.sim.now, partial(self._crash, node, "just promised", quick=True))

    # -- faults ------------------------------------------------------------------------------

    def _step(self) -> None:
        if not self.active:
            return
        s, rng = self.settings, self.sim.rng
        roll = rng.random()
        if roll < s.crash_prob:
            up = [n for n in self.nodes if self.sim.is_up(n)]
            if up:
                self._crash(up[int(rng.random() * len(up))], "random node")
        elif roll < s.crash_prob + s.leader_crash_prob:
            self.armed = True
        elif roll < s.crash_prob + s.leader_crash_prob + s.promise_crash_prob:
            self.promise_armed = True
        elif roll < s.crash_prob + s.leader_crash_prob + s.promise_crash_prob + s.partition_prob:
            if self.sim.now >= self.partition_until:
                self._random_partition()
        else:
            roll -= s.crash_prob + s.leader_crash_prob + s.promise_crash_prob + s.partition_prob
            leader = self.leader()
            if leader is not None and self.sim.now >= self.partition_until:
                if roll < s.isolate_leader_prob:
                    self._isolate(leader, self.settings.isolate_ticks)
                elif roll < s.isolate_leader_prob + s.blip_leader_prob:
                    self._isolate(leader, self.settings.blip_ticks)
                    self.promise_armed = True
                elif roll < s.isolate_leader_prob + s.blip_leader_prob + s.stall_leader_prob:
                    self._isolate(leader, self.settings.isolate_ticks)
                    self.stopped_clocks.add(leader)
                    if self.sim.trace is not None:
                        self.sim.log(f"NEMESIS n{leader}'s clock stops")
                elif roll < (
                    s.isolate_leader_prob
                    + s.blip_leader_prob
                    + s.stall_leader_prob
                    + s.cut_leader_prob
                ):
                    rest = frozenset(self.nodes) - {leader}
                    groups = (frozenset({leader}), rest)
                    self._hold(groups, self.settings.cut_ticks, everywhere=self.clients)
                    if self.drift is not None:
                        self.drift(leader)
        self.sim.at(self.sim.now + s.step_ticks, self._step)

    def _crash(self, node: int, why: str, quick: bool = False) -> None:
        sim = self.sim
        if not self.active or not sim.crash(node):
            return  # a crash scheduled for the moment of the heal does not happen
        self.crashes += 1
        if sim.trace is not None:
            sim.log(f"NEMESIS crash n{node} ({why})")
        low, high = self.settings.quick_restart_ticks if quick else self.settings.restart_ticks
        sim.at(sim.now + self._draw(low, high), partial(self._restart, node))

    def _restart(self, node: int) -> None:
        if self.active:  # after the heal every node is up already
            self.sim.restart(node)

    def _random_partition(self) -> None:
        rng = self.sim.rng
        nodes = list(self.nodes)
        rng.shuffle(nodes)
        cut = 1 + int(rng.random() * (len(nodes) - 1))
        left, right = set(nodes[:cut]), set(nodes[cut:])
        for client in self.clients:
            (left if rng.random() < 0.5 else right).add(client)
        self._hold((frozenset(left), frozenset(right)), self.settings.partition_ticks)

    def _isolate(self, leader: int, ticks: tuple[int, int]) -> None:
        rng = self.sim.rng
        alone = {leader} | {c for c in self.clients if rng.random() < 0.5}
        rest = (set(self.nodes) | set(self.clients)) - alone
        self._hold((frozenset(alone), frozenset(rest)), ticks)

    def _hold(
        self, groups: Partition, ticks: tuple[int, int], everywhere: Sequence[int] = ()
    ) -> None:
        sim = self.sim
        self.partitions += 1
        self._split(groups, everywhere)
        until = sim.now + self._draw(*ticks)
        self.partition_until = until
        sim.at(until, self._lift)

    def _lift(self) -> None:
        if self.active:
            self._split(None)
            self._restart_clocks()

    def _restart_clocks(self) -> None:
        if self.resume is not None and self.stopped_clocks:
            self.resume(frozenset(self.stopped_clocks))
        self.stopped_clocks.clear()

    def _split(self, groups: Partition | None, everywhere: Sequence[int] = ()) -> None:
        sim = self.sim
        if groups is None and sim.network.partition is None:
            return
        sim.network.split(groups, everywhere)
        if sim.trace is not None:
            if groups:
                text = " | ".join(" ".join(sim.name(n) for n in sorted(g)) for g in groups)
                sim.log(f"NEMESIS partition {text}")
            else:
                sim.log("NEMESIS partition lifted")

    def _draw(self, low: int, high: int) -> int:
        return low + int(self.sim.rng.random() * (high - low + 1))
