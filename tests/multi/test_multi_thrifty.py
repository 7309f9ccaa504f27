"""Thrifty leaders: each Accept to a quorum's worth of peers, the others catch up from heartbeats.

``MultiConfig.thrifty`` (``multi.leader``, "Thrifty"): which peers get an ``Accept`` is a
message-scheduling choice, so the safety properties are the chaos tests' (run with it on there
too); these check what thrifty itself promises: the fewest peers at first, the quickest voters
kept, a silent target replaced a heartbeat later, and a peer left out still learns everything.
"""

from __future__ import annotations

import random

from multi_harness import Cluster

from pypaxos.core.effects import Send
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Accept, Accepted, CatchUp, Decided, MultiConfig, Node, Prepare, Promise
from pypaxos.multi.effects import Effect


def accepts_to(effects: list[Effect]) -> list[int]:
    return sorted(e.to for e in effects if isinstance(e, Send) and isinstance(e.msg, Accept))


def leader_of(n: int, promisers: list[int]) -> Node:
    config = MultiConfig(node_ids=tuple(range(1, n + 1)), thrifty=True)
    leader = Node(1, config, random.Random(3), KVStateMachine())
    while not any(isinstance(e, Send) and isinstance(e.msg, Prepare) for e in leader.tick()):
        pass
    for peer in promisers:
        leader.handle(Promise(peer, leader.leader.ballot, 0, 0, 0))
    assert leader.leader.targets, "no quorum of promises"
    return leader


def test_each_accept_goes_to_the_fewest_peers_that_make_a_quorum_with_the_leader() -> None:
    assert accepts_to(leader_of(3, [3]).propose(1, b"SET k v")) == [3]  # the promiser
    assert accepts_to(leader_of(5, [4, 2]).propose(1, b"SET k v")) == [2, 4]
    classic = Node(1, MultiConfig(node_ids=(1, 2, 3)), random.Random(3), KVStateMachine())
    assert not classic.config.thrifty  # the protocol's own default stays the classic one


def test_a_silent_target_is_replaced_by_whoever_votes_a_heartbeat_later() -> None:
    leader = leader_of(3, [2])
    ballot = leader.leader.ballot
    first = leader.propose(1, b"SET k v")
    slot = max(leader.leader.inflight)
    assert accepts_to(first) == [2]
    leader.synced(slot, ballot)  # our own vote is durable; 2 never answers
    resent: list[int] = []
    for _ in range(2 * leader.config.heartbeat_ticks):
        resent += accepts_to(leader.tick())
    assert resent == [2, 3]  # undecided a heartbeat on: to every peer that has not voted
    leader.handle(Accepted(3, ballot, slot))
    assert leader.applied_index == slot + 1  # chosen with 3's vote ...
    assert accepts_to(leader.propose(2, b"SET k w")) == [3]  # ... and 3 is the target now


def test_the_current_targets_stay_when_more_peers_vote_than_needed() -> None:
    leader = leader_of(3, [2])
    ballot = leader.leader.ballot
    leader.propose(1, b"SET k v")
    slot = max(leader.leader.inflight)
    for _ in range(2 * leader.config.heartbeat_ticks):
        leader.tick()  # the Accept went to 3 too
    leader.handle(Accepted(3, ballot, slot))
    leader.handle(Accepted(2, ballot, slot))  # chosen on two followers, not on our vote
    assert leader.applied_index == slot + 1
    assert accepts_to(leader.propose(2, b"SET k w")) == [2]  # no flapping to 3


def test_a_peer_left_out_learns_every_slot_through_catch_up_and_votes_on_none() -> None:
    c = Cluster(3, seed=5, thrifty=True)
    leader = c.elect()
    for request_id in range(40):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: (leader, 39) in c.replies and c.converged())
    accepts = {to for src, to, m in c.sent if src == leader and isinstance(m, Accept)}
    left_out = next(i for i in c.nodes if i != leader and i not in accepts)
    assert len(accepts) == 1  # one follower voted on every slot; the other on none
    assert c.machines[left_out].commands == c.machines[leader].commands
    assert any(s == left_out and isinstance(m, CatchUp) for s, _, m in c.sent)
    assert any(to == left_out and isinstance(m, Decided) for _, to, m in c.sent)
    assert not c.safety_problems()
