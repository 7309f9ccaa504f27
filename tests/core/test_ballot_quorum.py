from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.core import NULL_BALLOT, Ballot, FlexibleGrid, Majority

ballots = st.builds(Ballot, st.integers(0, 50), st.integers(0, 9))


@given(ballots, ballots)
def test_ballots_are_totally_ordered_by_round_then_node(a: Ballot, b: Ballot) -> None:
    assert (a < b) == ((a.round, a.node_id) < (b.round, b.node_id))
    assert (a == b) == ((a.round, a.node_id) == (b.round, b.node_id))


@given(ballots)
def test_null_ballot_sorts_below_every_real_ballot(b: Ballot) -> None:
    assert b > NULL_BALLOT
    assert NULL_BALLOT.is_null() and not b.is_null()


@given(ballots, st.integers(0, 9))
def test_next_for_is_higher_and_owned_by_the_node(seen: Ballot, node: int) -> None:
    nxt = seen.next_for(node)
    assert nxt > seen and nxt.node_id == node
    # ... and it is the smallest such ballot: one round less (same node) is not above ``seen``.
    assert Ballot(nxt.round - 1, node) <= seen


def test_first_ballot_from_null_is_round_zero() -> None:
    assert NULL_BALLOT.next_for(4) == Ballot(0, 4)


def test_ballots_of_different_proposers_never_collide() -> None:
    seen = Ballot(3, 1)
    assert seen.next_for(2) != seen.next_for(3)


def test_majority_needs_more_than_half() -> None:
    q = Majority([1, 2, 3, 4, 5])
    assert not q.is_phase1_quorum({1, 2})
    assert q.is_phase1_quorum({1, 2, 3})
    assert q.is_phase2_quorum({3, 4, 5})
    assert not q.is_phase2_quorum({1, 2, 9, 10})  # non-members do not count


def test_majority_rejects_empty_membership() -> None:
    with pytest.raises(ValueError):
        Majority([])


def test_flexible_quorums_must_intersect() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        FlexibleGrid([1, 2, 3, 4], phase1_size=2, phase2_size=2)
    q = FlexibleGrid([1, 2, 3, 4], phase1_size=3, phase2_size=2)
    assert q.is_phase2_quorum({1, 4}) and not q.is_phase1_quorum({1, 4})
