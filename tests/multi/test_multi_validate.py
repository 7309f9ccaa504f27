"""Peer messages with impossible ids or numbers are refused; every real message passes."""

from __future__ import annotations

import pytest
from multi_harness import Cluster, LogMachine

from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.multi import Node
from pypaxos.multi.log import Entry, Vote
from pypaxos.multi.messages import (
    Accept,
    CatchUp,
    Decided,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    PreVoteReply,
    PreVoteRequest,
    Promise,
    SnapshotChunk,
)
from pypaxos.multi.validate import ROUND_MAX, SLOT_MAX, check_message
from pypaxos.sim.kv import KVSettings, run_kv

MEMBERS = (1, 2, 3)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (SnapshotChunk(99, 5, 0, 1, b"forged"), "sender 99 is not a member"),
        (Heartbeat(99, Ballot(1, 99), 0), "sender 99 is not a member"),
        (Prepare(1, Ballot(2**64 - 1, 1), 0), "ballot round"),
        (Prepare(1, Ballot(-5, 1), 0), "ballot round"),
        (Accept(1, Ballot(3, 7), 1, (), 0), "owned by a non-member"),
        (Nack(2, Ballot(1, 1), Ballot(ROUND_MAX + 1, 2)), "ballot round"),
        (Promise(2, Ballot(1, 1), 0, 0, 0, (Vote(SLOT_MAX + 1, Ballot(1, 1), ()),)), "vote slot"),
        (CatchUp(2, -1), "from_slot"),
        (Decided(2, SLOT_MAX, ((),) * 2), "last slot"),
        (Heartbeat(1, Ballot(1, 1), 2**63), "commit_index"),
        (PreVoteRequest(99, 1), "sender 99 is not a member"),
        (PreVoteRequest(2, -1), "request_round"),
        (PreVoteReply(2, SLOT_MAX + 1, True, NULL_BALLOT), "request_round"),
        (PreVoteReply(2, 1, True, Ballot(ROUND_MAX + 1, 2)), "ballot round"),
        (PreVoteReply(2, 1, False, Ballot(3, 7)), "owned by a non-member"),
    ],
)
def test_impossible_messages_are_refused_with_a_reason(msg: Message, reason: str) -> None:
    refused = check_message(msg, MEMBERS)
    assert refused is not None and reason in refused


@pytest.mark.parametrize(
    "msg",
    [
        Prepare(1, Ballot(ROUND_MAX, 3), SLOT_MAX),
        Nack(2, NULL_BALLOT, Ballot(4, 1)),
        Decided(3, 0, (), 0),
        PreVoteRequest(2, SLOT_MAX),
        PreVoteReply(3, 0, True, Ballot(ROUND_MAX, 1)),
    ],
)
def test_messages_at_the_bounds_pass(msg: Message) -> None:
    assert check_message(msg, MEMBERS) is None


def test_every_message_of_simulated_runs_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Message] = []
    handle = Node.handle

    def checked(node: Node, msg: Message) -> object:
        assert check_message(msg, node.config.node_ids) is None, msg
        seen.append(msg)
        return handle(node, msg)

    monkeypatch.setattr(Node, "handle", checked)
    for seed in range(3):
        assert not run_kv(KVSettings(ops=60), seed).violations
    kinds = {type(m).__name__ for m in seen}
    assert kinds >= {"Prepare", "Promise", "Accept", "Heartbeat", "PreVoteRequest", "PreVoteReply"}


def test_a_node_ignores_what_no_correct_peer_sends() -> None:
    cluster = Cluster(3)
    leader = cluster.elect()
    cluster.propose(leader, 1, b"x")
    cluster.run_until(lambda: all(n.replica.decided for n in cluster.nodes.values()))
    follower = next(i for i in cluster.nodes if i != leader)
    node = cluster.nodes[follower]
    applied = node.replica.applied_index
    decided_slot = max(node.replica.decided)
    other = (Entry(3, 99, b"forged"),)
    assert node.replica.decided[decided_slot] != other
    # A value contradicting a decided slot, a snapshot nobody asked for, and one that asked
    # for but unreadable: each ignored (no effect, nothing applied) and counted.
    assert node.handle(Decided(3, decided_slot, (other,), decided_slot + 1)) == []
    assert node.handle(SnapshotChunk(3, applied + 5, 0, 1, LogMachine().snapshot())) == []
    node.catch_up_asked = 3
    assert node.handle(SnapshotChunk(3, applied + 5, 0, 1, b"\xc1 not msgpack")) == []
    assert node.refused_messages == 3
    assert "does not restore" in node.last_refusal
    # The numbers multi.validate refuses are refused by the node itself, before any role sees
    # them: a promise to this ballot could never be persisted.
    promised = node.acceptor.promised
    assert node.handle(Prepare(3, Ballot(2**64 - 1, 3), 0)) == []
    assert node.refused_messages == 4 and "ballot round" in node.last_refusal
    assert node.acceptor.promised == promised
    assert node.replica.applied_index == applied
    assert node.replica.decided[decided_slot] != other
