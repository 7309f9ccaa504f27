"""The roles on their own: slot acceptor, leader take-over, config checks, wire encoding."""

from __future__ import annotations

import msgspec
import pytest

from pypaxos.core.bugs import SynodBug
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    NOOP,
    Accept,
    Accepted,
    Batch,
    Entry,
    Leader,
    Message,
    MultiConfig,
    Nack,
    Prepare,
    Promise,
    SlotAcceptor,
    Vote,
)

CONFIG = MultiConfig(node_ids=(1, 2, 3))
X, Y, Z = ((Entry(9, i, c),) for i, c in enumerate([b"x", b"y", b"z"]))


def test_the_acceptor_refuses_lower_ballots_and_reports_votes_from_the_first_slot() -> None:
    acceptor = SlotAcceptor(1, log_window_slots=10)
    acceptor.accept(Accept(2, Ballot(1, 2), 0, X, 0))
    acceptor.accept(Accept(2, Ballot(1, 2), 4, Y, 0))
    _, promise = acceptor.prepare(Prepare(3, Ballot(2, 3), 1), commit_index=1)
    assert isinstance(promise, Promise)
    assert promise.votes == (Vote(4, Ballot(1, 2), Y),)
    assert acceptor.accept(Accept(2, Ballot(1, 2), 5, Z, 0)) == (
        None,
        Nack(1, Ballot(1, 2), Ballot(2, 3)),
    )
    assert acceptor.prepare(Prepare(2, Ballot(2, 3), 0), 0)[0] is None  # equal: refused


def test_the_acceptor_ignores_compacted_slots_and_slots_beyond_its_window() -> None:
    acceptor = SlotAcceptor(1, log_window_slots=4)
    acceptor.compact(10)
    assert acceptor.accept(Accept(2, Ballot(1, 2), 9, X, 0)) == (None, None)
    assert acceptor.accept(Accept(2, Ballot(1, 2), 14, X, 0)) == (None, None)
    persist, reply = acceptor.accept(Accept(2, Ballot(1, 2), 13, X, 0))
    assert persist is not None and reply == Accepted(1, Ballot(1, 2), 13)
    _, promise = acceptor.prepare(Prepare(3, Ballot(2, 3), 0), 0)
    assert isinstance(promise, Promise) and promise.log_start == 10


def take_over(
    votes: dict[int, tuple[Vote, ...]], log_starts: dict[int, int] | None = None
) -> tuple[Leader, list[tuple[int, Batch]]]:
    leader = Leader(1, CONFIG, CONFIG.quorum())
    leader.prepare(Ballot(5, 1), 2)
    starts = log_starts or {}
    for sender, reported in votes.items():
        leader.on_promise(Promise(sender, Ballot(5, 1), 2, starts.get(sender, 0), 2, reported))
    return leader, leader.take_over()


def test_take_over_keeps_the_highest_ballot_value_per_slot_and_fills_holes() -> None:
    leader, plan = take_over(
        {
            1: (Vote(2, Ballot(1, 2), X), Vote(5, Ballot(3, 3), Z)),
            2: (Vote(2, Ballot(2, 3), Y),),
        }
    )
    assert plan == [(2, Y), (3, NOOP), (4, NOOP), (5, Z)]
    assert leader.next_slot == 6


def test_take_over_skips_slots_a_promiser_compacted() -> None:
    _, plan = take_over({1: (), 2: (Vote(7, Ballot(1, 2), X),)}, log_starts={2: 6})
    assert plan == [(6, NOOP), (7, X)]


def test_take_over_with_nothing_reported_starts_at_the_first_slot() -> None:
    leader, plan = take_over({1: (), 3: ()})
    assert plan == []
    assert leader.next_slot == 2


def test_a_leader_decides_on_a_phase_2_quorum_of_its_own_ballot() -> None:
    leader, _ = take_over({1: (), 2: ()})
    leader.record(2, X)
    assert leader.on_accepted(Accepted(1, Ballot(5, 1), 2)) is None
    assert leader.on_accepted(Accepted(2, Ballot(4, 2), 2)) is None  # another ballot
    assert leader.on_accepted(Accepted(1, Ballot(5, 1), 2)) is None  # a duplicate
    assert leader.on_accepted(Accepted(3, Ballot(5, 1), 2)) == (2, X)


@pytest.mark.parametrize(
    "bad",
    [
        {"node_ids": ()},
        {"node_ids": (1, 1)},
        {"leader_stickiness_ticks": 50},
        {"log_window_slots": 4},
        {"window_slots": 0},
    ],
)
def test_config_rejects_inconsistent_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MultiConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("stray", ["no-repropose", SynodBug.SMALL_QUORUM])
def test_config_refuses_a_bug_that_is_not_a_log_bug(stray: object) -> None:
    # A bare name (even a right one) or another layer's bug would be silently off.
    with pytest.raises(TypeError, match="LogBug"):
        MultiConfig(bugs=frozenset({stray}))  # type: ignore[arg-type]


def test_messages_round_trip_on_the_wire() -> None:
    messages: list[Message] = [
        Prepare(1, Ballot(1, 1), 3),
        Promise(2, Ballot(1, 1), 3, 0, 3, (Vote(4, Ballot(0, 3), X),)),
        Accept(1, Ballot(1, 1), 4, X, 3),
    ]
    for msg in messages:
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(msg), type=Message) == msg
