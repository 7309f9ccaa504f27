"""The acceptor: the memory of Paxos (Paxos Made Simple, section 2.2, P1a and phase 2b).

It keeps a promise (the highest ballot it has promised) and the last proposal it accepted.
Rules:

* ``Prepare(b)`` with ``b > promised``: promise ``b`` and report the accepted proposal, if any.
* ``Accept(b, v)`` with ``b >= promised``: accept ``(b, v)``, promise ``b``, tell the proposer and
  every learner.
* Anything lower: answer ``Nack(promised)``.  The seed says "ignore"; a Nack only speeds the
  proposer's retry and never changes which values can be chosen.

Every change to the promise or the accepted proposal is returned as a ``Persist`` *before* the
reply, and the shell must make it durable before the reply leaves: a promise forgotten in a crash
is how two values get chosen.
"""

from __future__ import annotations

from typing import assert_never

import msgspec

from pypaxos.core.bugs import SynodBug
from pypaxos.core.effects import Effect, Persist, Send
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
from pypaxos.core.types import NULL_BALLOT, Ballot, Value


class AcceptorState(msgspec.Struct, frozen=True, array_like=True):
    """Everything an acceptor must keep across a crash."""

    promised: Ballot = NULL_BALLOT
    accepted_ballot: Ballot = NULL_BALLOT
    accepted_value: Value | None = None


class Acceptor:
    """One acceptor; ``learners`` are told of every acceptance."""

    __slots__ = ("bugs", "id", "learners", "state")

    def __init__(
        self,
        node_id: int,
        learners: tuple[int, ...],
        state: AcceptorState | None = None,
        bugs: frozenset[SynodBug] = frozenset(),
    ) -> None:
        self.id = node_id
        self.learners = learners
        self.bugs = bugs
        self.state = AcceptorState() if state is None else state

    @classmethod
    def restart(
        cls,
        node_id: int,
        learners: tuple[int, ...],
        durable: AcceptorState | None,
        bugs: frozenset[SynodBug] = frozenset(),
    ) -> Acceptor:
        """Rebuild an acceptor after a crash from what it had persisted (``None``: nothing)."""
        state = durable or AcceptorState()
        if SynodBug.FORGET_PROMISE_ON_RESTART in bugs:
            state = msgspec.structs.replace(state, promised=state.accepted_ballot)
        return cls(node_id, learners, state, bugs)

    @property
    def promised(self) -> Ballot:
        return self.state.promised

    def start(self) -> list[Effect]:
        return []

    def on_timer(self, name: str) -> list[Effect]:
        return []

    def handle(self, msg: Message) -> list[Effect]:
        match msg:
            case Prepare():
                return self._on_prepare(msg)
            case Accept():
                return self._on_accept(msg)
            case Query():
                return self._on_query(msg)
            case Promise() | Accepted() | Nack() | Decided():
                return []  # not addressed to acceptors; a stray copy is harmless
            case _:
                assert_never(msg)

    def _on_prepare(self, msg: Prepare) -> list[Effect]:
        state = self.state
        if msg.ballot <= state.promised and SynodBug.PROMISE_ANY_BALLOT not in self.bugs:
            return [Send(msg.sender, Nack(self.id, msg.ballot, state.promised))]
        self.state = msgspec.structs.replace(state, promised=msg.ballot)
        promise = Promise(self.id, msg.ballot, state.accepted_ballot, state.accepted_value)
        return [self._persist(), Send(msg.sender, promise)]

    def _on_accept(self, msg: Accept) -> list[Effect]:
        state = self.state
        if msg.ballot < state.promised and SynodBug.ACCEPT_BELOW_PROMISE not in self.bugs:
            return [Send(msg.sender, Nack(self.id, msg.ballot, state.promised))]
        self.state = AcceptorState(max(msg.ballot, state.promised), msg.ballot, msg.value)
        assert self.state.promised >= self.state.accepted_ballot, "promised below accepted"
        accepted = Accepted(self.id, msg.ballot, msg.value)
        targets = sorted({msg.sender, *self.learners})
        # A duplicate Accept changes nothing: skip the write, but answer again in case the
        # first Accepted was lost.
        effects: list[Effect] = [] if self.state == state else [self._persist()]
        effects.extend(Send(to, accepted) for to in targets)
        return effects

    def _on_query(self, msg: Query) -> list[Effect]:
        state = self.state
        if state.accepted_value is None:
            return []
        return [Send(msg.sender, Accepted(self.id, state.accepted_ballot, state.accepted_value))]

    def _persist(self) -> Persist[AcceptorState]:
        return Persist(self.state, sync=SynodBug.REPLY_BEFORE_PERSIST not in self.bugs)
