"""The learner, one input at a time."""

from __future__ import annotations

from pypaxos.core import (
    Accepted,
    Ballot,
    Decide,
    Decided,
    Learner,
    LearnerState,
    Majority,
    Query,
    Send,
    SynodBug,
)
from pypaxos.core.learner import CATCH_UP_TIMER

B1, B2 = Ballot(1, 5), Ballot(2, 6)


def learner(bugs: frozenset[SynodBug] = frozenset()) -> Learner:
    return Learner(9, Majority((1, 2, 3)), peers=(9, 10), catch_up_ticks=50, bugs=bugs)


def test_decides_on_a_majority_in_one_ballot_once() -> None:
    lr = learner()
    assert lr.handle(Accepted(1, B1, "x")) == []
    effects = lr.handle(Accepted(2, B1, "x"))
    assert Decide("x") in effects and lr.decided == "x"
    assert lr.handle(Accepted(3, B1, "x")) == []  # no second Decide


def test_duplicates_from_one_acceptor_count_once() -> None:
    lr = learner()
    lr.handle(Accepted(1, B1, "x"))
    assert lr.handle(Accepted(1, B1, "x")) == []
    assert lr.decided is None


def test_does_not_mix_ballots() -> None:
    lr = learner()
    lr.handle(Accepted(1, B1, "x"))
    assert lr.handle(Accepted(2, B2, "x")) == []
    assert lr.decided is None


def test_the_planted_bugs_do_decide_wrongly() -> None:
    mixed = learner(frozenset({SynodBug.LEARNER_MIXES_BALLOTS}))
    mixed.handle(Accepted(1, B1, "x"))
    assert Decide("x") in mixed.handle(Accepted(2, B2, "x"))
    dups = learner(frozenset({SynodBug.LEARNER_COUNTS_DUPLICATES}))
    dups.handle(Accepted(1, B1, "x"))
    assert Decide("x") in dups.handle(Accepted(1, B1, "x"))


def test_never_changes_its_mind() -> None:
    lr = learner()
    lr.handle(Decided(10, "x"))
    assert lr.handle(Decided(10, "y")) == []
    lr.handle(Accepted(1, B2, "y"))
    lr.handle(Accepted(2, B2, "y"))
    assert lr.decided == "x"


def test_catch_up_asks_acceptors_and_peers_until_decided() -> None:
    lr = learner()
    assert lr.start() == [lr_timer()]
    effects = lr.on_timer(CATCH_UP_TIMER)
    assert [e.to for e in effects if isinstance(e, Send)] == [1, 2, 3, 10]
    assert all(e.msg == Query(9) for e in effects if isinstance(e, Send))
    lr.handle(Decided(10, "x"))
    assert lr.on_timer(CATCH_UP_TIMER) == []


def test_answers_queries_once_decided_and_restarts_decided() -> None:
    lr = learner()
    assert lr.handle(Query(10)) == []
    lr.handle(Decided(10, "x"))
    assert lr.handle(Query(10)) == [Send(10, Decided(9, "x"))]
    again = Learner(9, Majority((1, 2, 3)), durable=LearnerState("x"))
    assert again.decided == "x" and again.start() == []


def lr_timer() -> object:
    from pypaxos.core import SetTimer

    return SetTimer(CATCH_UP_TIMER, 50)
