"""Failure detection in ticks: what keeps a follower from an election and a leader in office.

Issue 7 ("no leader change under saturation"): under load a leader sends mostly ``Accept`` and
its followers answer mostly ``Accepted``; heartbeats may wait behind them.  Any message of the
leader's ballot must count as "the leader is alive" for a follower, and any answer of a follower
in the leader's ballot must count for the leader's step-down check (``multi.election``).
"""

from __future__ import annotations

import random

from pypaxos.core.effects import Send
from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import (
    Accept,
    Accepted,
    Entry,
    Heartbeat,
    HeartbeatAck,
    MultiConfig,
    Node,
    Prepare,
    Promise,
    Role,
)
from pypaxos.multi.effects import Effect

CONFIG = MultiConfig(node_ids=(1, 2, 3), pre_vote=False)  # a lone node: a timer sends Prepare
LONG_TICKS = 3 * max(CONFIG.election_timeout_max_ticks, CONFIG.step_down_ticks)


def node(node_id: int = 1) -> Node:
    return Node(node_id, CONFIG, random.Random(7), KVStateMachine())


def prepares(effects: list[Effect]) -> list[Prepare]:
    return [e.msg for e in effects if isinstance(e, Send) and isinstance(e.msg, Prepare)]


def test_a_follower_without_messages_starts_an_election() -> None:
    follower = node()
    sent = [e for _ in range(CONFIG.election_timeout_max_ticks) for e in follower.tick()]
    assert prepares(sent) and follower.role is not Role.FOLLOWER


def test_the_leaders_accepts_alone_keep_a_follower_from_an_election() -> None:
    follower, ballot = node(), Ballot(1, 2)
    sent: list[Effect] = []
    for tick in range(LONG_TICKS):
        if tick % 10 == 0:  # an Accept every 10 ticks, never a Heartbeat
            value = (Entry(2, tick, b"x"),)
            sent += follower.handle(Accept(2, ballot, tick // 10, value, 0))
        sent += follower.tick()
    assert not prepares(sent)
    assert follower.role is Role.FOLLOWER and follower.leader_id == 2


def leader_of(ballot_round: int = 1) -> tuple[Node, Ballot]:
    leader = node()
    while not prepares(leader.tick()):
        pass
    ballot = leader.leader.ballot
    leader.handle(Promise(2, ballot, 0, 0, 0))
    assert leader.role is Role.LEADER
    return leader, ballot


def test_a_leader_nobody_answers_steps_down() -> None:
    leader, _ = leader_of()
    for _ in range(CONFIG.step_down_ticks + 1):
        leader.tick()
    assert leader.role is Role.FOLLOWER


def test_a_followers_accepted_alone_keeps_the_leader_in_office() -> None:
    leader, ballot = leader_of()
    for tick in range(LONG_TICKS):
        if tick % 10 == 0:  # a command every 10 ticks, answered by Accepted only
            leader.propose(tick + 1, b"cmd")
            for slot in list(leader.leader.inflight):
                leader.handle(Accepted(2, ballot, slot))
        leader.tick()
    assert leader.role is Role.LEADER


def test_a_followers_heartbeat_ack_keeps_the_leader_in_office() -> None:
    leader, ballot = leader_of()
    for tick in range(LONG_TICKS):
        if tick % 10 == 0:
            leader.handle(HeartbeatAck(3, ballot, 0))
        leader.tick()
    assert leader.role is Role.LEADER


# -- announcing the commit index: on the next Accept, else at the next tick -----------------


def sent_of(effects: list[Effect], kind: type) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and isinstance(e.msg, kind)]


def commit_one(leader: Node, ballot: Ballot, request_id: int) -> list[Effect]:
    """Propose one command and have follower 2 accept it: the slot is chosen."""
    effects = leader.propose(request_id, b"SET k v")
    slot = max(leader.leader.inflight)
    effects += leader.synced(slot, ballot)  # our own vote is durable
    return effects + leader.handle(Accepted(2, ballot, slot))


def test_a_commit_is_not_announced_at_once_but_at_the_next_tick() -> None:
    leader, ballot = leader_of()
    for _ in range(CONFIG.heartbeat_ticks + 1):  # past the first heartbeat
        leader.tick()
    applied = leader.applied_index
    effects = commit_one(leader, ballot, 1)
    assert leader.applied_index > applied
    assert not sent_of(effects, Heartbeat)  # not one heartbeat per commit
    beats = sent_of(leader.tick(), Heartbeat)
    assert {b.to for b in beats} == {2, 3}
    assert all(b.msg.commit_index == leader.applied_index for b in beats)
    assert not sent_of(leader.tick(), Heartbeat)  # announced once, not again


def test_the_next_accept_carries_the_commit_and_no_heartbeat_follows() -> None:
    leader, ballot = leader_of()
    for _ in range(CONFIG.heartbeat_ticks + 1):
        leader.tick()
    commit_one(leader, ballot, 1)
    committed = leader.applied_index
    accepts = sent_of(leader.propose(2, b"SET k w"), Accept)
    assert accepts and all(a.msg.commit_index == committed for a in accepts)
    assert not sent_of(leader.tick(), Heartbeat)  # the Accept told the followers already


# -- retransmission: only what has been in flight for a heartbeat ---------------------------


def test_a_heartbeat_resends_only_accepts_a_heartbeat_old_and_only_to_who_has_not_voted() -> None:
    leader, ballot = leader_of()
    while not sent_of(leader.tick(), Heartbeat):  # the first heartbeat
        pass
    for _ in range(CONFIG.heartbeat_ticks - 1):  # the next heartbeat is one tick away
        assert not sent_of(leader.tick(), Heartbeat)
    first = sent_of(leader.propose(1, b"SET k v"), Accept)
    slot = first[0].msg.slot
    assert {a.to for a in first} == {2, 3}
    beat = leader.tick()
    assert sent_of(beat, Heartbeat)  # a heartbeat, one tick after the Accept left ...
    assert not sent_of(beat, Accept)  # ... does not send it again
    leader.handle(Accepted(2, ballot, slot))  # 2 voted; our own vote is not durable yet
    resent: list[Send] = []
    for _ in range(CONFIG.heartbeat_ticks):
        resent += sent_of(leader.tick(), Accept)
    # A heartbeat later the slot is still undecided: the Accept goes again, to 3 only.
    assert [(a.to, a.msg.slot, a.msg.value) for a in resent] == [(3, slot, first[0].msg.value)]
