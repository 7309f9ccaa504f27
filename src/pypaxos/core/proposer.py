"""The proposer: drives one value to be chosen (Paxos Made Simple, section 2.2, phases 1a/2a).

1. Pick a ballot above every ballot seen, persist it (so a restart never reuses it), and send
   ``Prepare`` to every acceptor.
2. On a phase-1 quorum of ``Promise``: adopt the value of the highest-ballot accepted proposal
   reported (P2c), or its own value if none was, and send ``Accept``.
3. On a phase-2 quorum of ``Accepted`` for its ballot: the value is chosen; tell the learners
   with ``Decided`` (as the seed says: the proposer "informs the learner that consensus has
   been reached") and stop, answering any later learner ``Query`` with ``Decided`` too.  A
   learner that missed the decisive ``Accepted`` messages may otherwise never see a majority
   in one ballot again, once the acceptors have moved on to later ballots.

A ``Nack`` or the phase timer ends the attempt; the proposer retries with a higher ballot after
a randomised backoff, which breaks the livelock of dueling proposers.  Randomness comes from an
injected ``RandomSource`` and time only as ``SetTimer`` effects and ``on_timer`` calls.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol, assert_never

import msgspec

from pypaxos.core.bugs import SynodBug
from pypaxos.core.effects import CancelTimer, Effect, Persist, Send, SetTimer
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
from pypaxos.core.types import NULL_BALLOT, Ballot, Value

PHASE_TIMER = "phase"
RETRY_TIMER = "retry"


class RandomSource(Protocol):
    """What the proposer needs of a random generator (``random.Random`` fits)."""

    def randint(self, a: int, b: int) -> int: ...


class Phase(Enum):
    IDLE = "idle"
    PREPARING = "preparing"
    ACCEPTING = "accepting"
    BACKOFF = "backoff"
    DONE = "done"


class ProposerState(msgspec.Struct, frozen=True, array_like=True):
    """What a proposer keeps across a crash: the highest ballot it has used."""

    last_ballot: Ballot = NULL_BALLOT


class ProposerTiming(msgspec.Struct, frozen=True):
    """Timer lengths in ticks; backoff is drawn uniformly from [min, max] and doubles per retry."""

    phase_timeout_ticks: int = 40
    backoff_min_ticks: int = 5
    backoff_max_ticks: int = 30
    backoff_cap_ticks: int = 400


class Proposer:
    __slots__ = (
        "accepted_from",
        "ballot",
        "bugs",
        "chosen",
        "highest_seen",
        "id",
        "learners",
        "own_value",
        "phase",
        "promises",
        "proposal",
        "quorum",
        "retries",
        "rng",
        "timing",
    )

    def __init__(
        self,
        node_id: int,
        quorum: QuorumSystem,
        rng: RandomSource,
        timing: ProposerTiming | None = None,
        durable: ProposerState | None = None,
        bugs: frozenset[SynodBug] = frozenset(),
        learners: tuple[int, ...] = (),
    ) -> None:
        self.id = node_id
        self.learners = learners
        self.quorum = quorum
        self.rng = rng
        self.timing = ProposerTiming() if timing is None else timing
        self.bugs = bugs
        last = NULL_BALLOT if durable is None else durable.last_ballot
        self.highest_seen: Ballot = last
        self.ballot: Ballot = last
        self.phase = Phase.IDLE
        self.own_value: Value | None = None
        self.proposal: Value | None = None  # the value sent in Accept for ``ballot``
        self.promises: dict[int, Promise] = {}
        self.accepted_from: set[int] = set()
        self.chosen: Value | None = None
        self.retries = 0

    # -- inputs -----------------------------------------------------------------------------

    def propose(self, value: Value) -> list[Effect]:
        """Start (or restart) driving ``value``; a no-op once a value is known chosen."""
        if self.phase is Phase.DONE:
            return []
        self.own_value = value
        return self._start_round()

    def start(self) -> list[Effect]:
        return []

    def handle(self, msg: Message) -> list[Effect]:
        match msg:
            case Promise():
                return self._on_promise(msg)
            case Accepted():
                return self._on_accepted(msg)
            case Nack():
                return self._on_nack(msg)
            case Query():
                if self.chosen is None:
                    return []
                return [Send(msg.sender, Decided(self.id, self.chosen))]
            case Prepare() | Accept() | Decided():
                return []
            case _:
                assert_never(msg)

    def on_timer(self, name: str) -> list[Effect]:
        if self.phase is Phase.DONE or self.own_value is None:
            return []
        if name == PHASE_TIMER and self.phase in (Phase.PREPARING, Phase.ACCEPTING):
            return self._back_off()
        if name == RETRY_TIMER and self.phase is Phase.BACKOFF:
            return self._start_round()
        return []

    def stop(self) -> list[Effect]:
        """Give up proposing (used when another proposer is left to finish)."""
        self.own_value = None
        self.phase = Phase.IDLE
        return [CancelTimer(PHASE_TIMER), CancelTimer(RETRY_TIMER)]

    # -- phases -----------------------------------------------------------------------------

    def _start_round(self) -> list[Effect]:
        self.ballot = self.highest_seen.next_for(self.id)
        self.highest_seen = self.ballot
        self.phase = Phase.PREPARING
        self.promises = {}
        self.accepted_from = set()
        self.proposal = None
        effects: list[Effect] = []
        if SynodBug.PROPOSER_FORGETS_BALLOT not in self.bugs:
            effects.append(Persist(ProposerState(self.ballot)))
        prepare = Prepare(self.id, self.ballot)
        effects.extend(Send(a, prepare) for a in self.quorum.members)
        effects.append(CancelTimer(RETRY_TIMER))
        effects.append(SetTimer(PHASE_TIMER, self.timing.phase_timeout_ticks))
        return effects

    def _on_promise(self, msg: Promise) -> list[Effect]:
        self._saw(msg.accepted_ballot)
        if self.phase is not Phase.PREPARING or msg.ballot != self.ballot:
            return []
        self.promises[msg.sender] = msg
        if not self.quorum.is_phase1_quorum(self.promises.keys()):
            return []
        value = self._choose_value()
        self.proposal = value
        self.phase = Phase.ACCEPTING
        accept = Accept(self.id, self.ballot, value)
        effects: list[Effect] = [Send(a, accept) for a in self.quorum.members]
        effects.append(SetTimer(PHASE_TIMER, self.timing.phase_timeout_ticks))
        return effects

    def _choose_value(self) -> Value:
        """P2c: the value of the highest-ballot proposal any promiser accepted, else our own."""
        assert self.own_value is not None
        if SynodBug.IGNORE_PROMISED_VALUES in self.bugs:
            return self.own_value
        reported = [p for p in self.promises.values() if p.accepted_value is not None]
        if not reported:
            return self.own_value
        if SynodBug.ADOPT_FIRST_PROMISE in self.bugs:
            first = reported[0].accepted_value
            assert first is not None
            return first
        best = max(reported, key=lambda p: p.accepted_ballot)
        assert best.accepted_value is not None
        return best.accepted_value

    def _on_accepted(self, msg: Accepted) -> list[Effect]:
        if self.phase is not Phase.ACCEPTING or msg.ballot != self.ballot:
            return []
        self.accepted_from.add(msg.sender)
        if not self.quorum.is_phase2_quorum(self.accepted_from):
            return []
        self.phase = Phase.DONE
        self.chosen = self.proposal
        assert self.chosen is not None
        decided = Decided(self.id, self.chosen)
        return [
            CancelTimer(PHASE_TIMER),
            CancelTimer(RETRY_TIMER),
            *(Send(learner, decided) for learner in self.learners),
        ]

    def _on_nack(self, msg: Nack) -> list[Effect]:
        self._saw(msg.promised)
        if msg.ballot != self.ballot or msg.promised <= self.ballot:
            return []
        if self.phase not in (Phase.PREPARING, Phase.ACCEPTING):
            return []
        return self._back_off()

    def _back_off(self) -> list[Effect]:
        """Abandon this ballot; retry after a random wait that doubles per failure (capped)."""
        self.phase = Phase.BACKOFF
        self.retries += 1
        scale = min(2 ** min(self.retries - 1, 10), 1 << 10)
        low = self.timing.backoff_min_ticks
        high = min(self.timing.backoff_max_ticks * scale, self.timing.backoff_cap_ticks)
        delay = self.rng.randint(low, max(low, high))
        return [CancelTimer(PHASE_TIMER), SetTimer(RETRY_TIMER, delay)]

    def _saw(self, ballot: Ballot) -> None:
        if ballot > self.highest_seen:
            self.highest_seen = ballot
