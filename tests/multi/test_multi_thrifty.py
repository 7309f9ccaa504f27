"""Thrifty leaders: each Accept to a quorum's worth of peers, the others catch up from heartbeats.

``MultiConfig.thrifty`` (``multi.leader``, "Thrifty"): which peers get an ``Accept`` is a
message-scheduling choice, so the safety properties are the chaos tests' (run with it on there
too); these check what thrifty itself promises: the fewest peers at first, the quickest voters
kept, a silent target replaced a heartbeat later, a slow one at the next probe, and a peer left
out still learns everything.
"""

from __future__ import annotations

import random

from multi_harness import Cluster

from pypaxos.core.effects import Send
from pypaxos.kv import KVStateMachine
from pypaxos.multi import (
    Accept,
    Accepted,
    CatchUp,
    Decided,
    HeartbeatAck,
    MultiConfig,
    Node,
    Prepare,
    Promise,
)
from pypaxos.multi.effects import Effect
from pypaxos.multi.node import THRIFTY_PROBE_HEARTBEATS


def accepts_to(effects: list[Effect]) -> list[int]:
    return sorted(e.to for e in effects if isinstance(e, Send) and isinstance(e.msg, Accept))


def leader_of(n: int, promisers: list[int]) -> Node:
    # A lone node: no pre-vote to wait for, its timer sends Prepare (``multi.election``).
    config = MultiConfig(node_ids=tuple(range(1, n + 1)), thrifty=True, pre_vote=False)
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


def test_a_peer_left_out_learns_every_slot_through_catch_up_and_votes_only_on_probes() -> None:
    c = Cluster(3, seed=5, thrifty=True)
    leader = c.elect()
    for request_id in range(40):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: (leader, 39) in c.replies and c.converged())
    followers = [i for i in c.nodes if i != leader]
    slots_to = {
        p: {m.slot for s, to, m in c.sent if s == leader and to == p and isinstance(m, Accept)}
        for p in followers
    }
    target, left_out = sorted(followers, key=lambda p: -len(slots_to[p]))
    assert slots_to[target] == set(range(c.nodes[leader].applied_index))  # every slot
    # The left-out peer got only the probes: one slot per THRIFTY_PROBE_HEARTBEATS heartbeats.
    probes = len(slots_to[left_out])
    assert 1 <= probes <= 1 + 40 // (THRIFTY_PROBE_HEARTBEATS * c.config.heartbeat_ticks)
    assert c.machines[left_out].commands == c.machines[leader].commands
    assert any(s == left_out and isinstance(m, CatchUp) for s, _, m in c.sent)
    assert any(to == left_out and isinstance(m, Decided) for _, to, m in c.sent)
    assert not c.safety_problems()


def test_a_probe_hands_the_target_role_to_a_quicker_peer() -> None:
    leader = leader_of(3, [2])
    ballot = leader.leader.ballot
    interval = THRIFTY_PROBE_HEARTBEATS * leader.config.heartbeat_ticks

    def commit(request_id: int, voter: int) -> list[int]:
        sent = leader.propose(request_id, b"SET k v")
        slot = max(leader.leader.inflight)
        leader.synced(slot, ballot)
        leader.handle(Accepted(voter, ballot, slot))
        assert leader.applied_index == slot + 1
        return accepts_to(sent)

    assert commit(1, 2) == [2]

    def tick() -> None:
        leader.handle(HeartbeatAck(2, ballot, 0))  # 2 answers: the leader stays in office
        leader.tick()

    for _ in range(interval - 1):
        tick()
    assert commit(2, 2) == [2]  # not yet
    tick()
    assert commit(3, 3) == [2, 3]  # the probe; 3 voted first (2 is slow but alive)
    assert commit(4, 3) == [3]  # 3 is the target now
    assert commit(5, 3) == [3]  # and the next probe is an interval away
