"""A node removed while it was cut off learns it from a peer (``Membership.notice_for``) and
believes it only when the peer's configuration is newer than any it knows (``judge_removal``).

Checked on the decision alone, on a node cut off while it was removed, on a peer that
learned its configuration from a snapshot, and over random runs with membership changes, loss
and crashes: every pair of nodes, at the end of each run, is judged against the chain of
configurations the run decided.  A verdict ``removed`` must be true (the node was removed after
the newest configuration it knows), a notice's epoch and slot must be the chain's, and a node
left out of the newest configuration must be told so by every up-to-date member.
"""

from __future__ import annotations

import pytest
from multi_harness import Cluster, reconfig_chaos
from test_multi_membership import RUN, WINDOW, change, cluster, settle

from pypaxos.multi.membership import (
    MEMBERSHIP_ORIGIN,
    REMOVALS_KEPT,
    SLOT_UNKNOWN,
    AddLearner,
    Configuration,
    Membership,
    MembershipChange,
    MembershipState,
    Promote,
    RemovalNotice,
    RemovalVerdict,
    Remove,
    change_entry,
    judge_removal,
)


def test_the_verdict_needs_a_newer_configuration_about_this_node() -> None:
    notice = RemovalNotice(4, 6, 130)
    assert judge_removal(4, 5, notice) is RemovalVerdict.REMOVED
    assert judge_removal(4, 6, notice) is RemovalVerdict.STALE  # the same configuration
    assert judge_removal(4, 9, notice) is RemovalVerdict.STALE  # the node knows a later one
    assert judge_removal(3, 0, notice) is RemovalVerdict.OTHER_NODE


def _apply(m: Membership, slot: int, config: Configuration) -> None:
    _, took = m.apply(slot, change_entry(slot, MembershipChange(1, config)).command)
    assert took
    m.fold(slot + m.alpha_slots)


def test_a_member_remembers_whom_it_removed_and_when() -> None:
    m = Membership(Configuration(0, (1, 2, 3)), alpha_slots=4)
    _apply(m, 10, Configuration(1, (1, 2, 3), (4,)))
    assert m.notice_for(4) is None  # a member
    _apply(m, 20, Configuration(2, (1, 2, 3)))
    assert m.notice_for(4) == RemovalNotice(4, 2, 24)
    assert m.notice_for(1) is None
    assert m.notice_for(9) == RemovalNotice(9, 2, SLOT_UNKNOWN)  # never a member here
    _apply(m, 30, Configuration(3, (1, 2, 3), (4,)))  # added back: a member again
    assert m.notice_for(4) is None and 4 not in m.removals


def test_a_pending_configuration_that_still_has_the_node_means_no_notice() -> None:
    m = Membership(Configuration(0, (1, 2, 3)), alpha_slots=4)
    _apply(m, 10, Configuration(1, (1, 2, 3), (4,)))
    m.apply(20, change_entry(1, MembershipChange(1, Configuration(2, (1, 2, 4)))).command)
    assert m.state.pending is not None and m.notice_for(3) is None  # still governs slots < 24
    m.fold(24)
    assert m.notice_for(3) == RemovalNotice(3, 2, 24)


def test_a_member_that_learned_from_a_snapshot_names_its_latest_epoch() -> None:
    m = Membership(Configuration(0, (1, 2, 3)), alpha_slots=4)
    m.restore(MembershipState(Configuration(5, (1, 2, 3))))
    assert m.notice_for(4) == RemovalNotice(4, 5, SLOT_UNKNOWN)


def test_only_the_latest_removals_are_kept() -> None:
    m = Membership(Configuration(0, (1,), tuple(range(2, REMOVALS_KEPT + 12))), alpha_slots=1)
    learners = list(m.state.current.learners)
    for epoch in range(1, len(learners) + 1):
        learners.pop(0)
        _apply(m, 10 * epoch, Configuration(epoch, (1,), tuple(learners)))
    assert len(m.removals) == REMOVALS_KEPT
    assert 2 not in m.removals and m.notice_for(2) is not None  # forgotten: the latest epoch
    assert m.notice_for(2) == RemovalNotice(2, m.state.latest.epoch, SLOT_UNKNOWN)


def test_a_voter_removed_while_it_was_cut_off_is_told() -> None:
    c, leader = cluster()
    assert isinstance(change(c, leader, 1, AddLearner(4)), bytes)
    settle(c, leader, 100, WINDOW + 2)
    assert isinstance(change(c, leader, 2, Promote(4)), bytes)
    settle(c, leader, 200, WINDOW + 2)
    known = c.nodes[4].members().latest
    assert 4 in known.voters
    c.filter = lambda src, to, msg: 4 not in (src, to)  # cut off: it never hears its removal
    assert isinstance(change(c, leader, 3, Remove(4)), bytes)
    settle(c, leader, 300, WINDOW + 2)
    c.ticks(200)
    assert c.nodes[4].members().latest == known  # still believes it is a voter
    notice = c.nodes[leader].membership.notice_for(4)
    assert notice is not None and notice.epoch == known.epoch + 1 and notice.slot > 0
    assert judge_removal(4, known.epoch, notice) is RemovalVerdict.REMOVED
    # A peer that stopped before the node was added tells it nothing it believes.
    behind = Membership(Configuration(0, (1, 2, 3)), alpha_slots=WINDOW)
    old = behind.notice_for(4)
    assert old is not None and judge_removal(4, known.epoch, old) is RemovalVerdict.STALE


def _chain(c: Cluster) -> dict[int, tuple[Configuration, int]]:
    """Every configuration the run decided, by epoch, with the first slot it governs: the
    chosen log replayed through the apply rule."""
    genesis = Configuration(0, c.config.node_ids)
    replay = Membership(genesis, c.config.alpha_slots)
    chain = {0: (genesis, 0)}
    slots = sorted(c.chosen)
    assert slots == list(range(slots[0], slots[0] + len(slots)))
    for slot in slots:
        for entry in c.chosen[slot]:
            if entry.origin == MEMBERSHIP_ORIGIN:
                made, took = replay.apply(slot, entry.command)
                if took and made is not None:
                    chain[made.config.epoch] = (made.config, slot + c.config.alpha_slots)
        replay.fold(slot + 1)
    return chain


@pytest.mark.parametrize("seed", range(20))
def test_notices_and_verdicts_are_true_in_random_runs(seed: int) -> None:
    c = reconfig_chaos(seed, (), **RUN)  # type: ignore[arg-type]
    chain = _chain(c)
    newest = max(chain)
    for x, node in sorted(c.nodes.items()):
        own = node.members().latest
        if x not in own.members:
            continue  # a spare not added yet, or a node that applied its own removal
        for p, peer in sorted(c.nodes.items()):
            notice = peer.membership.notice_for(x) if p != x else None
            if notice is None:
                continue
            config, first_slot = chain[notice.epoch]
            assert x not in config.members and peer.members().latest.epoch >= notice.epoch
            assert notice.slot in (SLOT_UNKNOWN, first_slot)
            verdict = judge_removal(x, own.epoch, notice)
            if verdict is RemovalVerdict.REMOVED:
                later = range(own.epoch + 1, newest + 1)
                assert any(x not in chain[k][0].members for k in later), (seed, x, p, notice)
        if x not in chain[newest][0].members:
            told = [
                judge_removal(x, own.epoch, notice)
                for p, peer in c.nodes.items()
                if p != x and peer.members().latest.epoch == newest
                if (notice := peer.membership.notice_for(x)) is not None
            ]
            assert told and set(told) == {RemovalVerdict.REMOVED}, (seed, x, told)
    assert c.safety_problems() == []
