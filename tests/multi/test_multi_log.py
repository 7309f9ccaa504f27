"""The replicated log in a healthy cluster: election, order, batching, window, busy, replies."""

from __future__ import annotations

from multi_harness import Cluster

from pypaxos.multi import Accept, Accepted, Busy, Redirect, Role


def test_one_leader_is_elected_and_everyone_follows_it() -> None:
    c = Cluster(5, seed=3)
    leader = c.elect()
    c.ticks(20)
    assert c.leaders() == [leader]
    for node_id, node in c.nodes.items():
        assert node.leader_id == leader
        assert node.ballot == c.nodes[leader].ballot
        assert node.role is (Role.LEADER if node_id == leader else Role.FOLLOWER)


def test_commands_are_applied_once_in_the_same_order_everywhere() -> None:
    c = Cluster(3, seed=1)
    leader = c.elect()
    for request_id in range(60):
        c.propose(leader, request_id, f"c{request_id}".encode())
        if request_id % 7 == 0:
            c.tick()
    c.run_until(lambda: all(len(c.machines[i].commands) == 60 for i in c.up()))
    c.ticks(10)
    expected = c.machines[leader].commands
    assert sorted(expected) == sorted(f"c{r}".encode() for r in range(60))  # each exactly once
    for node_id in c.up():
        assert c.machines[node_id].commands == expected
        assert c.nodes[node_id].applied_index == c.nodes[leader].applied_index
    # Only the leader that took the commands answers, with the command's position in the log.
    assert {node for node, _ in c.replies} == {leader}
    for request_id in range(60):
        position = int(c.replies[(leader, request_id)])
        assert expected[position - 1] == f"c{request_id}".encode()
    assert not c.safety_problems()


def test_followers_redirect_clients_to_the_leader() -> None:
    c = Cluster(3, seed=2)
    leader = c.elect()
    c.ticks(5)
    follower = next(i for i in c.nodes if i != leader)
    assert c.nodes[follower].propose(7, b"x") == [Redirect(7, leader)]


def test_a_slot_holds_a_batch_of_the_commands_that_queued_up() -> None:
    c = Cluster(3, seed=4, window_slots=1)
    leader = c.elect()
    for request_id in range(10):
        c.propose(leader, request_id, f"c{request_id}".encode())
    c.run_until(lambda: len(c.machines[leader].commands) == 10)
    sizes = [len(c.chosen[s]) for s in sorted(c.chosen) if c.chosen[s]]
    assert sizes == [1, 9]  # the first went out alone; the rest waited and share a slot


def test_batches_respect_the_command_limit() -> None:
    c = Cluster(3, seed=4, window_slots=1, batch_max_commands=4)
    leader = c.elect()
    for request_id in range(10):
        c.propose(leader, request_id, b"c")
    c.run_until(lambda: len(c.machines[leader].commands) == 10)
    assert [len(c.chosen[s]) for s in sorted(c.chosen) if c.chosen[s]] == [1, 4, 4, 1]


def test_the_window_bounds_the_slots_in_flight() -> None:
    c = Cluster(3, seed=5, window_slots=3)
    leader = c.elect()
    c.filter = lambda src, to, msg: not isinstance(msg, Accepted)  # nothing gets decided
    for request_id in range(20):
        c.propose(leader, request_id, b"c")
        c.tick()
    proposed_slots = {m.slot for s, _, m in c.sent if s == leader and isinstance(m, Accept)}
    commit = c.nodes[leader].commit_index
    assert proposed_slots == set(range(commit, commit + 3))
    c.filter = None
    c.run_until(lambda: len(c.machines[leader].commands) == 20)


def test_a_full_queue_answers_busy() -> None:
    c = Cluster(3, seed=6, window_slots=1, queue_max_commands=3)
    leader = c.elect()
    c.filter = lambda src, to, msg: not isinstance(msg, Accepted)
    for request_id in range(5):  # one goes into the slot, three queue, the fifth is refused
        c.propose(leader, request_id, b"c")
    assert c.busy == [4]
    assert c.nodes[leader].propose(9, b"c") == [Busy(9)]
    c.filter = None
    c.run_until(lambda: len(c.machines[leader].commands) == 4)
    assert sorted(r for n, r in c.replies) == [0, 1, 2, 3]


def test_a_duplicate_request_id_in_flight_is_taken_once() -> None:
    c = Cluster(3, seed=7)
    leader = c.elect()
    c.propose(leader, 1, b"a")
    c.propose(leader, 1, b"a")
    c.run_until(lambda: (leader, 1) in c.replies)
    c.ticks(5)
    assert c.machines[leader].commands == [b"a"]


def test_a_single_node_cluster_decides_alone() -> None:
    c = Cluster(1, seed=8)
    leader = c.elect()
    for request_id in range(5):
        c.propose(leader, request_id, b"c")
    assert len(c.machines[leader].commands) == 5
    assert len(c.replies) == 5


def test_propose_many_fills_one_slot_and_answers_like_propose() -> None:
    c = Cluster(3, seed=9, window_slots=2, queue_max_commands=5)
    leader = c.elect()
    c.filter = lambda src, to, msg: not isinstance(msg, Accepted)  # nothing gets decided
    effects = c.nodes[leader].propose_many([(1, b"a"), (2, b"b"), (2, b"b"), (3, b"c")])
    accepts = [e.msg for e in effects if isinstance(getattr(e, "msg", None), Accept)]
    assert {a.slot for a in accepts} == {accepts[0].slot}  # all three (once each) in one slot
    assert [e.command for e in accepts[0].value] == [b"a", b"b", b"c"]
    c.run(leader, effects)
    # All seven are queued before the window is filled: the queue holds five, two are refused.
    more = c.nodes[leader].propose_many([(r, b"x") for r in range(10, 17)])
    assert [e for e in more if isinstance(e, Busy)] == [Busy(15), Busy(16)]
    c.run(leader, more)
    follower = next(i for i in c.nodes if i != leader)
    one_by_one = c.nodes[follower].propose(7, b"x") + c.nodes[follower].propose(8, b"y")
    assert c.nodes[follower].propose_many([(7, b"x"), (8, b"y")]) == one_by_one
    assert all(isinstance(e, Redirect) for e in one_by_one)
    c.filter = None
    c.run_until(lambda: len(c.machines[leader].commands) == 8)
    assert not c.safety_problems()
