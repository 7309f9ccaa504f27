"""Read-index reads on the pure node (``multi.reads``): a confirmation round, no log entry."""

from __future__ import annotations

import pytest
from multi_harness import Cluster

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    Accept,
    Accepted,
    Decided,
    Effect,
    Heartbeat,
    HeartbeatAck,
    LogBug,
    Message,
    PersistOwnVote,
    ReadIndexRequest,
    Redirect,
    Reply,
    Role,
)
from pypaxos.multi.validate import SLOT_MAX, check_message

READ = 10_000  # request ids of reads, apart from the writes'


def _settled(
    bugs: tuple[LogBug, ...] = (), step_down_ticks: int = 20, thrifty: bool = False
) -> tuple[Cluster, int]:
    """A 3-node cluster whose leader applied one write, ``a``, everywhere."""
    cluster = Cluster(3, seed=1, bugs=bugs, step_down_ticks=step_down_ticks, thrifty_reads=thrifty)
    leader = cluster.elect()
    cluster.propose(leader, 1, b"a")
    cluster.run_until(lambda: (leader, 1) in cluster.replies and cluster.converged())
    return cluster, leader


def test_a_read_costs_one_heartbeat_round_and_no_log_entry() -> None:
    cluster, leader = _settled()
    node = cluster.nodes[leader]
    applied = node.applied_index
    effects = node.read(READ, b"get")
    assert not any(isinstance(e, Persist | PersistOwnVote | Reply) for e in effects)
    beats = [e.msg for e in effects if isinstance(e, Send)]
    assert beats and all(isinstance(m, Heartbeat) and m.read_round == 1 for m in beats)
    cluster.run(leader, effects)
    cluster.deliver_all()
    assert cluster.replies[(leader, READ)] == b"a"  # the last write, from the local state
    assert node.applied_index == applied  # no slot was used
    assert not any(isinstance(m, Accept) for _, _, m in cluster.sent[-6:])


def test_reads_asked_while_a_round_is_out_share_the_next_round() -> None:
    cluster, leader = _settled()
    node = cluster.nodes[leader]
    cluster.run(leader, node.read(READ, b"get"))
    second = node.read(READ + 1, b"get") + node.read(READ + 2, b"get")
    assert second == []  # they wait for round 1 to come back
    sent_before = len(cluster.sent)
    cluster.deliver_all()
    assert {(leader, READ + i) for i in range(3)} <= cluster.replies.keys()
    beats = [m for _, _, m in cluster.sent[sent_before:] if isinstance(m, Heartbeat)]
    assert {m.read_round for m in beats} == {2}  # one more round for both, not one each
    assert len(beats) == 2  # to each peer once


def test_an_acknowledgement_of_an_older_round_confirms_nothing_newer() -> None:
    cluster, leader = _settled()
    node = cluster.nodes[leader]
    peer = next(p for p in node.peers)
    ballot = node.leader.ballot
    old_round = node.reads.round
    cluster.run(leader, node.read(READ, b"get"))
    stale = HeartbeatAck(peer, ballot, node.applied_index, old_round)
    assert node.handle(stale) == []
    assert (leader, READ) not in cluster.replies
    fresh = HeartbeatAck(peer, ballot, node.applied_index, old_round + 1)
    assert Reply(READ, b"a") in node.handle(fresh)


def test_only_the_leader_serves_reads() -> None:
    cluster, leader = _settled()
    follower = next(i for i in cluster.nodes if i != leader)
    assert cluster.nodes[follower].read(READ, b"get") == [Redirect(READ, leader)]


def _isolate(cluster: Cluster, node_id: int) -> None:
    cluster.filter = lambda src, to, _msg: node_id not in (src, to)


SLOW_STEP_DOWN_TICKS = 10_000  # a cut-off leader keeps believing it leads while a new one serves


@pytest.mark.parametrize("thrifty", [False, True], ids=["all-peers", "thrifty"])
def test_a_deposed_leader_never_answers_and_redirects_when_it_steps_down(thrifty: bool) -> None:
    cluster, old = _settled(step_down_ticks=SLOW_STEP_DOWN_TICKS, thrifty=thrifty)
    _isolate(cluster, old)
    cluster.run_until(lambda: len(cluster.leaders()) == 2)
    new = next(i for i in cluster.leaders() if i != old)
    cluster.propose(new, 2, b"b")
    cluster.run_until(lambda: (new, 2) in cluster.replies)
    cluster.run(old, cluster.nodes[old].read(READ, b"get"))
    cluster.ticks(100)
    assert (old, READ) not in cluster.replies
    cluster.filter = None  # healed: its heartbeats are refused, and it steps down
    cluster.run_until(lambda: cluster.nodes[old].role is not Role.LEADER)
    assert (old, READ) not in cluster.replies
    assert any(n == old and r.request_id == READ for n, r in cluster.redirects)


@pytest.mark.parametrize("thrifty", [False, True], ids=["all-peers", "thrifty"])
def test_planted_read_without_confirmation_answers_stale_from_a_deposed_leader(
    thrifty: bool,
) -> None:
    bugs = (LogBug.READ_INDEX_WITHOUT_CONFIRMATION,)
    cluster, old = _settled(bugs, SLOW_STEP_DOWN_TICKS, thrifty)
    _isolate(cluster, old)
    cluster.run_until(lambda: len(cluster.leaders()) == 2)
    new = next(i for i in cluster.leaders() if i != old)
    cluster.propose(new, 2, b"b")
    cluster.run_until(lambda: (new, 2) in cluster.replies)
    cluster.run(old, cluster.nodes[old].read(READ, b"get"))
    assert cluster.replies[(old, READ)] == b"a"  # "b" completed before this read began


def _new_leader_behind(bugs: tuple[LogBug, ...]) -> tuple[Cluster, int]:
    """Leader 1 got ``x`` chosen and answered, then crashed before anyone else applied it;
    the new leader's re-proposal of ``x`` is held back, so it has not applied it yet."""
    cluster = Cluster(3, seed=3, bugs=bugs)
    first = cluster.elect()
    others = [i for i in cluster.nodes if i != first]

    def decided_only_at_first(src: int, to: int, msg: Message) -> bool:
        # the Accept reaches one follower; nothing tells the followers it was chosen
        if isinstance(msg, Accept):
            return to == others[0]
        return not isinstance(msg, Heartbeat)

    cluster.filter = decided_only_at_first
    cluster.propose(first, 1, b"x")
    cluster.run_until(lambda: (first, 1) in cluster.replies)
    cluster.crash(first)
    cluster.deliver_all()  # the heartbeats that announce the commit, filtered out
    cluster.filter = None
    cluster.hold = lambda _src, _to, msg: isinstance(msg, Accept | Accepted)
    cluster.run_until(lambda: bool(cluster.leaders()))
    new = cluster.leaders()[0]
    assert cluster.nodes[new].applied_index < cluster.nodes[new].read_barrier
    return cluster, new


def test_a_new_leader_answers_only_after_applying_what_phase_1_re_proposed() -> None:
    cluster, new = _new_leader_behind(())
    cluster.run(new, cluster.nodes[new].read(READ, b"get"))
    cluster.ticks(10)  # rounds confirmed, but the re-proposal is held
    assert (new, READ) not in cluster.replies
    cluster.hold = None
    cluster.release(lambda *_: True)
    cluster.run_until(lambda: (new, READ) in cluster.replies)
    assert cluster.replies[(new, READ)] == b"x"


def test_planted_read_before_applied_answers_a_new_leaders_stale_state() -> None:
    cluster, new = _new_leader_behind((LogBug.READ_BEFORE_APPLIED,))
    cluster.run(new, cluster.nodes[new].read(READ, b"get"))
    cluster.ticks(10)
    assert cluster.replies[(new, READ)] == b""  # "x" was acknowledged before the read began


def test_a_cluster_of_one_is_its_own_quorum() -> None:
    cluster = Cluster(1, seed=2)
    leader = cluster.elect()
    cluster.propose(leader, 1, b"a")
    cluster.run_until(lambda: (leader, 1) in cluster.replies)
    assert Reply(READ, b"a") in cluster.nodes[leader].read(READ, b"get")


def test_a_peer_cannot_confirm_a_round_beyond_any_a_node_can_reach() -> None:
    ack = HeartbeatAck(2, Ballot(1, 1), 0, SLOT_MAX + 1)
    assert check_message(ack, (1, 2, 3)) == f"read_round {SLOT_MAX + 1} is outside [0, {SLOT_MAX}]"


def _follower_reads(bugs: tuple[LogBug, ...] = ()) -> tuple[Cluster, int, int]:
    """A settled cluster with ``follower_reads``; returns it, its leader and one follower."""
    cluster = Cluster(3, seed=1, bugs=bugs, follower_reads=True)
    leader = cluster.elect()
    cluster.propose(leader, 1, b"a")
    cluster.run_until(lambda: (leader, 1) in cluster.replies and cluster.converged())
    return cluster, leader, next(i for i in cluster.nodes if i != leader)


def test_a_follower_answers_from_its_own_state_after_asking_for_a_read_index() -> None:
    cluster, leader, follower = _follower_reads()
    effects = cluster.nodes[follower].read(READ, b"get")
    assert [e.msg for e in effects if isinstance(e, Send)] == [ReadIndexRequest(follower, 1)]
    assert cluster.nodes[follower].read(READ + 1, b"get") == []  # waits for the next request
    cluster.run(follower, effects)
    cluster.deliver_all()
    assert cluster.replies[(follower, READ)] == b"a"
    assert cluster.replies[(follower, READ + 1)] == b"a"
    assert (leader, READ) not in cluster.replies  # the leader only gave an index


def _behind(cluster: Cluster, leader: int, follower: int) -> None:
    """``b`` is chosen and acknowledged, but ``follower`` hears nothing that would apply it."""

    def starve(src: int, to: int, msg: Message) -> bool:
        return to != follower or not isinstance(msg, Accept | Heartbeat | Decided)

    cluster.filter = starve
    cluster.propose(leader, 2, b"b")
    cluster.run_until(lambda: (leader, 2) in cluster.replies)


def test_a_follower_waits_until_it_applied_up_to_the_read_index() -> None:
    cluster, leader, follower = _follower_reads()
    _behind(cluster, leader, follower)
    cluster.run(follower, cluster.nodes[follower].read(READ, b"get"))
    cluster.ticks(10)
    assert (follower, READ) not in cluster.replies
    cluster.filter = None
    cluster.run_until(lambda: (follower, READ) in cluster.replies)
    assert cluster.replies[(follower, READ)] == b"b"


def test_planted_read_before_applied_answers_a_lagging_followers_stale_state() -> None:
    cluster, leader, follower = _follower_reads((LogBug.READ_BEFORE_APPLIED,))
    _behind(cluster, leader, follower)
    cluster.run(follower, cluster.nodes[follower].read(READ, b"get"))
    cluster.ticks(10)
    assert cluster.replies[(follower, READ)] == b"a"  # "b" was acknowledged before the read


def _thrifty_settled() -> tuple[Cluster, int]:
    """``_settled`` with ``MultiConfig.thrifty_reads`` (``reads``, step 2)."""
    return _settled(thrifty=True)


def _beats(effects: list[Effect]) -> list[tuple[int, Heartbeat]]:
    return [(e.to, e.msg) for e in effects if isinstance(e, Send) and isinstance(e.msg, Heartbeat)]


def test_a_thrifty_leaders_read_round_goes_to_one_peer_and_is_answered() -> None:
    cluster, leader = _thrifty_settled()
    node = cluster.nodes[leader]
    effects = node.read(READ, b"get")
    beats = _beats(effects)
    assert len(beats) == 1 and beats[0][1].read_round == node.reads.round
    cluster.run(leader, effects)
    cluster.deliver_all()
    assert cluster.replies[(leader, READ)] == b"a"


def test_a_thrifty_read_round_picks_the_peer_that_acknowledged_the_last_round_first() -> None:
    cluster, leader = _thrifty_settled()
    node = cluster.nodes[leader]
    ballot, first, second = node.leader.ballot, *sorted(node.peers)
    cluster.run(leader, node.read(READ, b"get"))
    cluster.queue.clear()  # answered by hand, the second peer first
    read_round = node.reads.round
    node.handle(HeartbeatAck(second, ballot, node.applied_index, read_round))
    node.handle(HeartbeatAck(first, ballot, node.applied_index, read_round))
    assert [to for to, _ in _beats(node.read(READ + 1, b"get"))] == [second]


def test_a_dead_thrifty_target_costs_a_tick_and_the_other_peer_takes_over() -> None:
    cluster, leader = _thrifty_settled()
    node = cluster.nodes[leader]
    beat_ticks = cluster.config.heartbeat_ticks
    assert beat_ticks > 2  # so the round's widening below cannot be the periodic heartbeat
    while node.detector.next_heartbeat - node.detector.now != beat_ticks:  # one just left
        cluster.tick()
    cluster.deliver_all()
    effects = node.read(READ, b"get")
    [(target, beat)] = _beats(effects)
    other = next(p for p in node.peers if p != target)
    cluster.crash(target)
    cluster.run(leader, effects)
    cluster.deliver_all()
    assert (leader, READ) not in cluster.replies  # only the dead target was asked
    assert node.read_round_waiting
    widened = node.tick()  # a tick later, not a heartbeat later: the round goes to every peer
    assert sorted(to for to, _ in _beats(widened)) == sorted(node.peers)
    assert {b.read_round for _, b in _beats(widened)} == {beat.read_round}
    cluster.run(leader, widened)
    cluster.deliver_all()
    assert cluster.replies[(leader, READ)] == b"a"
    assert not node.read_round_waiting
    assert [to for to, _ in _beats(node.read(READ + 1, b"get"))] == [other]
