"""The acceptor, one input at a time: the exact effects it returns."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pypaxos.core import (
    NULL_BALLOT,
    Accept,
    Accepted,
    Acceptor,
    AcceptorState,
    Ballot,
    Nack,
    Persist,
    Prepare,
    Promise,
    Query,
    Send,
    SynodBug,
)

LEARNERS = (7, 8)


def acceptor(**state: object) -> Acceptor:
    return Acceptor(1, LEARNERS, AcceptorState(**state))  # type: ignore[arg-type]


def test_promises_a_higher_ballot_and_persists_before_replying() -> None:
    a = acceptor()
    effects = a.handle(Prepare(5, Ballot(1, 5)))
    assert effects == [
        Persist(AcceptorState(promised=Ballot(1, 5))),
        Send(5, Promise(1, Ballot(1, 5), NULL_BALLOT, None)),
    ]


def test_promise_reports_the_earlier_accepted_proposal() -> None:
    a = acceptor(promised=Ballot(1, 5), accepted_ballot=Ballot(1, 5), accepted_value="x")
    effects = a.handle(Prepare(6, Ballot(2, 6)))
    assert effects[-1] == Send(6, Promise(1, Ballot(2, 6), Ballot(1, 5), "x"))
    assert a.state == AcceptorState(Ballot(2, 6), Ballot(1, 5), "x")


def test_refuses_an_equal_or_lower_prepare_with_a_nack() -> None:
    a = acceptor(promised=Ballot(2, 6))
    assert a.handle(Prepare(5, Ballot(1, 5))) == [Send(5, Nack(1, Ballot(1, 5), Ballot(2, 6)))]
    assert a.handle(Prepare(6, Ballot(2, 6))) == [Send(6, Nack(1, Ballot(2, 6), Ballot(2, 6)))]
    assert a.promised == Ballot(2, 6)


def test_accepts_at_or_above_its_promise_and_tells_proposer_and_learners() -> None:
    a = acceptor(promised=Ballot(1, 5))
    effects = a.handle(Accept(5, Ballot(1, 5), "x"))
    accepted = Accepted(1, Ballot(1, 5), "x")
    assert effects == [
        Persist(AcceptorState(Ballot(1, 5), Ballot(1, 5), "x")),
        Send(5, accepted),
        Send(7, accepted),
        Send(8, accepted),
    ]
    # A higher Accept without a Prepare first also raises the promise.
    a.handle(Accept(6, Ballot(3, 6), "y"))
    assert a.state == AcceptorState(Ballot(3, 6), Ballot(3, 6), "y")


def test_refuses_an_accept_below_its_promise() -> None:
    a = acceptor(promised=Ballot(2, 6))
    assert a.handle(Accept(5, Ballot(1, 5), "x")) == [Send(5, Nack(1, Ballot(1, 5), Ballot(2, 6)))]
    assert a.state.accepted_value is None


def test_answers_a_learner_query_only_when_it_has_accepted() -> None:
    assert acceptor().handle(Query(7)) == []
    a = acceptor(promised=Ballot(1, 5), accepted_ballot=Ballot(1, 5), accepted_value="x")
    assert a.handle(Query(7)) == [Send(7, Accepted(1, Ballot(1, 5), "x"))]


def test_restart_keeps_exactly_the_durable_state() -> None:
    durable = AcceptorState(Ballot(4, 5), Ballot(2, 6), "y")
    assert Acceptor.restart(1, LEARNERS, durable).state == durable
    assert Acceptor.restart(1, LEARNERS, None).state == AcceptorState()


def test_planted_bugs_change_the_acceptor() -> None:
    bad = Acceptor(
        1,
        LEARNERS,
        AcceptorState(promised=Ballot(2, 6)),
        bugs=frozenset({SynodBug.ACCEPT_BELOW_PROMISE}),
    )
    assert isinstance(bad.handle(Accept(5, Ballot(1, 5), "x"))[0], Persist)
    forgetful = Acceptor.restart(
        1,
        LEARNERS,
        AcceptorState(Ballot(4, 5), Ballot(2, 6), "y"),
        frozenset({SynodBug.FORGET_PROMISE_ON_RESTART}),
    )
    assert forgetful.promised == Ballot(2, 6)
    hasty = Acceptor(1, LEARNERS, bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST}))
    persist = hasty.handle(Prepare(5, Ballot(1, 5)))[0]
    assert isinstance(persist, Persist) and not persist.sync


messages = st.one_of(
    st.builds(Prepare, st.integers(4, 6), st.builds(Ballot, st.integers(0, 4), st.integers(4, 6))),
    st.builds(
        Accept,
        st.integers(4, 6),
        st.builds(Ballot, st.integers(0, 4), st.integers(4, 6)),
        st.sampled_from(["x", "y", "z"]),
    ),
)


@given(st.lists(messages, max_size=30))
def test_invariants_hold_for_any_message_sequence(inbox: list[Prepare | Accept]) -> None:
    a = acceptor()
    for msg in inbox:
        before = a.state
        effects = a.handle(msg)
        after = a.state
        assert after.promised >= before.promised, "promises only grow"
        assert after.promised >= after.accepted_ballot, "never accepts above its promise"
        if after != before:
            # Changed state is persisted (synced) before any reply is listed.
            assert effects[0] == Persist(after, sync=True)
            assert all(isinstance(e, Send) for e in effects[1:])
        else:
            assert all(isinstance(e, Send) for e in effects), "no write when nothing changed"
