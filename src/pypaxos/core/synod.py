"""A single-decree Paxos deployment: which actor ids play which role, and how to build them.

Ids are small integers: acceptors ``1..A``, then proposers, then learners, so traces and the
model checker's states stay compact.  ``name(id)`` gives the readable ``A1``, ``P2``, ``L1``.
Every shell (simulator, model checker, explorer, network runtime) builds actors through this
one place, so a planted bug switched on here is switched on in the real code everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pypaxos.core.acceptor import Acceptor, AcceptorState
from pypaxos.core.bugs import SynodBug, require_family
from pypaxos.core.effects import Effect
from pypaxos.core.learner import Learner, LearnerState
from pypaxos.core.messages import Message
from pypaxos.core.proposer import Proposer, ProposerState, ProposerTiming, RandomSource
from pypaxos.core.quorum import Majority


class SynodActor(Protocol):
    """What every role offers a shell: one input at a time in, a list of effects out."""

    @property
    def id(self) -> int: ...

    def start(self) -> list[Effect]: ...

    def handle(self, msg: Message) -> list[Effect]: ...

    def on_timer(self, name: str) -> list[Effect]: ...


@dataclass(frozen=True)
class SynodConfig:
    proposers: int = 2
    acceptors: int = 3
    learners: int = 2
    bugs: frozenset[SynodBug] = field(default_factory=frozenset)
    timing: ProposerTiming = field(default_factory=ProposerTiming)
    learner_catch_up_ticks: int = 100

    def __post_init__(self) -> None:
        if self.proposers < 1 or self.acceptors < 1 or self.learners < 0:
            raise ValueError("need at least one proposer and one acceptor")
        require_family(self.bugs, SynodBug)

    @property
    def acceptor_ids(self) -> tuple[int, ...]:
        return tuple(range(1, self.acceptors + 1))

    @property
    def proposer_ids(self) -> tuple[int, ...]:
        first = self.acceptors + 1
        return tuple(range(first, first + self.proposers))

    @property
    def learner_ids(self) -> tuple[int, ...]:
        first = self.acceptors + self.proposers + 1
        return tuple(range(first, first + self.learners))

    @property
    def all_ids(self) -> tuple[int, ...]:
        return self.acceptor_ids + self.proposer_ids + self.learner_ids

    def role(self, node_id: int) -> str:
        if node_id in self.acceptor_ids:
            return "acceptor"
        if node_id in self.proposer_ids:
            return "proposer"
        if node_id in self.learner_ids:
            return "learner"
        raise ValueError(f"no actor has id {node_id}")

    def name(self, node_id: int) -> str:
        role = self.role(node_id)
        ids = {"acceptor": self.acceptor_ids, "proposer": self.proposer_ids}.get(
            role, self.learner_ids
        )
        return f"{role[0].upper()}{ids.index(node_id) + 1}"

    def quorum(self) -> Majority:
        """The quorum system actors use (a deliberately too small one under ``small-quorum``)."""
        if SynodBug.SMALL_QUORUM in self.bugs:
            return Majority(self.acceptor_ids, threshold=max(1, self.acceptors // 2))
        return Majority(self.acceptor_ids)

    def true_quorum(self) -> Majority:
        """The correct quorum system, which checkers use to decide what is really chosen."""
        return Majority(self.acceptor_ids)

    def proposal_for(self, node_id: int) -> str:
        """The value proposer ``node_id`` proposes in simulations: ``v`` and its number."""
        return f"v{self.proposer_ids.index(node_id) + 1}"

    def build(self, node_id: int, durable: object, rng: RandomSource) -> SynodActor:
        """Build (or rebuild after a crash) actor ``node_id`` from its durable state."""
        role = self.role(node_id)
        if role == "acceptor":
            assert durable is None or isinstance(durable, AcceptorState)
            return Acceptor.restart(node_id, self.learner_ids, durable, self.bugs)
        if role == "proposer":
            assert durable is None or isinstance(durable, ProposerState)
            return Proposer(
                node_id, self.quorum(), rng, self.timing, durable, self.bugs, self.learner_ids
            )
        assert durable is None or isinstance(durable, LearnerState)
        return Learner(
            node_id,
            self.quorum(),
            self.learner_ids,
            self.learner_catch_up_ticks,
            durable,
            self.bugs,
            self.proposer_ids,
        )
