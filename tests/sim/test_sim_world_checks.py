"""The synod world's per-step checks see what the actors do, through the simulator's hooks."""

from __future__ import annotations

from pypaxos.core.messages import Accepted
from pypaxos.core.types import Ballot
from pypaxos.sim.synod import SynodSettings, SynodWorld

SETTINGS = SynodSettings()  # A1..A3 = 1..3, P1, P2 = 4, 5, L1, L2 = 6, 7


def started_world() -> SynodWorld:
    world = SynodWorld(SETTINGS, seed=0, trace=True)
    world.start()
    return world


def accept(world: SynodWorld, acceptor: int, ballot: Ballot, value: str) -> None:
    # What the world sees when an acceptor sends Accepted to a learner.
    world.on_send(acceptor, 6, Accepted(acceptor, ballot, value))
    world.after_step()


def test_a_learner_that_changes_its_mind_is_caught_even_across_a_restart() -> None:
    world = started_world()
    world.on_decide(6, "v1")
    assert world.violation is None
    world.crash(6)
    world.restart(6)
    world.on_decide(6, "v1")  # saying it again is fine
    assert world.violation is None
    world.on_decide(6, "v2")
    assert world.violation is not None
    assert world.violation.message == "learner L1 changed its mind: v1 then v2"


def test_a_decision_on_an_unchosen_value_is_caught() -> None:
    world = started_world()
    world.proposed.append("v1")
    accept(world, 1, Ballot(0, 4), "v1")
    world.on_decide(7, "v1")
    world.after_step()
    assert world.violation is not None
    assert "learner L2 decided 'v1', which is not chosen" in world.violation.message


def test_chosen_needs_a_majority_in_one_ballot_and_two_chosen_values_are_caught() -> None:
    world = started_world()
    world.proposed.extend(["v1", "v2"])
    accept(world, 1, Ballot(0, 4), "v1")
    accept(world, 2, Ballot(1, 4), "v1")  # same value, other ballot: not chosen yet
    assert world.chosen == []
    accept(world, 2, Ballot(0, 4), "v1")
    assert world.chosen == ["v1"]
    assert world.violation is None
    accept(world, 3, Ballot(2, 5), "v2")
    accept(world, 1, Ballot(2, 5), "v2")
    assert world.chosen == ["v1", "v2"]
    assert world.violation is not None
    assert "more than one value chosen: ['v1', 'v2']" in world.violation.message


def test_a_chosen_value_nobody_proposed_is_caught() -> None:
    world = started_world()
    accept(world, 1, Ballot(0, 4), "ghost")
    accept(world, 3, Ballot(0, 4), "ghost")
    assert world.violation is not None
    assert "never proposed: ['ghost']" in world.violation.message


def test_only_acceptors_count_as_acceptances() -> None:
    world = started_world()
    world.proposed.append("v1")
    # A learner forwarding an Accepted-shaped message is not an acceptance.
    world.on_send(6, 7, Accepted(6, Ballot(0, 4), "v1"))
    world.on_send(7, 6, Accepted(7, Ballot(0, 4), "v1"))
    world.after_step()
    assert world.acceptances == []
    assert world.chosen == []
