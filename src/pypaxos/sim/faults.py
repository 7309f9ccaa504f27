"""Fault injection: a fault phase of crashes, restarts and partitions, then the heal.

How it works.  From ``begin()`` until ``heal()`` (the fault phase), time is cut in fault steps
of ``fault_step_ticks``.  At each step, with probability ``crash_prob``, one running actor
chosen uniformly crashes (any role: acceptor, proposer or learner) and is restarted from its
disk a random ``[restart_min_ticks, restart_max_ticks]`` later.  With probability
``partition_prob`` the random partition changes: a whole network is split in two random
non-empty groups, a split one is reunited.  The waiting time to the next such step is drawn at
once from the geometric distribution rather than by tossing a coin at every step: the same law
with far fewer events.  A fixed ``partition`` instead holds for the whole fault phase.

Crashes at random ticks rarely land on the instant crash-recovery bugs need: right after an
actor handled a message, when its replies are out but its unsynced writes are not on disk.  So
with probability ``crash_after_handle_prob`` an actor also crashes right after handling a
message (and restarts like any crashed actor).  A world may narrow these crash points with
``crash_point(node)``: only a handling it accepts (say, one that sent an ``Accept``) is followed
by the coin toss.

``heal()`` ends the phase: no more faults, the partition is lifted, the network stops losing
messages, and every crashed actor is restarted.  What a protocol must then achieve, and by when,
is the world's business (see ``pypaxos.sim.synod``).  Every random choice uses the simulator's
one ``Random``, so faults replay from the seed like everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pypaxos.sim.network import Partition
from pypaxos.sim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Fault probabilities (per fault step, or per handled message) and downtimes in ticks."""

    crash_prob: float = 0.0
    crash_after_handle_prob: float = 0.0
    fault_step_ticks: int = 10
    restart_min_ticks: int = 5
    restart_max_ticks: int = 60
    partition_prob: float = 0.0
    partition: Partition | None = None

    def __post_init__(self) -> None:
        probs = (
            ("crash", self.crash_prob),
            ("crash-after-handle", self.crash_after_handle_prob),
            ("partition", self.partition_prob),
        )
        for name, prob in probs:
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {prob}")
        if self.fault_step_ticks < 1:
            raise ValueError("fault_step_ticks must be at least 1")
        if not 1 <= self.restart_min_ticks <= self.restart_max_ticks:
            raise ValueError("need 1 <= restart_min_ticks <= restart_max_ticks")


def describe_partition(groups: Partition, name: Callable[[int], str]) -> str:
    return " | ".join("{" + " ".join(name(n) for n in sorted(group)) + "}" for group in groups)


class FaultInjector:
    """Crashes, restarts and partitions ``sim``'s actors until ``heal()``."""

    def __init__(
        self,
        sim: Simulator[Any],
        settings: FaultSettings,
        crashable: Sequence[int] | None = None,
        crash_point: Callable[[int], bool] | None = None,
    ) -> None:
        self.sim = sim
        self.settings = settings
        self.crashable = tuple(sim.node_ids if crashable is None else crashable)
        self._crashable_set = frozenset(self.crashable)
        self.crash_point = crash_point
        self.active = False
        self.crashes = 0

    def begin(self) -> None:
        """Start the fault phase at the simulator's current time."""
        self.active = True
        if self.settings.partition:
            self._split(self.settings.partition)
        self._schedule(self.settings.crash_prob, self._crash_one)
        if self.settings.crash_after_handle_prob:
            self.sim.after_handle = self._maybe_crash_after_handle
        self._schedule(self.settings.partition_prob, self._toggle_partition)

    def heal(self) -> None:
        """End the fault phase: reliable network, no partition, every actor up again."""
        self.active = False
        sim = self.sim
        sim.after_handle = None
        if sim.network.partition is not None:
            self._split(None)
        sim.network.configure(sim.network.settings.reliable())
        for node in sim.node_ids:
            sim.restart(node)  # a no-op for running actors

    def _schedule(self, prob: float, fault: Callable[[], None]) -> None:
        """Schedule ``fault`` at the next fault step whose coin (``prob``) comes up.

        The number of steps until then is geometric, so drawing it at once is the same as
        tossing a coin at every step, without an event per step.
        """
        if not prob:
            return
        steps = 1
        if prob < 1.0:
            steps += int(math.log(1.0 - self.sim.rng.random()) / math.log(1.0 - prob))
        self.sim.at(
            self.sim.now + steps * self.settings.fault_step_ticks, partial(self._fire, prob, fault)
        )

    def _fire(self, prob: float, fault: Callable[[], None]) -> None:
        if self.active:
            fault()
            self._schedule(prob, fault)

    def _crash_one(self) -> None:
        sim = self.sim
        up = [node for node in self.crashable if sim.is_up(node)]
        if not up:
            return
        self._crash(up[int(sim.rng.random() * len(up))])

    def _maybe_crash_after_handle(self, node: int) -> None:
        """Maybe crash ``node`` right after it handled a message (see the module docstring)."""
        if (
            node in self._crashable_set
            and (self.crash_point is None or self.crash_point(node))
            and self.sim.rng.random() < self.settings.crash_after_handle_prob
        ):
            self._crash(node)

    def _crash(self, victim: int) -> None:
        sim, settings = self.sim, self.settings
        sim.crash(victim)
        self.crashes += 1
        low, high = settings.restart_min_ticks, settings.restart_max_ticks
        downtime = low + int(sim.rng.random() * (high - low + 1))
        sim.at(sim.now + downtime, partial(self._restart, victim))

    def _toggle_partition(self) -> None:
        self._split(None if self.sim.network.partition else self._random_split())

    def _restart(self, node: int) -> None:
        if self.active:  # after the heal, heal() has restarted everyone already
            self.sim.restart(node)

    def _random_split(self) -> Partition:
        nodes = list(self.sim.node_ids)
        self.sim.rng.shuffle(nodes)
        cut = 1 + int(self.sim.rng.random() * (len(nodes) - 1))
        return (frozenset(nodes[:cut]), frozenset(nodes[cut:]))

    def _split(self, groups: Partition | None) -> None:
        sim = self.sim
        sim.network.split(groups)
        if sim.trace is not None:
            if groups:
                sim.log("PARTITION " + describe_partition(groups, sim.name))
            else:
                sim.log("PARTITION healed")
