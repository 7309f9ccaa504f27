"""Leader leases on the pure node (``multi.lease``): one test per rule."""

from __future__ import annotations

import pytest
from multi_harness import Cluster

from pypaxos.core.effects import Send
from pypaxos.multi import Heartbeat, LogBug, MultiConfig, Prepare, Promise, Reply, Role

READ = 10_000
LEASE_TICKS, DRIFT_PPM = 14, 250_000  # serves (14 - 1) / 1.25 -> 10 ticks


def test_leases_are_off_by_default_and_shortened_for_drift_and_granularity() -> None:
    assert not MultiConfig().leases
    assert MultiConfig(lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM).lease_serve_ticks() == 10
    assert MultiConfig(lease_ticks=14).lease_serve_ticks() == 13  # one tick of granularity
    # and the followers' clock lag: (14 - 1 - 3) / 1.25 -> 8
    lagging = MultiConfig(
        lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM, lease_clock_lag_ticks=3
    )
    assert lagging.lease_serve_ticks() == 8
    bug = frozenset({LogBug.LEASE_IGNORES_DRIFT})
    buggy = MultiConfig(lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM, bugs=bug)
    assert buggy.lease_serve_ticks() == 13
    with pytest.raises(ValueError, match="never serve"):
        MultiConfig(lease_ticks=1)
    with pytest.raises(ValueError, match=">= 0"):
        MultiConfig(clock_drift_ppm=-1)


def _beat_and_ack(cluster: Cluster, leader: int) -> int:
    """Send a heartbeat round now and deliver its acks; the tick it left."""
    node = cluster.nodes[leader]
    sent = node.detector.now
    cluster.run(leader, node._heartbeats())
    cluster.deliver_all()
    return sent


def test_under_a_lease_a_read_is_answered_at_once_without_a_round() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    cluster.propose(leader, 1, b"a")
    cluster.run_until(lambda: (leader, 1) in cluster.replies and cluster.converged())
    node = cluster.nodes[leader]
    _beat_and_ack(cluster, leader)
    effects = node.read(READ, b"get")
    assert Reply(READ, b"a") in effects
    assert not any(isinstance(e, Send) for e in effects)  # no heartbeat round
    assert node.lease_reads == 1


def test_the_lease_runs_from_when_the_round_left_not_from_the_acks() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    node = cluster.nodes[leader]
    sent = node.detector.now
    cluster.run(leader, node._heartbeats())
    for _ in range(5):  # the acks arrive late: the lease still counts from ``sent``
        node.detector.tick()
    cluster.deliver_all()
    assert node.lease.until == sent + 10
    node.detector.now = sent + 9
    assert node._lease_holds()
    node.detector.now = sent + 10
    assert not node._lease_holds()
    effects = node.read(READ, b"get")
    assert not any(isinstance(e, Reply) for e in effects)  # back to a confirmation round
    assert any(isinstance(e, Send) and isinstance(e.msg, Heartbeat) for e in effects)


def test_lease_ignores_drift_serves_the_whole_lease() -> None:
    cluster = Cluster(
        3,
        seed=1,
        bugs=(LogBug.LEASE_IGNORES_DRIFT,),
        lease_ticks=LEASE_TICKS,
        clock_drift_ppm=DRIFT_PPM,
    )
    leader = cluster.elect()
    sent = _beat_and_ack(cluster, leader)
    assert cluster.nodes[leader].lease.until == sent + 13


def test_without_a_majority_of_acks_the_lease_is_not_renewed() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    node = cluster.nodes[leader]
    before = node.lease.until
    cluster.filter = lambda src, to, msg: False  # every message lost
    node.detector.now += 3
    cluster.run(leader, node._heartbeats())
    cluster.deliver_all()
    assert node.lease.until == before


def _follower_bound(cluster: Cluster, leader: int) -> int:
    return next(p for p in cluster.nodes[leader].peers)


def test_a_follower_that_acknowledged_refuses_another_candidate_until_the_lease_ran_out() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    _beat_and_ack(cluster, leader)
    follower = _follower_bound(cluster, leader)
    other = next(n for n in cluster.nodes if n not in (leader, follower))
    node = cluster.nodes[follower]
    bar = max(node.acceptor.promised, node.leader_ballot)
    prepare = Prepare(other, bar.next_for(other), 0)
    node.detector.leader_contact = None  # stickiness aside: only the lease binds here
    assert node.handle(prepare) == []
    node.detector.now = node.lease.bound_until
    assert any(isinstance(e, Send) and isinstance(e.msg, Promise) for e in node.handle(prepare))


def test_new_leader_inside_lease_promises_at_once() -> None:
    cluster = Cluster(
        3,
        seed=1,
        bugs=(LogBug.NEW_LEADER_INSIDE_LEASE,),
        lease_ticks=LEASE_TICKS,
        clock_drift_ppm=DRIFT_PPM,
    )
    leader = cluster.elect()
    _beat_and_ack(cluster, leader)
    follower = _follower_bound(cluster, leader)
    other = next(n for n in cluster.nodes if n not in (leader, follower))
    node = cluster.nodes[follower]
    node.detector.leader_contact = None
    prepare = Prepare(other, max(node.acceptor.promised, node.leader_ballot).next_for(other), 0)
    assert any(isinstance(e, Send) and isinstance(e.msg, Promise) for e in node.handle(prepare))


def test_a_bound_follower_does_not_campaign_until_the_lease_ran_out() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    _beat_and_ack(cluster, leader)
    node = cluster.nodes[_follower_bound(cluster, leader)]
    node.detector.deadline = node.detector.now  # its election timer fires now
    bound = node.lease.bound_until
    while node.detector.now + 1 < bound:
        assert not any(isinstance(e, Send) for e in node.tick())
        assert node.role is Role.FOLLOWER
    assert node.detector.deadline >= bound  # deferred past the lease, with a random spread


def test_the_same_leader_may_take_a_higher_ballot_inside_its_own_lease() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    _beat_and_ack(cluster, leader)
    node = cluster.nodes[_follower_bound(cluster, leader)]
    prepare = Prepare(leader, node.acceptor.promised.next_for(leader), 0)
    assert any(isinstance(e, Send) and isinstance(e.msg, Promise) for e in node.handle(prepare))


def test_a_restarted_node_is_bound_for_a_lease_from_its_start() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    follower = _follower_bound(cluster, leader)
    cluster.crash(follower)
    cluster.restart(follower)
    node = cluster.nodes[follower]
    assert node.lease.bound_until == 14 and node._lease_binds()


def test_a_leader_that_steps_down_holds_no_lease() -> None:
    cluster = Cluster(3, seed=1, lease_ticks=LEASE_TICKS, clock_drift_ppm=DRIFT_PPM)
    leader = cluster.elect()
    _beat_and_ack(cluster, leader)
    node = cluster.nodes[leader]
    assert node._lease_holds()
    node._step_down(None)
    assert not node._lease_holds()
    assert node.read(READ, b"get")[0].__class__.__name__ == "Redirect"
