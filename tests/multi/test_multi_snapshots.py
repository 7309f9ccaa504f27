"""Snapshots out of line: compaction waits for durability, a crash mid-snapshot recovers, and a
lagging node is rebuilt from chunks with a window, resuming after a silence."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from multi_harness import Cluster, LogMachine, heal

from pypaxos.multi import Entry, SnapshotChunk, SnapshotRequest, TakeSnapshot


class ChunkedMachine(LogMachine):
    """The log machine with a snapshot of one command per chunk (many chunks, tiny ones)."""

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        yield msgspec.msgpack.encode(len(self.commands))
        yield from self.commands

    def snapshot_loader(self) -> _Loader:
        return _Loader(self)


class _Loader:
    def __init__(self, machine: ChunkedMachine) -> None:
        self.machine = machine
        self.expected: int | None = None
        self.commands: list[bytes] = []

    def load(self, chunk: bytes) -> None:
        if self.expected is None:
            self.expected = msgspec.msgpack.decode(chunk, type=int)
        else:
            self.commands.append(chunk)

    def finish(self) -> None:
        if self.expected != len(self.commands):
            raise ValueError(f"{len(self.commands)} commands, the head said {self.expected}")
        self.machine.commands = self.commands


def chunked_cluster(**config: int) -> Cluster:
    return Cluster(3, seed=5, machine_factory=ChunkedMachine, **config)


def run_commands(c: Cluster, leader: int, count: int, first: int = 0) -> None:
    for request_id in range(first, first + count):
        c.propose(leader, request_id, f"c{request_id}".encode())
        c.tick()
    c.run_until(lambda: (leader, first + count - 1) in c.replies)


def test_the_log_is_compacted_only_once_the_snapshot_is_durable() -> None:
    c = Cluster(3, seed=1, snapshot_every_slots=4, window_slots=2, log_window_slots=8)
    c.snapshot_save_ticks = 50  # a slow disk: the snapshot stays in flight for a while
    leader = c.elect()
    run_commands(c, leader, 6)
    node = c.nodes[leader]
    assert node.replica.snapshot_pending and c.saving[leader]
    assert node.replica.snapshot_slot == node.acceptor.log_start == 0  # nothing compacted yet
    assert node.applied_index >= 4  # and the node kept applying meanwhile
    c.ticks(50)
    assert not node.replica.snapshot_pending
    assert node.replica.snapshot_slot == node.acceptor.log_start >= 4
    assert c.durable_snapshot(leader) is not None
    assert not c.safety_problems()


def test_at_most_one_snapshot_is_in_flight() -> None:
    c = Cluster(3, seed=2, snapshot_every_slots=2, window_slots=2, log_window_slots=8)
    c.snapshot_save_ticks = 1000
    leader = c.elect()
    taken: list[TakeSnapshot] = []
    node = c.nodes[leader]
    for request_id in range(12):
        effects = node.propose(request_id, b"x")
        c.run(leader, effects)
        c.tick()
        taken += [e for e in effects if isinstance(e, TakeSnapshot)]
    assert node.applied_index >= 8  # four intervals applied
    assert len(c.saving[leader]) == 1 and node.replica.snapshot_pending


def test_a_crash_before_the_snapshot_is_saved_recovers_from_the_one_before() -> None:
    c = Cluster(3, seed=3, snapshot_every_slots=4, window_slots=2, log_window_slots=8)
    leader = c.elect()
    victim = next(i for i in sorted(c.nodes) if i != leader)
    run_commands(c, leader, 5)  # a first snapshot, saved at once
    first = c.durable_snapshot(victim)
    assert first is not None
    c.snapshot_save_ticks = 1000  # the next one never finishes before the crash
    run_commands(c, leader, 6, first=10)
    assert c.saving[victim], "the victim has a snapshot in flight"
    assert c.nodes[victim].acceptor.log_start == first.slot  # its log was not compacted
    c.crash(victim)
    c.snapshot_save_ticks = 0
    c.restart(victim)
    assert c.nodes[victim].replica.snapshot_slot == first.slot  # back to the durable one
    assert c.nodes[victim].applied_index >= first.slot
    c.run_until(lambda: c.machines[victim].commands == c.machines[leader].commands)
    assert len(c.machines[victim].commands) == 11
    assert not c.safety_problems()


def test_compaction_waits_for_a_snapshot_that_failed() -> None:
    c = Cluster(3, seed=4, snapshot_every_slots=4, window_slots=2, log_window_slots=8)
    c.snapshot_save_ticks = 1000
    leader = c.elect()
    run_commands(c, leader, 6)
    node = c.nodes[leader]
    assert node.replica.snapshot_pending
    assert node.snapshot_failed() == []  # a failed write: nothing compacted, nothing at once
    assert not node.replica.snapshot_pending and node.acceptor.log_start == 0
    c.saving[leader] = []
    effects = node.propose(99, b"y")
    c.run(leader, effects)
    c.run_until(lambda: (leader, 99) in c.replies)
    assert node.replica.snapshot_pending  # asked again at the next apply


def test_a_lagging_node_is_rebuilt_from_many_chunks_with_a_window() -> None:
    c = chunked_cluster(snapshot_every_slots=4, window_slots=2, log_window_slots=8,
                        snapshot_window_chunks=3)  # fmt: skip
    leader = c.elect()
    lagger = next(i for i in sorted(c.nodes) if i != leader)
    c.filter = lambda src, to, msg: lagger not in (src, to)
    run_commands(c, leader, 20)
    c.filter = None
    c.sent.clear()
    c.run_until(lambda: c.machines[lagger].commands == c.machines[leader].commands)
    chunks = [m for _, to, m in c.sent if to == lagger and isinstance(m, SnapshotChunk)]
    requests = [m for s, _, m in c.sent if s == lagger and isinstance(m, SnapshotRequest)]
    assert chunks and chunks[0].chunk_count > 10
    first = [m for m in chunks if m.slot == chunks[0].slot]
    assert sorted(m.seq for m in first) == list(range(chunks[0].chunk_count))  # each once
    assert all(r.count == 1 for r in requests)  # one more per chunk taken: the window
    assert c.nodes[lagger].replica.snapshot_slot >= chunks[0].slot  # and it saved its own
    assert not c.safety_problems()


@pytest.mark.parametrize("window", [2, 16])  # 16: the runtime's, more than the chunks left
def test_a_transfer_resumes_from_the_first_missing_chunk_after_a_silence(window: int) -> None:
    c = chunked_cluster(snapshot_every_slots=4, window_slots=2, log_window_slots=8,
                        snapshot_window_chunks=window)  # fmt: skip
    leader = c.elect()
    lagger = next(i for i in sorted(c.nodes) if i != leader)
    c.filter = lambda src, to, msg: lagger not in (src, to)
    run_commands(c, leader, 20)
    # Reconnect, but cut the link again after the lagger took a few chunks.
    taken: list[int] = []

    def link(src: int, to: int, msg: object) -> bool:
        if isinstance(msg, SnapshotChunk) and to == lagger:
            if len(taken) >= 5:
                return False
            taken.append(msg.seq)
        return True

    c.filter = link
    c.sent.clear()
    c.run_until(lambda: len(taken) >= 5)
    incoming = c.nodes[lagger].incoming
    assert incoming is not None and incoming.next_seq == 5
    c.ticks(3 * c.config.catch_up_retry_ticks)  # silence: the lagger re-asks
    c.filter = None
    c.run_until(lambda: c.machines[lagger].commands == c.machines[leader].commands)
    retries = [
        m
        for s, _, m in c.sent
        if s == lagger
        and isinstance(m, SnapshotRequest)
        and m.count == c.config.snapshot_window_chunks
    ]
    assert retries and retries[0].first_seq == 5  # from the first missing chunk, not from 0
    assert not c.safety_problems()


def test_a_chunk_that_does_not_load_is_refused_and_the_old_state_kept() -> None:
    c = chunked_cluster()
    leader = c.elect()
    follower = next(i for i in sorted(c.nodes) if i != leader)
    node = c.nodes[follower]
    applied = node.applied_index
    node.catch_up_asked = leader
    assert node.handle(SnapshotChunk(leader, applied + 5, 0, 2, b"\xc1 not msgpack")) == []
    assert node.refused_messages == 1 and "does not restore" in node.last_refusal
    assert node.incoming is None and node.applied_index == applied
    assert node.handle(SnapshotChunk(leader, applied + 5, 3, 2, b"x")) == []  # seq past count
    assert node.refused_messages == 2


@pytest.mark.parametrize("save_ticks", [0, 7])
def test_random_runs_with_chunked_snapshots_stay_safe(save_ticks: int) -> None:
    c = chunked_cluster(snapshot_every_slots=3, window_slots=2, log_window_slots=8)
    c.snapshot_save_ticks = save_ticks
    c.drop_rate = 0.2
    c.reorder = True
    rng = c.rng
    for request_id in range(150):
        target = (c.leaders() or c.up())[0]
        c.propose(target, request_id, b"c%d" % request_id)
        if rng.random() < 0.05 and not c.down:
            c.crash(rng.choice(c.up()))
        elif c.down and rng.random() < 0.1:
            c.restart(min(c.down))
        c.tick()
    heal(c)
    assert not c.safety_problems()
    assert c.snapshots_saved > 0


def test_a_transfer_overtaken_by_the_log_is_dropped_not_swapped_in() -> None:
    c = chunked_cluster()
    leader = c.elect()
    follower = next(i for i in sorted(c.nodes) if i != leader)
    node = c.nodes[follower]
    applied = node.applied_index
    node.catch_up_asked = leader
    head = msgspec.msgpack.encode(1)
    node.handle(SnapshotChunk(leader, applied + 2, 0, 2, head))
    assert node.incoming is not None and node.incoming.next_seq == 1
    for slot in (applied, applied + 1):  # meanwhile the slots below it arrive by the log
        node.replica.learn(slot, (Entry(leader, 50 + slot, b"by the log"),))
    before = list(c.machines[follower].commands)
    assert node.handle(SnapshotChunk(leader, applied + 2, 1, 2, b"stale")) == []
    assert node.incoming is None and c.machines[follower].commands == before
    assert node.applied_index == applied + 2 and node.refused_messages == 0
