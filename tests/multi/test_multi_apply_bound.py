"""``apply_max_commands``: a long run of decided slots is applied over several inputs, whole
slots at a time and in order, with the same result as applying it at once."""

from __future__ import annotations

import itertools

import pytest
from multi_harness import Cluster, LogMachine

from pypaxos.multi import Applied, Entry, MultiConfig
from pypaxos.multi.replica import Replica


def decided_run(replica: Replica, slots: int, per_slot: int) -> list[object]:
    """Learn slots 1.. first (nothing applies: slot 0 is missing), then slot 0."""
    effects: list[object] = []
    for slot in range(1, slots):
        effects += replica.learn(
            slot, tuple(Entry(2, slot * 10 + i, b"x") for i in range(per_slot))
        )
    assert replica.applied_index == 0
    effects += replica.learn(0, tuple(Entry(2, i, b"x") for i in range(per_slot)))
    return effects


def test_a_bounded_replica_applies_whole_slots_up_to_the_bound_then_waits() -> None:
    replica = Replica(1, LogMachine(), 1000, 64, 1000, apply_max_commands=5)
    effects = decided_run(replica, 10, 3)
    applied = [e.slot for e in effects if isinstance(e, Applied)]
    assert applied == [0, 1]  # 3 + 3 commands reach the bound of 5: whole slots, then stop
    assert replica.apply_pending
    assert replica.apply_more() == []  # the same input: its bound is spent
    replica.new_input()
    more = [e.slot for e in replica.apply_more() if isinstance(e, Applied)]
    assert more == [2, 3]
    while replica.apply_pending:
        replica.new_input()
        replica.apply_more()
    assert replica.applied_index == 10
    assert replica.apply_more() == []


def test_one_slot_larger_than_the_bound_still_applies_alone() -> None:
    replica = Replica(1, LogMachine(), 1000, 64, 1000, apply_max_commands=1)
    effects = decided_run(replica, 3, 4)
    assert [e.slot for e in effects if isinstance(e, Applied)] == [0]


def test_slots_learned_in_order_in_one_input_share_its_bound() -> None:
    # A catch-up answer: its slots arrive in order, each applicable at once; the input's bound
    # still stops the applies after two slots (4 commands).
    replica = Replica(1, LogMachine(), 1000, 64, 1000, apply_max_commands=4)
    effects: list[object] = []
    for slot in range(6):
        effects += replica.learn(slot, tuple(Entry(2, slot * 10 + i, b"x") for i in range(2)))
    assert [e.slot for e in effects if isinstance(e, Applied)] == [0, 1]
    assert replica.apply_pending and replica.applied_index == 2


def test_without_a_bound_the_whole_run_applies_at_once() -> None:
    replica = Replica(1, LogMachine(), 1000, 64, 1000)
    effects = decided_run(replica, 10, 3)
    assert [e.slot for e in effects if isinstance(e, Applied)] == list(range(10))
    assert not replica.apply_pending


def test_a_lagging_node_catches_up_over_many_inputs_to_the_same_state() -> None:
    c = Cluster(3, seed=21, apply_max_commands=1, snapshot_every_slots=1000, log_window_slots=1100)
    lagger_node_applies: list[int] = []
    leader = c.elect()
    lagger = next(i for i in sorted(c.nodes) if i != leader)
    c.filter = lambda src, to, msg: lagger not in (src, to)
    for request_id in range(30):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: (leader, 29) in c.replies)
    c.filter = None
    node = c.nodes[lagger]

    def caught_up() -> bool:
        lagger_node_applies.append(node.applied_index)
        return c.machines[lagger].commands == c.machines[leader].commands

    c.run_until(caught_up)
    assert not c.safety_problems()
    # it got there in many small moves, not in one
    moves = [b - a for a, b in itertools.pairwise(lagger_node_applies) if b > a]
    assert len(moves) > 3


def test_the_bound_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="apply_max_commands"):
        MultiConfig(apply_max_commands=-1)
