"""Membership changes in the KV simulator: a second nemesis that reconfigures the cluster.

With ``KVSettings.reconfig`` the world starts ``KVSettings.nodes`` voters and ``SPARES`` more
nodes outside the configuration (they exist, are ticked and may crash like the others, and
wait to be added).  Every ``every_ticks`` during the fault phase the reconfigurer asks the
current leader for a change drawn among those that make sense against its latest
configuration: add a spare as a learner, promote a learner, replace a voter by a learner (the
leader included), remove a learner, or remove a voter (the leader included) while more than
``min_voters`` remain.  Most are refused while another is not yet in force
(``multi.membership``), which is counted too.  The changes stop at the heal, so the heal's
bounds hold; the checks stay those of ``sim.kv`` (replicas agree, nothing acknowledged lost,
linearizable, serves again), with the members of the latest configuration as the replicas.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from pypaxos.multi.membership import (
    AddLearner,
    Change,
    Configuration,
    Promote,
    Remove,
    Replace,
)

SPARES = 2
"""Nodes beyond the genesis voters, ready to be added."""


def possible_changes(latest: Configuration, ids: Sequence[int], min_voters: int) -> list[Change]:
    """Every change worth asking for against ``latest`` (in a fixed order, for replays)."""
    changes: list[Change] = [AddLearner(i) for i in ids if i not in latest.members]
    for learner in latest.learners:
        changes.append(Promote(learner))
        changes += [Replace(voter, learner) for voter in latest.voters]
        changes.append(Remove(learner))
    if len(latest.voters) > min_voters:
        changes += [Remove(voter) for voter in latest.voters]
    return changes


class Reconfigurer:
    """Asks the leader for a membership change every ``every_ticks`` until ``stop``."""

    def __init__(
        self,
        at: Callable[[int, Callable[[], None]], None],
        now: Callable[[], int],
        rng: random.Random,
        every_ticks: int,
        ids: Sequence[int],
        min_voters: int,
        leader: Callable[[], int | None],
        latest: Callable[[int], Configuration],
        propose: Callable[[int, int, Change], None],
    ) -> None:
        self.at = at
        self.now = now
        self.rng = rng
        self.every_ticks = every_ticks
        self.ids = tuple(ids)
        self.min_voters = min_voters
        self.leader = leader
        self.latest = latest
        self.propose = propose
        self.active = False
        self.asked = 0

    def begin(self) -> None:
        if self.every_ticks > 0:
            self.active = True
            self.at(self.now() + self.every_ticks, self._step)

    def stop(self) -> None:
        self.active = False

    def _step(self) -> None:
        if not self.active:
            return
        leader = self.leader()
        if leader is not None:
            changes = possible_changes(self.latest(leader), self.ids, self.min_voters)
            if changes:
                self.asked += 1
                self.propose(leader, self.asked, changes[int(self.rng.random() * len(changes))])
        self.at(self.now() + self.every_ticks, self._step)
