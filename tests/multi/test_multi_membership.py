"""Reconfiguration (``multi.membership``): learners, promote, remove, replace, refusals, recovery,
and random runs with membership changes under loss and crashes, safe without bugs and caught
with each planted reconfiguration bug."""

from __future__ import annotations

import random

import pytest
from multi_harness import Cluster, LogMachine, reconfig_chaos

from pypaxos.core.types import Ballot
from pypaxos.multi import LogBug, MultiConfig, Node, Role, capture
from pypaxos.multi.log import Entry, Vote
from pypaxos.multi.membership import (
    MEMBER_ADDRESS_BYTES_MAX,
    AddLearner,
    Configuration,
    MemberAddress,
    Membership,
    MembershipChange,
    MembershipRefused,
    MembershipState,
    Promote,
    RefusalReason,
    Remove,
    Replace,
    change_entry,
    decode_configuration,
    decode_membership_state,
    encode_membership_state,
    next_configuration,
)
from pypaxos.multi.messages import Promise

WINDOW = 4
RUN = {
    "drop_rate": 0.3,
    "crash_rate": 0.05,
    "snapshot_every_slots": 4,
    "window_slots": 6,
    "log_window_slots": 16,
    "catch_up_max_slots": 4,
    "change_rate": 0.15,
    "thrifty": True,
}


def cluster(spares: int = 2, **config: int) -> tuple[Cluster, int]:
    c = Cluster(3, seed=1, spares=spares, window_slots=WINDOW, **config)
    return c, c.elect()


def change(c: Cluster, leader: int, request_id: int, what: object) -> bytes | MembershipRefused:
    """Propose ``what`` at ``leader`` and run until it is answered."""
    c.refusals.clear()
    c.propose_change(leader, request_id, what)  # type: ignore[arg-type]
    if c.refusals:
        return c.refusals[-1][1]
    c.run_until(lambda: (leader, request_id) in c.replies or bool(c.refusals))
    return c.replies[(leader, request_id)]


def settle(c: Cluster, leader: int, first_request: int, count: int) -> None:
    """Enough client slots that a pending configuration comes into force everywhere."""
    for i in range(count):
        c.propose(leader, first_request + i, f"w{i}".encode())
        c.ticks(2)
    c.run_until(c.converged)


def test_next_configuration_checks_each_change() -> None:
    base = Configuration(3, (1, 2, 3), (4,))
    assert next_configuration(base, AddLearner(5)) == Configuration(4, (1, 2, 3), (4, 5))
    assert next_configuration(base, Promote(4)) == Configuration(4, (1, 2, 3, 4), ())
    assert next_configuration(base, Remove(2)) == Configuration(4, (1, 3), (4,))
    assert next_configuration(base, Replace(3, 4)) == Configuration(4, (1, 2, 4), ())
    refusals = {
        AddLearner(2): RefusalReason.ALREADY_MEMBER,
        AddLearner(-1): RefusalReason.BAD_NODE_ID,
        Promote(2): RefusalReason.NOT_A_LEARNER,
        Remove(9): RefusalReason.UNKNOWN_MEMBER,
        Replace(4, 2): RefusalReason.UNKNOWN_MEMBER,
        Replace(1, 2): RefusalReason.NOT_A_LEARNER,
    }
    for what, reason in refusals.items():
        refused = next_configuration(base, what)
        assert isinstance(refused, MembershipRefused) and refused.reason is reason
    alone = next_configuration(Configuration(0, (1,)), Remove(1))
    assert isinstance(alone, MembershipRefused) and alone.reason is RefusalReason.NO_VOTER_LEFT


def test_a_change_governs_alpha_slots_after_its_own_and_one_at_a_time() -> None:
    m = Membership(Configuration(0, (1, 2, 3)), alpha_slots=4)
    entry = change_entry(7, MembershipChange(1, Configuration(1, (1, 2, 3), (4,))))
    _, took = m.apply(10, entry.command)
    assert took and m.state.config_at(13).epoch == 0 and m.state.config_at(14).epoch == 1
    assert [c.epoch for c in m.state.governing_from(11)] == [0, 1]
    second = change_entry(8, MembershipChange(1, Configuration(2, (1, 2, 3), ())))
    assert m.apply(11, second.command)[1] is False  # another is pending: ignored everywhere
    m.fold(14)
    assert m.state == MembershipState(Configuration(1, (1, 2, 3), (4,)), None, 14)  # from 14 on
    assert m.apply(20, entry.command)[1] is False  # not the next epoch
    assert m.apply(20, b"garbage") == (None, False)


def test_add_promote_remove_and_replace_end_to_end() -> None:
    c, leader = cluster()
    reply = change(c, leader, 100, AddLearner(4))
    assert isinstance(reply, bytes) and decode_configuration(reply).learners == (4,)
    refused = change(c, leader, 101, Promote(4))
    assert isinstance(refused, MembershipRefused)
    assert refused.reason is RefusalReason.CHANGE_IN_FLIGHT  # the first is not in force yet
    settle(c, leader, 1000, WINDOW + 2)
    assert c.nodes[4].role is Role.FOLLOWER and c.nodes[4].applied_index == c.nodes[1].applied_index
    reply = change(c, leader, 102, Replace(3 if leader != 3 else 2, 4))
    assert isinstance(reply, bytes)
    settle(c, c.elect(), 2000, WINDOW + 2)
    voters = c.nodes[c.elect()].members().latest.voters
    assert 4 in voters and len(voters) == 3
    assert c.safety_problems() == []


def test_refusals_not_leader_unknown_and_behind() -> None:
    c, leader = cluster(promote_lag_max_slots=2)
    c.ticks(5)  # the followers hear of the leader
    follower = next(i for i in (1, 2, 3) if i != leader)
    refused = change(c, follower, 1, AddLearner(4))
    assert isinstance(refused, MembershipRefused) and refused.reason is RefusalReason.NOT_LEADER
    assert refused.leader_id == leader
    refused = change(c, leader, 2, Remove(9))
    assert isinstance(refused, MembershipRefused)
    assert refused.reason is RefusalReason.UNKNOWN_MEMBER
    # A learner that never answered (down) is behind: its promotion is refused.
    c.crash(4)
    assert isinstance(change(c, leader, 3, AddLearner(4)), bytes)
    settle(c, leader, 100, WINDOW + 2)
    refused = change(c, leader, 4, Promote(4))
    assert isinstance(refused, MembershipRefused)
    assert refused.reason is RefusalReason.LEARNER_BEHIND


def test_promote_before_caught_up_is_a_planted_bug() -> None:
    c, leader = cluster(promote_lag_max_slots=2, bugs=[LogBug.PROMOTE_BEFORE_CAUGHT_UP])  # type: ignore[arg-type]
    c.crash(4)
    assert isinstance(change(c, leader, 3, AddLearner(4)), bytes)
    settle(c, leader, 100, WINDOW + 2)
    assert isinstance(change(c, leader, 4, Promote(4)), bytes)  # accepted: the learner is behind


def test_learners_and_outsiders_never_campaign() -> None:
    c, leader = cluster()
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    c.crash(leader)
    c.ticks(300)
    assert c.nodes[4].role is Role.FOLLOWER and c.nodes[5].role is Role.FOLLOWER
    assert c.leaders() and c.leaders()[0] in (1, 2, 3)


def test_the_leader_removes_itself_and_another_takes_over() -> None:
    c, leader = cluster()
    reply = change(c, leader, 1, Remove(leader))
    assert isinstance(reply, bytes)
    assert c.nodes[leader].role is Role.FOLLOWER  # it stepped down once the change applied
    c.run_until(lambda: bool(c.leaders()))
    new = c.leaders()[0]
    assert new != leader
    settle(c, new, 100, WINDOW + 2)
    assert leader not in c.nodes[new].members().latest.members
    c.ticks(300)
    assert c.nodes[leader].role is Role.FOLLOWER  # a removed node never campaigns
    assert c.safety_problems() == []


def test_membership_is_recovered_from_the_snapshot_after_a_crash() -> None:
    c, leader = cluster(snapshot_every_slots=4)
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    settle(c, leader, 100, 12)
    before = c.nodes[2].members()
    assert before.latest.learners == (4,)
    c.crash(2)
    c.restart(2)
    assert c.nodes[2].members() == before  # from its SnapshotRecord alone
    # A node added later catches up from a snapshot and learns the membership with it.
    assert c.nodes[4].members() == before


def test_snapshots_lead_with_the_membership_only_when_reconfigurable() -> None:
    fixed = Cluster(3, seed=1, snapshot_every_slots=4)
    leader = fixed.elect()
    settle(fixed, leader, 100, 6)
    chunk_bytes = fixed.config.snapshot_chunk_bytes_max
    machine_chunks = tuple(fixed.machines[2].snapshot_chunks(chunk_bytes))
    assert capture(fixed.nodes[2]).chunks == machine_chunks  # byte for byte the machine's
    c, leader = cluster(snapshot_every_slots=4)
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    settle(c, leader, 100, 12)
    chunks = capture(c.nodes[2]).chunks
    assert decode_membership_state(chunks[0]) == c.nodes[2].members()
    assert chunks[1:] == tuple(c.machines[2].snapshot_chunks(chunk_bytes))


def test_a_snapshot_without_a_readable_membership_is_refused_and_changes_nothing() -> None:
    c, leader = cluster(snapshot_every_slots=4)
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    settle(c, leader, 100, 12)
    replica = c.nodes[2].replica
    members = c.nodes[2].members()
    machine_chunks = list(c.machines[2].snapshot_chunks(c.config.snapshot_chunk_bytes_max))
    with pytest.raises(ValueError):
        replica.snapshot_loader().finish()  # no chunk at all
    with pytest.raises(ValueError):
        replica.snapshot_loader().load(b"\xc1 not msgpack")
    no_voters = encode_membership_state(MembershipState(Configuration(9, ())))
    with pytest.raises(ValueError):
        replica.snapshot_loader().load(no_voters)
    genesis = encode_membership_state(MembershipState(Configuration(0, (1, 2, 3))))
    loader = replica.snapshot_loader()
    loader.load(genesis)
    assert c.nodes[2].members() == members  # taken only at ``finish``
    for chunk in machine_chunks:
        loader.load(chunk)
    loader.finish()
    assert c.nodes[2].members() == MembershipState(Configuration(0, (1, 2, 3)))


def test_a_leader_waiting_to_resume_reads_above_every_reported_slot() -> None:
    """Promisers compacted slots the new leader has not applied, so it re-proposes only up to
    its first slot + alpha (``resume_slot``); values chosen beyond that were reported, and its
    read index must not go below them (else a read misses an acknowledged write)."""
    config = MultiConfig(node_ids=(1, 2, 3), reconfigurable=True, window_slots=4)
    node = Node(1, config, random.Random(0), LogMachine())
    node._start_candidacy()
    ballot = node.leader.ballot
    write = (Entry(2, 7, b"w"),)
    votes = tuple(Vote(slot, Ballot(0, 2), write) for slot in (20, 21, 22))
    node.handle(Promise(2, ballot, 0, 20, 20, votes))
    assert node.role is Role.LEADER
    assert node.leader.resume_slot is not None and node.leader.next_slot < 23  # waits
    assert node.leader.reported_frontier() == 23
    assert node.read_barrier == 23


def test_static_clusters_refuse_changes() -> None:
    c = Cluster(3, seed=1)
    leader = c.elect()
    effects = c.nodes[leader].propose_membership_change(1, AddLearner(4))
    assert [type(e) for e in effects] == [MembershipRefused]


@pytest.mark.parametrize("seed", range(30))
def test_random_runs_with_changes_are_safe_and_converge(seed: int) -> None:
    c = reconfig_chaos(seed, (), **RUN)  # type: ignore[arg-type]
    assert c.safety_problems() == []
    leader = c.nodes[c.leaders()[0]]
    assert leader.members().latest.epoch > 0  # the run did change the membership


def problems_of(seed: int, bug: LogBug) -> list[str]:
    try:
        return reconfig_chaos(seed, (bug,), **RUN).safety_problems()  # type: ignore[arg-type]
    except AssertionError as caught:
        return [str(caught)]


@pytest.mark.parametrize(
    "bug", [LogBug.CONFIG_BEFORE_CHOSEN, LogBug.REMOVED_STILL_COUNTED], ids=str
)
def test_each_reconfiguration_bug_breaks_safety_in_some_run(bug: LogBug) -> None:
    for seed in range(60):
        found = problems_of(seed, bug)
        if found and "not done" not in found[0]:
            assert reconfig_chaos(seed, (), **RUN).safety_problems() == []  # type: ignore[arg-type]
            return
    pytest.fail(f"{bug}: no seed in 0..59 showed a safety violation")


def test_node_rejects_an_id_outside_a_static_configuration() -> None:
    c = Cluster(3, seed=1)
    with pytest.raises(ValueError):
        Node(9, c.config, c._node_rng(1), c.machines[1])


def test_address_records_ride_with_their_members_and_leave_with_them() -> None:
    base = Configuration(3, (1, 2, 3), (4,), (MemberAddress(4, b"four"),))
    added = next_configuration(base, AddLearner(5, b"five"))
    assert isinstance(added, Configuration)
    assert added.address_of(5) == b"five" and added.address_of(4) == b"four"
    assert added.address_of(1) is None  # a genesis member: the shell knows it otherwise
    promoted = next_configuration(added, Promote(5))
    assert isinstance(promoted, Configuration) and promoted.address_of(5) == b"five"
    removed = next_configuration(promoted, Remove(4))
    assert isinstance(removed, Configuration) and removed.address_of(4) is None
    replaced = next_configuration(base, Replace(3, 4))
    assert isinstance(replaced, Configuration) and replaced.address_of(4) == b"four"
    too_long = next_configuration(base, AddLearner(6, b"x" * (MEMBER_ADDRESS_BYTES_MAX + 1)))
    assert isinstance(too_long, MembershipRefused)
    assert too_long.reason is RefusalReason.BAD_ADDRESS


def test_addresses_travel_in_the_log_and_in_snapshots() -> None:
    c, leader = cluster(snapshot_every_slots=4)
    assert isinstance(change(c, leader, 1, AddLearner(4, b"node-4 record")), bytes)
    settle(c, leader, 100, 12)
    for node_id in (1, 2, 3, 4):
        assert c.nodes[node_id].members().latest.address_of(4) == b"node-4 record"
    chunks = list(c.nodes[2].replica.snapshot_chunks(c.config.snapshot_chunk_bytes_max))
    state = decode_membership_state(chunks[0])
    assert state.latest.address_of(4) == b"node-4 record"
    oversized = MembershipState(Configuration(1, (1, 2, 3), (4,), (MemberAddress(4, b"x" * 5000),)))
    with pytest.raises(ValueError):
        decode_membership_state(encode_membership_state(oversized))


@pytest.mark.parametrize("fill", [False, True])
def test_an_idle_leader_fills_the_slots_before_a_change_only_when_asked(fill: bool) -> None:
    c, leader = cluster(fill_to_pending_change=fill)
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    c.ticks(40)  # no client commands
    state = c.nodes[leader].members()
    if fill:
        assert state.pending is None and state.current.learners == (4,)
    else:
        assert state.pending is not None  # waits for client commands to fill its slots
