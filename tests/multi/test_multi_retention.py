"""The log kept in memory stays bounded by bytes as well as slots, however long the run."""

from __future__ import annotations

from multi_harness import Cluster

from pypaxos.multi import Node
from pypaxos.multi.log import batch_size_bytes

COMMAND_BYTES = 200
BOUND_BYTES = 8_000  # about 40 commands: many snapshots in a run of 600


def _retained_bytes(node: Node) -> int:
    return sum(batch_size_bytes(value) for value in node.replica.decided.values())


def _votes_bytes(node: Node) -> int:
    return sum(batch_size_bytes(vote.value) for vote in node.acceptor.accepted.values())


def _run(c: Cluster, commands: int) -> list[tuple[int, int, int, int]]:
    """Propose ``commands`` commands a few at a time; after every step, every node's
    (retained slots, retained bytes, votes in memory, their bytes)."""
    leader = c.elect()
    seen: list[tuple[int, int, int, int]] = []
    for request_id in range(commands):
        command = b"%06d" % request_id + b"x" * (COMMAND_BYTES - 6)
        c.propose(leader, request_id, command)
        if request_id % 4 == 3:
            c.tick()
        for node in c.nodes.values():
            assert node.replica.retained_bytes == _retained_bytes(node)  # the counter is true
            seen.append(
                (
                    len(node.replica.decided),
                    node.replica.retained_bytes,
                    len(node.acceptor.accepted),
                    _votes_bytes(node),
                )
            )
    c.run_until(lambda: (leader, commands - 1) in c.replies)
    assert not c.safety_problems()
    return seen


def test_the_retained_log_is_bounded_by_bytes() -> None:
    c = Cluster(
        3,
        seed=3,
        window_slots=4,
        snapshot_every_slots=10_000,  # never by slots: only the byte bound compacts
        log_window_slots=20_000,
        batch_max_commands=4,
        log_retained_bytes_max=BOUND_BYTES,
    )
    seen = _run(c, 600)
    # Before the snapshot: half the bound; since it: the other half plus the slot that crossed
    # it; plus the window of slots decided and not applied yet.
    slot_bytes_max = 4 * COMMAND_BYTES
    limit = BOUND_BYTES + slot_bytes_max + 4 * slot_bytes_max
    assert max(bytes_ for _, bytes_, _, _ in seen) <= limit
    assert max(votes for _, _, _, votes in seen) <= limit
    assert c.snapshots_saved >= 3 * 10  # compaction really ran, many times on every node
    assert all(node.applied_index >= 600 // 4 for node in c.nodes.values())


def test_without_the_byte_bound_the_log_grows_with_the_run() -> None:
    """The same run bounded only by slots keeps everything: the check above can fail."""
    c = Cluster(
        3,
        seed=3,
        window_slots=4,
        snapshot_every_slots=10_000,
        log_window_slots=20_000,
        batch_max_commands=4,
        log_retained_bytes_max=10**9,
    )
    seen = _run(c, 600)
    assert max(bytes_ for _, bytes_, _, _ in seen) >= 600 * COMMAND_BYTES * 9 // 10
    assert c.snapshots_saved == 0


def test_a_node_behind_the_cut_log_catches_up_from_a_snapshot() -> None:
    """The cut log no longer holds what a node that was down missed: it gets a snapshot, then
    the values since, and ends in the same state."""
    c = Cluster(
        3,
        seed=4,
        window_slots=4,
        snapshot_every_slots=10_000,
        log_window_slots=20_000,
        batch_max_commands=4,
        log_retained_bytes_max=BOUND_BYTES,
    )
    leader = c.elect()
    behind = next(n for n in c.nodes if n != leader)
    c.crash(behind)
    for request_id in range(300):
        c.propose(leader, request_id, b"%06d" % request_id + b"y" * (COMMAND_BYTES - 6))
        if request_id % 4 == 3:
            c.tick()
    c.run_until(lambda: (leader, 299) in c.replies)
    assert c.nodes[leader].replica.retained_from > 0  # the start of the log is gone
    c.restart(behind)
    c.run_until(c.converged, max_ticks=5000)
    assert c.machines[behind].commands == c.machines[leader].commands
    assert not c.safety_problems()


def test_while_a_snapshot_is_written_the_values_before_it_go_first() -> None:
    """Snapshots that take long to become durable: whenever the log kept is over the bound,
    nothing below the durable snapshot is kept (only what a peer could not get from it)."""
    c = Cluster(
        3,
        seed=5,
        window_slots=4,
        snapshot_every_slots=10_000,
        log_window_slots=20_000,
        batch_max_commands=4,
        log_retained_bytes_max=BOUND_BYTES,
    )
    c.snapshot_save_ticks = 12  # each snapshot is durable 12 ticks after it was asked for
    leader = c.elect()
    over_bound = 0
    for request_id in range(600):
        c.propose(leader, request_id, b"%06d" % request_id + b"z" * (COMMAND_BYTES - 6))
        if request_id % 4 == 3:
            c.tick()
        for node in c.nodes.values():
            replica = node.replica
            assert replica.retained_bytes == _retained_bytes(node)
            if replica.retained_bytes > BOUND_BYTES:
                over_bound += 1
                assert replica.retained_from >= replica.snapshot_slot
                assert all(slot >= replica.snapshot_slot for slot in replica.decided)
    assert over_bound > 0  # the pending snapshots really let the log grow past the bound
    c.run_until(lambda: (leader, 599) in c.replies)
    behind = next(n for n in c.nodes if n != leader)
    c.crash(behind)
    for request_id in range(600, 700):
        c.propose(leader, request_id, b"%06d" % request_id + b"z" * (COMMAND_BYTES - 6))
        if request_id % 4 == 3:
            c.tick()
    c.restart(behind)
    c.run_until(c.converged, max_ticks=5000)
    assert c.machines[behind].commands == c.machines[leader].commands
    assert not c.safety_problems()


def _slow_snapshot_cluster(lag_bytes_max: int) -> Cluster:
    """One command per slot, a window of 16 slots, and snapshots asked for every 8 slots that
    are never saved (a disk far slower than the writes)."""
    c = Cluster(
        3,
        seed=5,
        window_slots=4,
        snapshot_every_slots=8,
        log_window_slots=16,
        batch_max_commands=1,
        snapshot_lag_bytes_max=lag_bytes_max,
    )
    c.snapshot_save_ticks = 10**9
    return c


def _propose_all(c: Cluster, leader: int, commands: int) -> None:
    for request_id in range(commands):
        c.propose(leader, request_id, b"%06d" % request_id + b"x" * (COMMAND_BYTES - 6))


def test_writes_go_on_past_the_log_window_while_a_snapshot_is_written() -> None:
    c = _slow_snapshot_cluster(lag_bytes_max=10**9)
    leader = c.elect()
    _propose_all(c, leader, 200)
    c.run_until(lambda: all(n.applied_index >= 200 for n in c.nodes.values()), max_ticks=3000)
    assert (leader, 199) in c.replies
    assert c.snapshots_saved == 0  # every slot committed while no snapshot was durable
    assert all(node.acceptor.log_start == 0 for node in c.nodes.values())
    assert not c.safety_problems()


def test_past_the_snapshot_lag_backstop_writes_wait_for_the_snapshot() -> None:
    lag_commands = 40
    c = _slow_snapshot_cluster(lag_bytes_max=lag_commands * COMMAND_BYTES)
    leader = c.elect()
    _propose_all(c, leader, 200)
    for _ in range(600):
        c.tick()
    # The floor stops at the backstop; the window of 16 slots beyond it is all that is left.
    stalled_at = c.nodes[leader].applied_index
    assert lag_commands <= stalled_at <= lag_commands + 16 + 4
    assert (leader, 199) not in c.replies
    # The disk catches up: the snapshots taken are saved now, and writes resume.
    c.snapshot_save_ticks = 0
    c.saving = {node: [(0, record) for _, record in taken] for node, taken in c.saving.items()}
    c.run_until(lambda: (leader, 199) in c.replies, max_ticks=3000)
    assert c.snapshots_saved > 0
    assert not c.safety_problems()
