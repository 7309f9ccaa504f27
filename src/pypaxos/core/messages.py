"""The messages single-decree Paxos actors exchange (Paxos Made Simple, section 2.2-2.3).

Every message names its ``sender`` so that a receiver can reply without any transport state.
They are frozen msgspec structs: hashable (the model checker stores them in sets), cheap, and
ready for the wire.
"""

from __future__ import annotations

import msgspec

from pypaxos.core.types import NULL_BALLOT, Ballot, Value


class Prepare(msgspec.Struct, frozen=True, tag=True):
    """Phase 1a: a proposer asks acceptors to promise ``ballot``."""

    sender: int
    ballot: Ballot


class Promise(msgspec.Struct, frozen=True, tag=True):
    """Phase 1b: an acceptor promises ``ballot`` and reports what it accepted before, if any.

    ``accepted_ballot`` is ``NULL_BALLOT`` (and ``accepted_value`` is ``None``) when the
    acceptor has accepted nothing.
    """

    sender: int
    ballot: Ballot
    accepted_ballot: Ballot = NULL_BALLOT
    accepted_value: Value | None = None


class Accept(msgspec.Struct, frozen=True, tag=True):
    """Phase 2a: a proposer asks acceptors to accept ``value`` at ``ballot``."""

    sender: int
    ballot: Ballot
    value: Value


class Accepted(msgspec.Struct, frozen=True, tag=True):
    """Phase 2b: an acceptor accepted ``value`` at ``ballot``; sent to the proposer and learners."""

    sender: int
    ballot: Ballot
    value: Value


class Nack(msgspec.Struct, frozen=True, tag=True):
    """An acceptor refuses ``ballot`` because it has promised the higher ``promised``.

    The seed says a refused request is simply ignored; the Nack only tells the proposer early
    that it should retry higher.  Safety never depends on it: dropping every Nack leaves the
    protocol exactly as safe (the proposer then retries on its timeout instead).
    """

    sender: int
    ballot: Ballot
    promised: Ballot


class Query(msgspec.Struct, frozen=True, tag=True):
    """A learner that missed messages asks acceptors and other learners what they know."""

    sender: int


class Decided(msgspec.Struct, frozen=True, tag=True):
    """A learner that has decided tells a learner that asked (answer to ``Query``)."""

    sender: int
    value: Value


Message = Prepare | Promise | Accept | Accepted | Nack | Query | Decided
