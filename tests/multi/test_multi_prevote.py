"""Pre-vote (``multi.election``): a node back from a partition does not depose a healthy leader.

Each scenario is run with ``pre_vote`` off too where that shows the difference: the rejoining
node's ballot, raised while it was cut off, reaches the leader in a ``Nack`` and the leader
steps down.  The rules themselves: a pre-vote changes no acceptor state, a node alone never
gets a quorum of yeses, a yes is refused while a leader or a lease is alive, replies to an old
round do not count, and a dead leader is still replaced within a bounded number of ticks.
"""

from __future__ import annotations

import random

import pytest
from multi_harness import Cluster

from pypaxos.core.effects import Send
from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import (
    Heartbeat,
    MultiConfig,
    Nack,
    Node,
    Prepare,
    PreVoteReply,
    PreVoteRequest,
    Promise,
    Role,
)
from pypaxos.multi.effects import Effect

PARTITION_TICKS = 200  # several election timeouts (at most 30 ticks each) cut off


def sent(effects: list[Effect], kind: type) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and isinstance(e.msg, kind)]


def isolate_and_heal(pre_vote: bool, seed: int) -> tuple[Cluster, int, int, Ballot]:
    """Elect a leader, cut one follower off for ``PARTITION_TICKS``, heal, run on a while."""
    c = Cluster(3, seed=seed, pre_vote=pre_vote)
    leader = c.elect()
    ballot = c.nodes[leader].ballot
    follower = min(i for i in c.nodes if i != leader)
    c.filter = lambda src, to, msg: follower not in (src, to)
    c.ticks(PARTITION_TICKS)
    c.filter = None
    c.ticks(5 * c.config.election_timeout_max_ticks)
    return c, leader, follower, ballot


@pytest.mark.parametrize("seed", range(5))
def test_a_rejoining_follower_does_not_depose_the_leader(seed: int) -> None:
    c, leader, follower, ballot = isolate_and_heal(pre_vote=True, seed=seed)
    assert c.leaders() == [leader]
    assert c.nodes[leader].ballot == ballot  # no phase 1 ran anywhere
    assert c.nodes[follower].acceptor.promised <= ballot  # it never raised its ballot
    assert c.nodes[follower].leader_id == leader
    c.propose(leader, 1, b"x")
    c.run_until(lambda: c.converged() and c.nodes[follower].applied_index > 0)
    assert not c.safety_problems()


@pytest.mark.parametrize("seed", range(5))
def test_without_pre_vote_the_same_rejoin_deposes_the_leader(seed: int) -> None:
    """The control: the scenario above does show the disruption pre-vote prevents."""
    c, _leader, follower, ballot = isolate_and_heal(pre_vote=False, seed=seed)
    assert c.nodes[follower].acceptor.promised > ballot  # raised while cut off
    assert all(c.nodes[i].ballot > ballot for i in c.leaders())  # a new ballot leads
    assert not c.safety_problems()


@pytest.mark.parametrize("seed", range(10))
def test_a_dead_leader_is_still_replaced_within_bounded_ticks(seed: int) -> None:
    c = Cluster(3, seed=seed)
    leader = c.elect()
    c.crash(leader)
    # The first timer fires within the longest timeout; its pre-vote and phase 1 are two
    # round trips; one failed round (a duel, a voter not yet past stickiness) is allowed.
    bound = 2 * c.config.election_timeout_max_ticks + 8
    c.run_until(lambda: len(c.leaders()) == 1, max_ticks=bound)


def test_a_node_alone_never_gets_pre_votes_so_never_raises_its_ballot() -> None:
    node = Node(1, MultiConfig(node_ids=(1, 2, 3)), random.Random(7), KVStateMachine())
    requests = 0
    for _ in range(10 * node.config.election_timeout_max_ticks):
        effects = node.tick()
        assert not sent(effects, Prepare)
        requests += len(sent(effects, PreVoteRequest))
    assert requests >= 2 * 5  # two peers asked, at every one of several timeouts
    assert node.acceptor.promised == NULL_BALLOT
    assert node.role is Role.FOLLOWER


def test_a_quorum_of_yeses_starts_phase_1_above_every_ballot_reported() -> None:
    node = Node(1, MultiConfig(node_ids=(1, 2, 3, 4, 5)), random.Random(7), KVStateMachine())
    while not (requests := sent(node.tick(), PreVoteRequest)):
        pass
    assert sorted(s.to for s in requests) == [2, 3, 4, 5]
    request_round = requests[0].msg.request_round
    high = Ballot(9, 4)
    assert node.handle(PreVoteReply(2, request_round, True, high)) == []  # two of five
    assert node.handle(PreVoteReply(3, request_round, False, NULL_BALLOT)) == []  # a no
    prepares = sent(node.handle(PreVoteReply(5, request_round, True, NULL_BALLOT)), Prepare)
    assert sorted(s.to for s in prepares) == [2, 3, 4, 5]
    assert prepares[0].msg.ballot > high  # above the promise a voter reported
    assert node.role is Role.CANDIDATE


def test_replies_to_an_older_round_do_not_count() -> None:
    node = Node(1, MultiConfig(node_ids=(1, 2, 3)), random.Random(7), KVStateMachine())
    while not (first := sent(node.tick(), PreVoteRequest)):
        pass
    while not (second := sent(node.tick(), PreVoteRequest)):
        pass
    old, new = first[0].msg.request_round, second[0].msg.request_round
    assert old != new
    assert node.handle(PreVoteReply(2, old, True, NULL_BALLOT)) == []
    assert node.role is Role.FOLLOWER
    assert sent(node.handle(PreVoteReply(2, new, True, NULL_BALLOT)), Prepare)


def test_a_leader_heard_closes_the_round() -> None:
    node = Node(1, MultiConfig(node_ids=(1, 2, 3)), random.Random(7), KVStateMachine())
    while not (requests := sent(node.tick(), PreVoteRequest)):
        pass
    request_round = requests[0].msg.request_round
    node.handle(Heartbeat(2, Ballot(1, 2), 0))
    assert node.handle(PreVoteReply(3, request_round, True, NULL_BALLOT)) == []
    assert node.role is Role.FOLLOWER and node.leader_id == 2


def answer(node: Node, request: PreVoteRequest) -> PreVoteReply:
    (reply,) = sent(node.handle(request), PreVoteReply)
    assert isinstance(reply.msg, PreVoteReply)
    return reply.msg


def test_a_pre_vote_is_refused_while_the_leader_is_alive_and_changes_nothing() -> None:
    c = Cluster(3, seed=3)
    leader = c.elect()
    c.ticks(4)
    follower, challenger = (i for i in sorted(c.nodes) if i != leader)
    node = c.nodes[follower]
    promised, deadline = node.acceptor.promised, node.detector.deadline
    assert not answer(node, PreVoteRequest(challenger, 1)).granted  # sticky: heard the leader
    assert not answer(c.nodes[leader], PreVoteRequest(challenger, 1)).granted  # it leads
    c.crash(leader)
    c.ticks(c.config.leader_stickiness_ticks)
    reply = answer(node, PreVoteRequest(challenger, 2))
    assert reply.granted and reply.promised == promised
    assert node.acceptor.promised == promised  # no promise made
    assert node.leader_id == leader  # nor the leader forgotten
    assert node.detector.deadline >= deadline  # nor the timer pushed back by the request


def test_a_pre_vote_is_refused_inside_an_acknowledged_lease() -> None:
    config = MultiConfig(node_ids=(1, 2, 3), lease_ticks=14, leader_stickiness_ticks=2)
    node = Node(2, config, random.Random(7), KVStateMachine())
    node.handle(Heartbeat(1, Ballot(1, 1), 0))  # acknowledged: bound for lease_ticks
    node.detector.leader_contact = None  # stickiness aside: only the lease binds here
    assert not answer(node, PreVoteRequest(3, 1)).granted
    for _ in range(config.lease_ticks):
        node.tick()
    node.detector.leader_contact = None
    assert answer(node, PreVoteRequest(3, 2)).granted


def test_learners_never_ask_and_their_yes_does_not_count() -> None:
    config = MultiConfig(node_ids=(1, 2, 3), learner_ids=(4,), reconfigurable=True)
    learner = Node(4, config, random.Random(7), KVStateMachine())
    for _ in range(5 * config.election_timeout_max_ticks):
        assert not sent(learner.tick(), PreVoteRequest)
    node = Node(1, config, random.Random(7), KVStateMachine())
    while not (requests := sent(node.tick(), PreVoteRequest)):
        pass
    assert sorted(s.to for s in requests) == [2, 3]  # the voters only
    request_round = requests[0].msg.request_round
    assert not sent(node.handle(PreVoteReply(4, request_round, True, NULL_BALLOT)), Prepare)
    assert sent(node.handle(PreVoteReply(3, request_round, True, NULL_BALLOT)), Prepare)


def test_a_cluster_of_one_campaigns_at_once() -> None:
    node = Node(1, MultiConfig(node_ids=(1,)), random.Random(7), KVStateMachine())
    for _ in range(node.config.election_timeout_max_ticks):
        node.tick()
    assert node.role is Role.LEADER


def test_a_late_quorum_of_promises_closes_the_round_asked_since() -> None:
    node = Node(1, MultiConfig(node_ids=(1, 2, 3)), random.Random(7), KVStateMachine())
    while not (first := sent(node.tick(), PreVoteRequest)):
        pass
    (prepare, _) = sent(
        node.handle(PreVoteReply(2, first[0].msg.request_round, True, NULL_BALLOT)), Prepare
    )
    ballot = prepare.msg.ballot
    while not (second := sent(node.tick(), PreVoteRequest)):  # the Prepare went unanswered
        pass
    assert node.role is Role.CANDIDATE
    node.handle(Promise(2, ballot, 0, 0, 0))  # late, but a quorum with our own
    assert node.role is Role.LEADER
    node.handle(Nack(3, ballot, Ballot(ballot.round + 1, 3)))  # deposed
    assert node.role is Role.FOLLOWER
    late_yes = PreVoteReply(3, second[0].msg.request_round, True, NULL_BALLOT)
    assert not sent(node.handle(late_yes), Prepare)  # that round ended when we led
