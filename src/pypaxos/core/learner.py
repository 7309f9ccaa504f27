"""The learner: finds out which value has been chosen (Paxos Made Simple, section 2.3).

A value is chosen when a phase-2 quorum of acceptors accepted it *in the same ballot*.  The
learner keeps the latest ``Accepted`` of each acceptor and decides when one ballot gathers a
quorum; once decided it never changes its mind.  A learner that missed messages (or restarted)
asks with ``Query`` on its catch-up timer: acceptors answer with their accepted proposal, and
learners and proposers that already know answer with ``Decided``.  A ``Decided`` is trusted: it
comes only from a learner that saw a quorum, or a proposer whose own ballot got one.
"""

from __future__ import annotations

from collections import Counter
from typing import assert_never

import msgspec

from pypaxos.core.bugs import SynodBug
from pypaxos.core.effects import CancelTimer, Decide, Effect, Persist, Send, SetTimer
from pypaxos.core.messages import (
    Accept,
    Accepted,
    Decided,
    Message,
    Nack,
    Prepare,
    Promise,
    Query,
)
from pypaxos.core.quorum import QuorumSystem
from pypaxos.core.types import Ballot, Value

CATCH_UP_TIMER = "catch-up"


class LearnerState(msgspec.Struct, frozen=True, array_like=True):
    decided: Value | None = None


class Learner:
    __slots__ = (
        "bugs",
        "catch_up_ticks",
        "decided",
        "id",
        "latest",
        "peers",
        "proposers",
        "quorum",
        "votes",
    )

    def __init__(
        self,
        node_id: int,
        quorum: QuorumSystem,
        peers: tuple[int, ...] = (),
        catch_up_ticks: int = 100,
        durable: LearnerState | None = None,
        bugs: frozenset[SynodBug] = frozenset(),
        proposers: tuple[int, ...] = (),
    ) -> None:
        self.id = node_id
        self.quorum = quorum
        self.peers = tuple(p for p in peers if p != node_id)
        self.proposers = proposers
        self.catch_up_ticks = catch_up_ticks
        self.bugs = bugs
        self.decided: Value | None = None if durable is None else durable.decided
        # The latest (ballot, value) each acceptor reported.
        self.latest: dict[int, tuple[Ballot, Value]] = {}
        # Only for the planted bug "learner-counts-duplicates": raw message counts.
        self.votes: Counter[tuple[Ballot, Value]] = Counter()

    def start(self) -> list[Effect]:
        """Called when the actor (re)starts: arm the catch-up timer while undecided."""
        if self.decided is not None:
            return []
        return [SetTimer(CATCH_UP_TIMER, self.catch_up_ticks)]

    def handle(self, msg: Message) -> list[Effect]:
        match msg:
            case Accepted():
                return self._on_accepted(msg)
            case Decided():
                return self._decide(msg.value)
            case Query():
                if self.decided is None:
                    return []
                return [Send(msg.sender, Decided(self.id, self.decided))]
            case Prepare() | Promise() | Accept() | Nack():
                return []
            case _:
                assert_never(msg)

    def on_timer(self, name: str) -> list[Effect]:
        if name != CATCH_UP_TIMER or self.decided is not None:
            return []
        query = Query(self.id)
        targets = sorted({*self.quorum.members, *self.peers, *self.proposers})
        return [
            *(Send(to, query) for to in targets),
            SetTimer(CATCH_UP_TIMER, self.catch_up_ticks),
        ]

    def _on_accepted(self, msg: Accepted) -> list[Effect]:
        if self.decided is not None:
            return []
        if SynodBug.LEARNER_COUNTS_DUPLICATES in self.bugs:
            self.votes[(msg.ballot, msg.value)] += 1
            if self.votes[(msg.ballot, msg.value)] >= len(self.quorum.members) // 2 + 1:
                return self._decide(msg.value)
            return []
        previous = self.latest.get(msg.sender)
        if previous is not None and previous[0] >= msg.ballot:
            return []  # stale or duplicate report
        self.latest[msg.sender] = (msg.ballot, msg.value)
        if SynodBug.LEARNER_MIXES_BALLOTS in self.bugs:
            voters = [a for a, (_, v) in self.latest.items() if v == msg.value]
        else:
            voters = [a for a, (b, _) in self.latest.items() if b == msg.ballot]
        if self.quorum.is_phase2_quorum(voters):
            return self._decide(msg.value)
        return []

    def _decide(self, value: Value) -> list[Effect]:
        if self.decided is not None:
            # Invariant: a second, different decision would mean two values were chosen.
            return []
        self.decided = value
        return [Persist(LearnerState(value)), CancelTimer(CATCH_UP_TIMER), Decide(value)]
