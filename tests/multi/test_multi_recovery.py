"""Persisted records: what they hold, their order, and rebuilding a node from them."""

from __future__ import annotations

import random

import msgspec
import pytest
from multi_harness import Cluster, LogMachine

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    Accept,
    Accepted,
    AcceptRecord,
    Effect,
    Entry,
    Heartbeat,
    LogBug,
    MultiConfig,
    Nack,
    Node,
    PersistOwnVote,
    Prepare,
    Promise,
    PromiseRecord,
    Record,
    Role,
    SnapshotRecord,
    Vote,
)

CONFIG = MultiConfig(node_ids=(1, 2, 3))
VALUE = (Entry(2, 7, b"x"),)


def fresh(config: MultiConfig = CONFIG) -> Node:
    return Node(1, config, random.Random(0), LogMachine())


def records_of(effects: list[Effect]) -> list[Record]:
    return [e.state for e in effects if isinstance(e, Persist)]


def test_a_promise_is_persisted_before_it_is_sent_and_survives_recovery() -> None:
    node = fresh()
    effects = node.handle(Prepare(2, Ballot(5, 2), 0))
    assert isinstance(effects[0], Persist)
    assert effects[1] == Send(2, Promise(1, Ballot(5, 2), 0, 0, 0, ()))
    records = records_of(effects)
    assert records == [PromiseRecord(Ballot(5, 2))]
    recovered = Node.recover(1, CONFIG, random.Random(0), LogMachine(), records)
    assert recovered.handle(Prepare(3, Ballot(4, 3), 0)) == [
        Send(3, Nack(1, Ballot(4, 3), Ballot(5, 2)))
    ]
    assert recovered.handle(Accept(3, Ballot(4, 3), 0, VALUE, 0)) == [
        Send(3, Nack(1, Ballot(4, 3), Ballot(5, 2)))
    ]


def test_accepted_values_survive_recovery_and_are_reported_in_promises() -> None:
    node = fresh()
    effects = node.handle(Accept(2, Ballot(1, 2), 3, VALUE, 0))
    assert records_of(effects) == [AcceptRecord(3, Ballot(1, 2), VALUE)]
    assert Send(2, Accepted(1, Ballot(1, 2), 3)) in effects
    recovered = Node.recover(1, CONFIG, random.Random(0), LogMachine(), records_of(effects))
    assert recovered.acceptor.promised == Ballot(1, 2)  # accepting implies promising
    reply = recovered.handle(Prepare(3, Ballot(2, 3), 0))
    promise = reply[-1]
    assert isinstance(promise, Send) and isinstance(promise.msg, Promise)
    assert promise.msg.votes == (Vote(3, Ballot(1, 2), VALUE),)


def test_records_round_trip_through_msgpack_as_a_wal_would_store_them() -> None:
    records: list[Record] = [
        PromiseRecord(Ballot(1, 2)),
        AcceptRecord(4, Ballot(1, 2), VALUE),
        SnapshotRecord(3, (b"state",)),
    ]
    encoded = [msgspec.msgpack.encode(r) for r in records]
    assert [msgspec.msgpack.decode(e, type=Record) for e in encoded] == records
    assert max(len(e) for e in encoded[:2]) < 64  # small, appendable records


def test_a_snapshot_record_restores_the_machine_and_drops_older_accepts() -> None:
    records: list[Record] = [
        AcceptRecord(0, Ballot(0, 2), VALUE),
        AcceptRecord(1, Ballot(0, 2), VALUE),
        SnapshotRecord(1, (msgspec.msgpack.encode([b"x"]),)),
    ]
    machine = LogMachine()
    node = Node.recover(1, CONFIG, random.Random(0), machine, records)
    assert machine.commands == [b"x"]
    assert node.applied_index == 1
    assert node.acceptor.log_start == 1
    assert sorted(node.acceptor.accepted) == [1]


def test_every_effect_list_persists_before_it_sends() -> None:
    class Checking(Cluster):
        def run(self, node_id: int, effects: list[Effect]) -> None:
            kinds = [isinstance(e, Persist) for e in effects]
            assert kinds == sorted(kinds, reverse=True), effects
            super().run(node_id, effects)

    c = Checking(3, seed=31)
    leader = c.elect()
    for request_id in range(20):
        c.propose(leader, request_id, b"c")
        c.tick()
    c.run_until(lambda: (leader, 19) in c.replies)


def test_the_whole_cluster_restarts_from_its_disks_and_keeps_its_log() -> None:
    c = Cluster(3, seed=32, snapshot_every_slots=4)
    leader = c.elect()
    for request_id in range(15):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: all(len(c.machines[i].commands) == 15 for i in c.up()))
    before = list(c.machines[leader].commands)
    for node_id in sorted(c.nodes):
        c.crash(node_id)
    for node_id in sorted(c.nodes):
        c.restart(node_id)
    leader = c.elect()
    c.propose(leader, 99, b"after")
    c.run_until(lambda: c.converged() and (leader, 99) in c.replies)
    for node_id in c.up():
        assert c.machines[node_id].commands == [*before, b"after"]
    assert not c.safety_problems()


def forget_promise_scenario(bugs: tuple[LogBug, ...]) -> Cluster:
    """L's Accept(X) to B is delayed; A becomes leader with B's promise and proposes Y (its
    Accept to B delayed too); B restarts; both delayed Accepts then reach B."""
    c = Cluster(3, seed=33, bugs=bugs, step_down_ticks=1000)
    old = c.elect()
    a, b = (i for i in sorted(c.nodes) if i != old)
    c.hold = lambda src, to, msg: isinstance(msg, Accept) and to == b
    c.filter = lambda src, to, msg: (src != old and to != old) or isinstance(msg, Accepted)
    c.propose(old, 1, b"X")
    c.deliver_all()
    no_prepare_from_b = c.filter
    c.filter = lambda src, to, msg: (
        no_prepare_from_b(src, to, msg) and not (src == b and isinstance(msg, Prepare))
    )
    c.run_until(lambda: c.nodes[a].role is Role.LEADER)
    c.propose(a, 2, b"Y")
    c.deliver_all()
    c.crash(b)
    c.restart(b)
    c.release(lambda src, to, msg: src == old)
    c.deliver_all()
    c.release(lambda src, to, msg: src == a)
    c.deliver_all()
    return c


def test_a_recovered_node_keeps_its_promise() -> None:
    c = forget_promise_scenario(())
    assert not c.safety_problems()
    assert [e.command for e in c.chosen[0]] == [b"Y"]


def test_planted_forget_promise_on_recover_lets_two_values_be_chosen() -> None:
    c = forget_promise_scenario((LogBug.FORGET_PROMISE_ON_RECOVER,))
    assert "slot 0: 2 values chosen" in c.safety_problems()


@pytest.mark.parametrize("records", [[PromiseRecord(Ballot(1, 1))], []])
def test_recover_builds_a_follower(records: list[Record]) -> None:
    node = Node.recover(1, CONFIG, random.Random(0), LogMachine(), records)
    assert node.role is Role.FOLLOWER and node.leader_id is None


def test_the_leader_sends_accept_before_its_own_vote_is_durable_and_counts_it_only_after() -> None:
    c = Cluster(3, seed=5)
    leader = c.elect()
    c.deliver_all()
    c.own_vote_sync_ticks = 10**6  # the leader's own fsync does not complete by itself
    c.crash(next(i for i in c.up() if i != leader))  # one follower left: it and us are a quorum
    effects = c.nodes[leader].propose(1, b"x")
    own = [e for e in effects if isinstance(e, PersistOwnVote)]
    assert len(own) == 1 and not [e for e in effects if isinstance(e, Persist)]
    assert [e.msg for e in effects if isinstance(e, Send)], "the Accepts leave with the record"
    slot = own[0].record.slot
    c.run(leader, effects)
    c.ticks(20)  # the follower's durable vote alone is not a quorum: nothing chosen, no reply
    assert (leader, 1) not in c.replies
    assert c.nodes[leader].applied_index <= slot
    assert not any(
        isinstance(m, Accept | Heartbeat) and m.commit_index > slot for _, _, m in c.sent
    )
    c.crash(leader)  # the unsynced vote is lost with the page cache
    assert not any(isinstance(r, AcceptRecord) and r.slot == slot for r in c.disks[leader])
    c.restart(leader)
    c.own_vote_sync_ticks = 0
    c.run_until(lambda: bool(c.leaders()) and c.converged())


def test_the_leader_counts_its_own_vote_once_synced() -> None:
    c = Cluster(3, seed=5)
    leader = c.elect()
    c.deliver_all()
    c.own_vote_sync_ticks = 10**6
    c.crash(next(i for i in c.up() if i != leader))
    c.propose(leader, 1, b"x")
    c.ticks(5)
    assert (leader, 1) not in c.replies
    c.sync_own_votes(leader)
    c.ticks(5)
    assert c.replies[(leader, 1)] == b"1"
