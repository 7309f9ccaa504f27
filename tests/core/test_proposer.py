"""The proposer, one input at a time."""

from __future__ import annotations

import random

from pypaxos.core import (
    NULL_BALLOT,
    Accept,
    Accepted,
    Ballot,
    Decided,
    Majority,
    Nack,
    Persist,
    Phase,
    Prepare,
    Promise,
    Proposer,
    ProposerState,
    ProposerTiming,
    Query,
    Send,
    SetTimer,
    SynodBug,
)
from pypaxos.core.effects import CancelTimer

ACCEPTORS = (1, 2, 3)
ME = 5
TIMING = ProposerTiming(phase_timeout_ticks=40, backoff_min_ticks=5, backoff_max_ticks=30)


def proposer(
    bugs: frozenset[SynodBug] = frozenset(), durable: ProposerState | None = None
) -> Proposer:
    return Proposer(ME, Majority(ACCEPTORS), random.Random(1), TIMING, durable, bugs)


def sends(effects: list[object]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def test_propose_persists_ballot_then_prepares_every_acceptor() -> None:
    p = proposer()
    effects = p.propose("x")
    b = Ballot(0, ME)
    assert effects == [
        Persist(ProposerState(b)),
        Send(1, Prepare(ME, b)),
        Send(2, Prepare(ME, b)),
        Send(3, Prepare(ME, b)),
        CancelTimer("retry"),
        SetTimer("phase", 40),
    ]


def test_restarted_proposer_never_reuses_its_ballot() -> None:
    p = proposer(durable=ProposerState(Ballot(3, ME)))
    assert p.propose("x")[0] == Persist(ProposerState(Ballot(4, ME)))


def test_waits_for_a_majority_then_sends_its_own_value() -> None:
    p = proposer()
    p.propose("x")
    b = p.ballot
    assert p.handle(Promise(1, b)) == []
    effects = p.handle(Promise(2, b))
    assert sends(effects) == [Send(a, Accept(ME, b, "x")) for a in ACCEPTORS]
    assert p.phase is Phase.ACCEPTING


def test_adopts_the_value_of_the_highest_ballot_promise() -> None:
    p = proposer()
    p.propose("x")
    b = p.ballot
    p.handle(Promise(1, b, Ballot(0, 6), "low"))
    effects = p.handle(Promise(2, b, Ballot(0, 7), "high"))
    assert sends(effects)[0].msg == Accept(ME, b, "high")


def test_planted_bugs_pick_the_wrong_value() -> None:
    for bug, expected in (
        (SynodBug.ADOPT_FIRST_PROMISE, "low"),
        (SynodBug.IGNORE_PROMISED_VALUES, "x"),
    ):
        p = proposer(frozenset({bug}))
        p.propose("x")
        b = p.ballot
        p.handle(Promise(1, b, Ballot(0, 6), "low"))
        assert sends(p.handle(Promise(2, b, Ballot(0, 7), "high")))[0].msg == Accept(
            ME, b, expected
        )


def test_ignores_promises_for_other_ballots_and_duplicates() -> None:
    p = proposer()
    p.propose("x")
    b = p.ballot
    assert p.handle(Promise(1, Ballot(9, 9))) == []
    p.handle(Promise(1, b))
    assert p.handle(Promise(1, b)) == []  # the same acceptor twice is still one vote


def test_majority_of_accepted_finishes() -> None:
    p = proposer()
    p.propose("x")
    b = p.ballot
    p.handle(Promise(1, b))
    p.handle(Promise(2, b))
    assert p.handle(Accepted(1, b, "x")) == []
    effects = p.handle(Accepted(3, b, "x"))
    assert p.phase is Phase.DONE and p.chosen == "x"
    assert CancelTimer("phase") in effects
    assert p.propose("y") == [], "a proposer that saw its value chosen stops"


def test_nack_backs_off_then_retries_above_the_higher_ballot() -> None:
    p = proposer()
    p.propose("x")
    b = p.ballot
    effects = p.handle(Nack(1, b, Ballot(7, 9)))
    assert p.phase is Phase.BACKOFF
    timers = [e for e in effects if isinstance(e, SetTimer)]
    assert len(timers) == 1 and timers[0].name == "retry"
    assert TIMING.backoff_min_ticks <= timers[0].delay_ticks <= TIMING.backoff_max_ticks
    retry = p.on_timer("retry")
    assert p.ballot == Ballot(7, ME).next_for(ME) == Ballot(8, ME)
    assert Send(1, Prepare(ME, Ballot(8, ME))) in retry


def test_stale_nack_is_ignored() -> None:
    p = proposer()
    p.propose("x")
    assert p.handle(Nack(1, Ballot(9, 9), Ballot(10, 9))) == []
    assert p.phase is Phase.PREPARING


def test_phase_timeout_backs_off_with_growing_random_delay() -> None:
    p = proposer()
    p.propose("x")
    delays = []
    for _ in range(6):
        timer = next(e for e in p.on_timer("phase") if isinstance(e, SetTimer))
        delays.append(timer.delay_ticks)
        p.on_timer("retry")
    assert all(d >= TIMING.backoff_min_ticks for d in delays)
    assert max(delays) <= TIMING.backoff_cap_ticks
    assert max(delays[3:]) > TIMING.backoff_max_ticks  # the window doubled


def test_first_ballot_is_above_null() -> None:
    p = proposer()
    assert p.ballot == NULL_BALLOT
    p.propose("x")
    assert p.ballot > NULL_BALLOT


def test_a_finished_proposer_informs_learners_and_answers_their_queries() -> None:
    p = Proposer(ME, Majority(ACCEPTORS), random.Random(1), TIMING, learners=(8, 9))
    p.propose("x")
    b = p.ballot
    p.handle(Promise(1, b))
    p.handle(Promise(2, b))
    assert p.handle(Query(8)) == [], "nothing to tell before the value is chosen"
    p.handle(Accepted(1, b, "x"))
    effects = p.handle(Accepted(2, b, "x"))
    assert sends(effects) == [Send(8, Decided(ME, "x")), Send(9, Decided(ME, "x"))]
    assert p.handle(Query(8)) == [Send(8, Decided(ME, "x"))]
