"""A removal comes into force only once the remaining voters hold the slots before it durably.

Two scripted reproductions of a whole-cluster stop right after a removal came into force (the
leader applied a slot the new configuration governs), then a restart without the removed
voters (their directories never start again).  The survivors restart from their own disks: a
first voter with the membership its own snapshot and log give it, a joiner with the latest
configuration it recorded (as the runtime does for a node that joined, ``identity.json``).

* *A remaining voter that voted for later slots but had not caught up below them*: the early
  writes were accepted by two of three voters only (the third was left out and its catch-up
  was cut); a joiner is promoted while its catch-up is cut too, and one of the two voters that
  accepted the writes is removed.  The new configuration's majority (the left-out voter and the
  joiner) votes in every later slot but holds none of the early ones.
* *A joiner whose installed snapshot was not yet saved*: two joiners catch up by installing the
  leader's snapshot, their disks too slow to save their own copy; both are promoted and two of
  the first voters removed.  After the stop each goes back to the snapshot it had saved (none).

Either way the restarted joiner leads with a quorum of the new configuration that holds none of
the early slots and fills them with no-ops: acknowledged writes are gone and a slot is applied
twice differently.  With the wait (``Node._durable_hold``: nothing is proposed where a new
configuration governs until a majority of its voters reported a durable applied index past the
slots before it) a change waits for the cut catch-up or the slow disk, lifted for one of the
two after ``HOLD_TICKS`` of writes (a bare majority), and the restart keeps every write: the
joiner still behind learns the early slots from the other's promise, whose ``log_start`` is its
durable index (``Node._durable_floor``; without it the first run loses them too).  The planted
bug ``removal-before-durable`` drops the wait; these reproductions catch it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from multi_harness import Cluster, LogMachine, draw_change, reconfig_chaos

from pypaxos.core.effects import Persist
from pypaxos.multi import (
    Accept,
    Decided,
    LearnedRecord,
    LogBug,
    Message,
    MultiConfig,
    Node,
    SnapshotChunk,
)
from pypaxos.multi.log import Entry
from pypaxos.multi.membership import AddLearner, Change, Promote, Remove

WRITES = 12
HOLD_TICKS = 80
"""How long a removal may wait for the remaining voters before the test lifts what delays
them (a cut catch-up, a slow disk), writing all along."""


class Run:
    """One scripted run: a cluster, the writes it acknowledged, and what happened."""

    def __init__(
        self, c: Cluster, leader: int, block: Callable[[], None], unblock: Callable[[], None]
    ) -> None:
        self.c = c
        self.leader = leader
        self.block = block  # what keeps the future survivors behind (a cut, a slow disk)
        self.unblock = unblock
        self.acknowledged: list[bytes] = []
        self.request_id = 0
        self.held_changes = 0  # changes not in force after ``HOLD_TICKS`` of writes

    def write(self, prefix: str) -> None:
        """One write, proposed and answered (or left: its reply is checked for at the end)."""
        self.request_id += 1
        command = f"{prefix}{self.request_id}".encode()
        self.c.propose(self.leader, self.request_id, command)
        self.c.ticks(2)

    def collect(self) -> None:
        """Every write the leader acknowledged so far."""
        c, leader = self.c, self.leader
        for (node, request_id), _ in sorted(c.replies.items()):
            if node == leader and (node, request_id) not in c.change_requests:
                command = next(
                    (
                        e.command
                        for b in c.applied[leader].values()
                        for e in b
                        if e.origin == leader and e.request_id == request_id
                    ),
                    None,
                )
                if command is not None and command not in self.acknowledged:
                    self.acknowledged.append(command)

    def change(self, change: Change) -> None:
        """Propose ``change``, then write until it is in force at the leader (it applied a
        slot the new configuration governs); if ``HOLD_TICKS`` go by without that, lift what
        keeps the survivors behind until it is, then put it back."""
        c, leader = self.c, self.leader
        self.request_id += 1
        request_id = 1_000_000 + self.request_id
        c.refusals.clear()
        c.propose_change(leader, request_id, change)
        assert not c.refusals, c.refusals
        c.run_until(lambda: (leader, request_id) in c.replies)
        first_slot = c.nodes[leader].members().pending_from
        waited = 0
        while c.nodes[leader].applied_index <= first_slot:
            self.write("w")
            waited += 2
            if waited == HOLD_TICKS:
                self.held_changes += 1
                self.unblock()  # one of the two behind catches up: a bare majority
            assert waited < 20 * HOLD_TICKS, f"not in force after {waited} ticks"
        if waited >= HOLD_TICKS:
            self.block()
        self.collect()

    def stop_and_restart(self, survivors: list[int], joiners: list[int]) -> int:
        """Every node stops; the survivors but the old leader restart, the joiners told the
        latest configuration; one of the joiners leads (the others' campaigns are dropped);
        then the old leader comes back too.  Returns the new leader."""
        c = self.c
        members = c.nodes[self.leader].members()
        for node_id in c.up():
            c.crash(node_id)
        c.filter = None
        c.slow_snapshot_saves = set()  # the disks are back to normal after the restart
        first_back = [s for s in survivors if s != self.leader]
        for node_id in first_back:
            c.restart(node_id, members if node_id in joiners else None)
        chosen = joiners[0]

        def only_the_joiner_campaigns(src: int, _to: int, msg: Message) -> bool:
            return src == chosen or type(msg).__name__ not in ("Prepare", "PreVoteRequest")

        c.filter = only_the_joiner_campaigns
        new = c.elect(max_ticks=1000)
        c.filter = None
        c.propose(new, 10**9, b"final")
        c.run_until(lambda: (new, 10**9) in c.replies, max_ticks=2000)
        if self.leader in survivors:
            c.restart(self.leader, None)
        c.run_until(c.converged, max_ticks=2000)
        return new


def _cut(c: Cluster, nodes: set[int], accepts_below: int | None = None) -> None:
    """Cut ``nodes``' catch-up (no ``Decided``, no snapshot chunk) and, for the slots below
    ``accepts_below``, their ``Accept``s (a thrifty leader leaves them out)."""

    def keep(_src: int, to: int, msg: Message) -> bool:
        if to not in nodes:
            return True
        if isinstance(msg, (Decided, SnapshotChunk)):
            return False
        below = accepts_below is not None and isinstance(msg, Accept)
        return not (below and msg.slot < accepts_below)

    c.filter = keep


def left_out_voter_run(bugs: tuple[LogBug, ...]) -> tuple[Run, list[int], int]:
    """Window one: a left-out voter and a joiner, both behind, are the new majority."""
    c = Cluster(
        3,
        seed=1,
        bugs=bugs,
        spares=1,
        window_slots=4,
        promote_lag_max_slots=1000,
        snapshot_every_slots=1000,
        log_window_slots=1100,
    )
    leader = c.elect()
    other = min(i for i in (1, 2, 3) if i != leader)
    left_out = max(i for i in (1, 2, 3) if i not in (leader, other))

    run = Run(c, leader, lambda: _cut(c, {left_out, 4}), lambda: _cut(c, {4}))
    _cut(c, {left_out}, accepts_below=10**9)
    for _ in range(WRITES):
        run.write("early")
    c.run_until(lambda: not c.queue)
    run.collect()
    assert len(run.acknowledged) == WRITES
    run.block()  # from now on they vote, but still catch up on nothing
    run.change(AddLearner(4))
    run.change(Promote(4))
    run.change(Remove(other))
    new = run.stop_and_restart([leader, left_out, 4], joiners=[4])
    return run, [leader, left_out, 4], new


def unsaved_snapshot_run(bugs: tuple[LogBug, ...]) -> tuple[Run, list[int], int]:
    """Window two: two joiners that installed the leader's snapshot, unsaved, are the new
    majority."""
    c = Cluster(
        3, seed=2, bugs=bugs, spares=2, window_slots=4, snapshot_every_slots=8, log_window_slots=64
    )
    leader = c.elect()
    first = [i for i in (1, 2, 3) if i != leader]

    def block() -> None:
        c.slow_snapshot_saves = {4, 5}

    run = Run(c, leader, block, lambda: c.speed_up_snapshot_saves(4))
    for _ in range(3 * 8):
        run.write("early")
    c.run_until(lambda: not c.queue)
    run.collect()
    run.block()
    installed_before = c.nodes[4].replica.snapshots_installed
    run.change(AddLearner(4))
    run.change(Promote(4))
    run.change(AddLearner(5))
    run.change(Promote(5))
    assert c.nodes[4].replica.snapshots_installed > installed_before
    assert c.nodes[5].replica.snapshots_installed > 0
    run.change(Remove(first[0]))
    run.change(Remove(first[1]))
    new = run.stop_and_restart([leader, 4, 5], joiners=[5, 4])
    return run, [leader, 4, 5], new


RUNS = {"left-out-voter": left_out_voter_run, "unsaved-snapshot": unsaved_snapshot_run}


@pytest.mark.parametrize("window", sorted(RUNS))
def test_a_whole_cluster_stop_right_after_a_removal_keeps_every_write(window: str) -> None:
    run, survivors, new = RUNS[window](())
    assert run.held_changes > 0  # a change waited for the survivors
    for node_id in survivors:
        commands = run.c.machines[node_id].commands
        missing = [w for w in run.acknowledged if w not in commands]
        assert missing == [], f"node {node_id} (leader {new}) lost {missing}"
    assert run.c.safety_problems() == []


@pytest.mark.parametrize("window", sorted(RUNS))
def test_the_planted_bug_removal_before_durable_loses_writes(window: str) -> None:
    run, _, new = RUNS[window]((LogBug.REMOVAL_BEFORE_DURABLE,))
    assert run.held_changes == 0
    lost = [w for w in run.acknowledged if w not in run.c.machines[new].commands]
    assert lost  # the early slots became no-ops under the new leader
    assert any("both applied" in p for p in run.c.safety_problems())


@pytest.mark.parametrize("seed", range(4))
def test_the_durable_index_never_claims_more_than_a_restart_brings_back(seed: int) -> None:
    """What every node reports as its durable index is at most what ``Node.recover`` rebuilds
    from its disk alone, at any moment of random runs with changes, crashes and slow
    snapshots (a peer's snapshot installed and not yet saved, a leader's unrecorded votes)."""
    c = reconfig_chaos(
        seed, snapshot_every_slots=6, window_slots=4, log_window_slots=32, active_ticks=0
    )
    c.snapshot_save_ticks = 9
    c.reorder = True
    c.drop_rate = 0.05
    claims = 0
    rng = random.Random(seed)
    for step in range(400):
        leaders = c.leaders()
        if leaders and rng.random() < 0.5:
            c.propose(leaders[0], 10_000 + step, f"x{step}".encode())
        if leaders and rng.random() < 0.04:
            c.propose_change(leaders[0], 20_000 + step, draw_change(c, leaders[0], rng))
        c.tick()
        for node_id in c.up():
            claimed = c.nodes[node_id].replica.durable_index
            rebuilt = Node.recover(
                node_id, c.config, random.Random(0), LogMachine(), c.disks[node_id]
            )
            assert rebuilt.applied_index >= claimed, (node_id, c.time)
            claims += claimed > 0
        if step % 97 == 96 and c.up():
            victim = rng.choice(c.up())
            c.crash(victim)
            c.restart(victim)
    assert claims > 0
    assert c.safety_problems() == []


def test_a_leader_records_its_applied_prefix_when_a_change_waits_on_it() -> None:
    """A leader writes no record of its own votes; when a new configuration's majority needs
    it, it writes one ``LearnedRecord`` naming them (``None``), and a restart applies them."""
    c = Cluster(
        2, seed=3, spares=1, window_slots=4, snapshot_every_slots=1000, log_window_slots=1100
    )
    leader = c.elect()
    for i in range(6):
        c.propose(leader, i + 1, f"w{i}".encode())
        c.run_until(lambda i=i: (leader, i + 1) in c.replies)
    c.propose_change(leader, 100, AddLearner(3))
    c.run_until(lambda: (leader, 100) in c.replies)
    for i in range(8):  # until the change is in force: every voter must hold what precedes it
        c.propose(leader, 200 + i, f"s{i}".encode())
        c.ticks(3)
    c.run_until(c.converged)
    first = c.nodes[leader].members().pending_from
    assert c.nodes[leader].applied_index > first
    bridge = [r for r in c.disks[leader] if isinstance(r, LearnedRecord) and r.first_slot == 0]
    assert bridge and len(bridge[0].values) >= first and set(bridge[0].values) == {None}
    rebuilt = Node.recover(leader, c.config, random.Random(0), LogMachine(), c.disks[leader])
    assert rebuilt.applied_index >= first


def test_the_record_of_the_applied_prefix_comes_in_bounded_pieces() -> None:
    """Copied values (slots our vote does not hold) start a new record past
    ``catch_up_max_bytes``; replayed, the pieces bring the whole prefix back."""
    config = MultiConfig(node_ids=(1, 2, 3), reconfigurable=True, catch_up_max_bytes=1000)
    node = Node(1, config, random.Random(0), LogMachine())
    for slot in range(10):
        value = (Entry(2, slot, bytes([slot]) * 400),)
        node.replica.learn(slot, value, bounded=False)
    assert node.applied_index == 10 and node.replica.durable_index == 0
    records = [e.state for e in node._record_applied_prefix() if isinstance(e, Persist)]
    assert len(records) == 5 and all(isinstance(r, LearnedRecord) for r in records)
    assert [r.first_slot for r in records] == [0, 2, 4, 6, 8]
    assert node.replica.durable_index == 10
    rebuilt = Node.recover(1, config, random.Random(0), LogMachine(), records)
    assert rebuilt.applied_index == 10
