"""The in-memory log bounded apart from the snapshot interval (``log_memory_bytes_max``).

Snapshots here are due only every 10,000 slots, so without the bound every value of the run
would stay in memory (test_multi_retention.py shows the log growing so).  With it, applied
values this node holds on disk go from the replica and the acceptor alike, never one still
to apply, and a node that needs them is sent a snapshot taken for it.
"""

from __future__ import annotations

from multi_harness import Cluster

from pypaxos.core.types import Ballot
from pypaxos.multi import LogBug, Node, SendSnapshot, TakeSnapshot
from pypaxos.multi.acceptor import SlotAcceptor
from pypaxos.multi.log import Entry, batch_size_bytes
from pypaxos.multi.messages import Accept, Prepare

COMMAND_BYTES = 200
BOUND_BYTES = 8_000  # about 40 commands
RARE_SNAPSHOTS = {
    "window_slots": 4,
    "snapshot_every_slots": 10_000,
    "log_window_slots": 20_000,
    "batch_max_commands": 4,
    "log_retained_bytes_max": 10**9,  # the interval by bytes never comes either
    "log_memory_bytes_max": BOUND_BYTES,
}


def _votes_bytes(node: Node) -> int:
    return sum(batch_size_bytes(vote.value) for vote in node.acceptor.accepted.values())


def _check_nothing_needed_forgotten(node: Node) -> None:
    """What went from memory is applied and on this node's disk (values are let go from
    ``retained_from`` up, so every one still to apply is kept)."""
    replica, acceptor = node.replica, node.acceptor
    kept_to = min(replica.applied_index, replica.durable_index)
    assert replica.retained_from <= max(kept_to, replica.installed_slot)
    assert acceptor.chosen_floor <= kept_to
    assert replica.retained_bytes == sum(batch_size_bytes(v) for v in replica.decided.values())


def _write(c: Cluster, leader: int, first: int, count: int, fill: bytes) -> None:
    for request_id in range(first, first + count):
        c.propose(leader, request_id, b"%06d" % request_id + fill * (COMMAND_BYTES - 6))
        if request_id % 4 == 3:
            c.tick()
        for node in c.nodes.values():
            _check_nothing_needed_forgotten(node)


def test_memory_stays_bounded_with_snapshots_far_apart() -> None:
    c = Cluster(3, seed=3, **RARE_SNAPSHOTS)
    leader = c.elect()
    peak_log = peak_votes = 0
    for start in range(0, 600, 20):
        _write(c, leader, start, 20, b"x")
        for node in c.nodes.values():
            peak_log = max(peak_log, node.replica.retained_bytes)
            peak_votes = max(peak_votes, _votes_bytes(node))
    c.run_until(lambda: (leader, 599) in c.replies)
    # The bound plus what one input applies and the window not applied yet.
    slot_bytes_max = 4 * COMMAND_BYTES
    limit = BOUND_BYTES + 5 * slot_bytes_max
    assert peak_log <= limit
    assert peak_votes <= limit
    assert c.snapshots_saved == 0  # no snapshot was due: the bound alone held the memory
    for node in c.nodes.values():
        assert node.replica.retained_from > node.replica.snapshot_slot  # above the snapshot
        assert node.acceptor.chosen_floor > 0
    assert not c.safety_problems()


def test_a_node_behind_the_forgotten_log_gets_a_fresh_snapshot_and_converges() -> None:
    c = Cluster(3, seed=4, **RARE_SNAPSHOTS)
    leader = c.elect()
    behind = next(n for n in c.nodes if n != leader)
    c.crash(behind)
    _write(c, leader, 0, 300, b"y")
    c.run_until(lambda: (leader, 299) in c.replies)
    source = c.nodes[leader].replica
    assert source.snapshot_slot == 0 and source.retained_from > 0  # in no snapshot
    saved_before = c.snapshots_saved
    c.restart(behind)
    c.run_until(c.converged, max_ticks=5000)
    assert c.snapshots_saved > saved_before  # taken for the node that asked, not due
    assert c.nodes[behind].replica.snapshots_installed >= 1
    assert c.machines[behind].commands == c.machines[leader].commands
    # It keeps up once caught up: more writes, the same state everywhere.
    _write(c, leader, 300, 40, b"w")
    c.run_until(lambda: (leader, 339) in c.replies and c.converged(), max_ticks=5000)
    assert c.machines[behind].commands == c.machines[leader].commands
    assert not c.safety_problems()


def test_a_new_leader_learns_the_forgotten_slots_instead_of_filling_them() -> None:
    """The old leader's slots went from every node's memory; after it crashes the new
    leader's phase 1 sees the floors, fills nothing below them, and all agree."""
    c = Cluster(3, seed=5, **RARE_SNAPSHOTS)
    leader = c.elect()
    _write(c, leader, 0, 200, b"z")
    c.run_until(lambda: (leader, 199) in c.replies and c.converged())
    c.crash(leader)
    c.run_until(lambda: bool(c.leaders()), max_ticks=5000)
    new_leader = c.leaders()[0]
    _write(c, new_leader, 1000, 40, b"v")
    c.restart(leader)
    c.run_until(lambda: (new_leader, 1039) in c.replies and c.converged(), max_ticks=5000)
    assert c.machines[leader].commands == c.machines[new_leader].commands
    assert not c.safety_problems()


def _acceptor_with_votes(bugs: frozenset[LogBug] = frozenset()) -> SlotAcceptor:
    acceptor = SlotAcceptor(1, 64, bugs)
    ballot = Ballot(1, 2)
    acceptor.promised = ballot
    for slot in range(10):
        acceptor.accept(Accept(2, ballot, slot, (Entry(2, slot, b"c"),), 0))
    return acceptor


def test_a_promise_reports_the_forgotten_votes_as_a_floor() -> None:
    acceptor = _acceptor_with_votes()
    acceptor.forget_chosen(6)
    assert sorted(acceptor.accepted) == [6, 7, 8, 9]
    assert acceptor.window_start == 0  # the window does not move with it
    _, promise = acceptor.prepare(Prepare(3, Ballot(2, 3), 0), commit_index=6)
    assert promise.log_start == 6
    assert [v.slot for v in promise.votes] == [6, 7, 8, 9]
    # The planted bug hides the floor: slots 0..5 look empty to a new leader.
    buggy = _acceptor_with_votes(frozenset({LogBug.FORGOTTEN_VOTES_UNREPORTED}))
    buggy.forget_chosen(6)
    _, hidden = buggy.prepare(Prepare(3, Ballot(2, 3), 0), commit_index=6)
    assert hidden.log_start == 0


def test_a_node_below_the_snapshot_gets_it_and_a_fresh_one_is_started_beside() -> None:
    """Asked from below the durable snapshot while the values after it were let go too: the
    durable snapshot is sent, and a fresh one (which the asker will need next) is asked for
    at once, written at full speed (``snapshot_awaited``)."""
    c = Cluster(3, seed=6, **{**RARE_SNAPSHOTS, "snapshot_every_slots": 40})
    leader = c.elect()
    _write(c, leader, 0, 600, b"u")
    c.run_until(lambda: (leader, 599) in c.replies and c.converged())
    node = c.nodes[leader]
    replica = node.replica
    assert 0 < replica.snapshot_slot < replica.retained_from  # let go above the snapshot
    assert not node.snapshot_awaited
    answer = replica.answer_catch_up(99, 0)
    kinds = [type(e) for e in answer]
    assert kinds == [SendSnapshot, TakeSnapshot]
    assert answer[0].slot == replica.snapshot_slot  # type: ignore[union-attr]
    assert answer[1].slot == replica.applied_index  # type: ignore[union-attr]
    assert node.snapshot_awaited
    # Once it is saved, nobody waits any more, and the next answer is the new snapshot.
    replica.snapshot_saved(replica.applied_index)
    assert not node.snapshot_awaited
    assert [type(e) for e in replica.answer_catch_up(99, 0)] == [SendSnapshot]


def test_with_the_values_after_the_snapshot_kept_only_the_snapshot_is_sent() -> None:
    c = Cluster(3, seed=6, **{**RARE_SNAPSHOTS, "snapshot_every_slots": 40})
    leader = c.elect()
    _write(c, leader, 0, 170, b"t")  # the first snapshot, and less than the bound after it
    c.run_until(lambda: (leader, 169) in c.replies and c.converged())
    replica = c.nodes[leader].replica
    assert replica.snapshot_slot > 0 and replica.retained_from <= replica.snapshot_slot
    assert [type(e) for e in replica.answer_catch_up(99, 0)] == [SendSnapshot]
