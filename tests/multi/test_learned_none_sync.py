"""Why a follower's ``LearnedRecord`` run made only of ``None`` entries is synced too
(docs/design.md, 'What a node keeps durable').

Such a run holds no value (the node's own votes do), so losing it loses no value; but it is the
node's knowledge that those slots were decided, membership changes among them.  Four voters
remove one, and writes follow until the change is in force; the cluster goes idle; the
survivors' last records are runs of ``None`` (they voted for the last write and learned it
decided from the heartbeats that followed).  Were those written without an fsync, a power cut
of every node would lose exactly the tail of them (any later synced record would have flushed
them).  The test restarts two of the three survivors from their disks as they are and from
their disks without that tail: with it, they know the three-voter configuration and elect a
leader; without it, the removal is not yet in force for them and they need three of the four
old voters, whose fourth has left.
"""

from __future__ import annotations

from multi_harness import Cluster

from pypaxos.multi import LearnedRecord, Record
from pypaxos.multi.membership import Remove

NO_SNAPSHOT = {"snapshot_every_slots": 1000, "log_window_slots": 1100}
IDLE_TICKS = 50  # heartbeats announce the last commits; nothing else happens
ELECTION_TICKS = 400


def without_unsynced_none_tail(records: list[Record]) -> list[Record]:
    """What survives a power cut if runs of only ``None`` were appended without an fsync: every
    record up to the last one that is not such a run (its sync flushed what came before)."""
    kept = len(records)
    while kept and _none_only(records[kept - 1]):
        kept -= 1
    return records[:kept]


def _none_only(record: Record) -> bool:
    return isinstance(record, LearnedRecord) and all(v is None for v in record.values)


def removal_then_power_cut(drop_none_tail: bool) -> tuple[Cluster, list[int], int]:
    """Four voters remove one (not the leader), go idle, and every node loses power; two of
    the three that stay restart.  Returns the cluster, the two restarted, and how many records
    the power cut took from them."""
    c = Cluster(4, seed=3, reconfigurable=True, **NO_SNAPSHOT)
    leader = c.elect()
    for i in range(6):
        c.propose(leader, i + 1, f"w{i}".encode())
        c.run_until(lambda i=i: (leader, i + 1) in c.replies)
    removed = max(i for i in c.up() if i != leader)
    c.propose_change(leader, 100, Remove(removed))
    assert not c.refusals, c.refusals
    c.run_until(lambda: (leader, 100) in c.replies)
    # Writes, one at a time, until the change is in force at the leader, and no more: the
    # followers learn the last of them decided from the heartbeats that follow.
    first_slot = c.nodes[leader].members().pending_from
    request_id = 200
    while c.nodes[leader].applied_index < first_slot:
        request_id += 1
        c.propose(leader, request_id, b"w%d" % request_id)  # redirected while it re-prepares
        c.ticks(2)
    c.ticks(IDLE_TICKS)
    c.run_until(c.converged)
    stay = sorted(i for i in c.up() if i != removed)
    assert all(c.nodes[i].members().latest.voters == tuple(stay) for i in stay)
    assert all(c.nodes[i].members().pending is None for i in stay)  # in force everywhere
    lost = 0
    for node_id in c.up():
        c.crash(node_id)
    restarted = [i for i in stay if i != leader]  # the old leader stays down
    for node_id in restarted:
        if drop_none_tail:
            kept = without_unsynced_none_tail(c.disks[node_id])
            lost += len(c.disks[node_id]) - len(kept)
            c.disks[node_id] = kept
        c.restart(node_id)
    return c, restarted, lost


def test_with_the_none_runs_synced_two_of_the_three_voters_left_elect_a_leader() -> None:
    c, restarted, _ = removal_then_power_cut(drop_none_tail=False)
    leader = c.elect(max_ticks=ELECTION_TICKS)
    assert leader in restarted
    c.propose(leader, 10**6, b"after")
    c.run_until(lambda: (leader, 10**6) in c.replies, max_ticks=ELECTION_TICKS)


def test_with_the_none_runs_unsynced_the_removal_is_forgotten_and_no_leader_is_elected() -> None:
    c, restarted, lost = removal_then_power_cut(drop_none_tail=True)
    assert lost > 0  # the survivors' last records were runs of None
    for node_id in restarted:
        state = c.nodes[node_id].members()
        # The removal is not in force for them: the four old voters still govern.
        assert len(state.current.voters) == 4, state
    c.ticks(ELECTION_TICKS)
    assert c.leaders() == []
    assert c.safety_problems() == []
