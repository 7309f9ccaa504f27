"""Lagging and restarted nodes catch up, by decided entries or by snapshot; memory stays bounded."""

from __future__ import annotations

from multi_harness import Cluster, LogMachine

from pypaxos.multi import CatchUp, Decided, Entry, SnapshotChunk
from pypaxos.multi.replica import Replica


def isolate(c: Cluster, node_id: int) -> None:
    c.filter = lambda src, to, msg: node_id not in (src, to)


def run_commands(c: Cluster, leader: int, count: int, first: int = 0) -> None:
    for request_id in range(first, first + count):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: (leader, first + count - 1) in c.replies)


def lagging_cluster(**config: int) -> tuple[Cluster, int, int]:
    c = Cluster(3, seed=21, **config)
    leader = c.elect()
    lagger = next(i for i in sorted(c.nodes) if i != leader)
    isolate(c, lagger)
    run_commands(c, leader, 30)
    assert c.nodes[lagger].applied_index == 0
    c.filter = None
    return c, leader, lagger


def test_a_lagging_node_catches_up_with_decided_entries() -> None:
    c, leader, lagger = lagging_cluster(snapshot_every_slots=1000, log_window_slots=1100)
    c.run_until(lambda: c.machines[lagger].commands == c.machines[leader].commands)
    asked = [m for s, _, m in c.sent if s == lagger and isinstance(m, CatchUp)]
    answers = [m for _, to, m in c.sent if to == lagger and isinstance(m, Decided | SnapshotChunk)]
    assert asked and asked[0].from_slot == 0
    assert answers and all(isinstance(m, Decided) for m in answers)
    assert not c.safety_problems()


def test_a_node_behind_the_compacted_log_gets_a_snapshot() -> None:
    c, leader, lagger = lagging_cluster(snapshot_every_slots=4, window_slots=2, log_window_slots=8)
    assert c.nodes[leader].acceptor.log_start > 0  # the leader compacted its log
    c.run_until(lambda: c.machines[lagger].commands == c.machines[leader].commands)
    snapshots = [m for _, to, m in c.sent if to == lagger and isinstance(m, SnapshotChunk)]
    assert snapshots
    assert c.nodes[lagger].replica.snapshot_slot >= snapshots[0].slot
    assert c.nodes[lagger].acceptor.log_start >= snapshots[0].slot
    leader = c.elect()  # the returning node may have forced an election (no pre-vote)
    run_commands(c, leader, 5, first=100)  # and it takes part in the log afterwards
    c.run_until(lambda: all(c.machines[i].commands == c.machines[leader].commands for i in c.up()))
    assert len(c.machines[lagger].commands) == 35
    assert not c.safety_problems()


def test_a_restarted_node_recovers_then_catches_up() -> None:
    c = Cluster(3, seed=22, snapshot_every_slots=5)
    leader = c.elect()
    victim = next(i for i in sorted(c.nodes) if i != leader)
    run_commands(c, leader, 12)
    c.crash(victim)
    run_commands(c, leader, 12, first=50)
    c.restart(victim)
    assert c.nodes[victim].applied_index >= 5  # its own snapshot came back from its disk
    c.run_until(lambda: c.machines[victim].commands == c.machines[leader].commands)
    assert not c.safety_problems()


def test_memory_stays_bounded_over_a_long_run() -> None:
    c = Cluster(3, seed=23, snapshot_every_slots=8, window_slots=4, log_window_slots=16)
    leader = c.elect()
    high_water = 0
    for request_id in range(400):
        c.propose(leader, request_id, b"c")
        c.tick()
        for node in c.nodes.values():
            held = len(node.acceptor.accepted) + len(node.replica.decided)
            high_water = max(high_water, held)
    c.run_until(lambda: (leader, 399) in c.replies)
    assert c.nodes[leader].applied_index > 100
    assert high_water <= 16 + 2 * 8 + 4
    assert all(len(node.replica.awaiting) == 0 for node in c.nodes.values())


def test_a_catch_up_answer_is_bounded_in_bytes_but_always_carries_one_slot() -> None:
    replica = Replica(1, LogMachine(), 1000, catch_up_max_slots=100, learn_window_slots=1000,
                      catch_up_max_bytes=250)  # fmt: skip
    for slot in range(10):
        replica.learn(slot, (Entry(1, slot, bytes(100)),))
    (answer,) = replica.answer_catch_up(2, 2)
    assert isinstance(answer, Decided)
    assert (answer.first_slot, len(answer.values), answer.commit_index) == (2, 2, 10)
    replica.catch_up_max_bytes = 10  # one batch above the bound still goes, alone
    (answer,) = replica.answer_catch_up(2, 2)
    assert isinstance(answer, Decided) and len(answer.values) == 1


def test_each_answer_that_moves_a_node_forward_brings_the_next_request_at_once() -> None:
    c = Cluster(3, seed=22, snapshot_every_slots=1000, log_window_slots=1100,
                catch_up_max_slots=2, catch_up_retry_ticks=10_000)  # fmt: skip
    leader = c.elect()
    victim = next(i for i in sorted(c.nodes) if i != leader)
    c.crash(victim)
    run_commands(c, leader, 30)
    c.restart(victim)
    c.run_until(lambda: any(s == victim and isinstance(m, CatchUp) for s, _, m in c.sent))
    c.deliver_all()  # no tick: a retry timer would hold every request after the first
    assert c.machines[victim].commands == c.machines[leader].commands
    asked = [m.from_slot for s, _, m in c.sent if s == victim and isinstance(m, CatchUp)]
    assert asked == list(range(0, c.nodes[leader].applied_index, 2))  # one per answer
    assert not c.safety_problems()
