"""The replica: learns decided slots, applies them in order, snapshots, answers catch-up.

Decided values arrive out of order (from the leader's quorum count, the commit index piggybacked
on ``Accept``/``Heartbeat``, or ``Decided``/``Snapshot`` catch-up answers); the replica applies
the contiguous prefix to the ``StateMachine`` exactly once per slot, in slot order, so every
node walks through the same sequence of states (the replicated state machine of van Renesse &
Altinbuken, "Paxos Made Moderately Complex", section 2: the "replica" role).

Every ``snapshot_every_slots`` applied slots it takes a snapshot and forgets the values below
the *previous* snapshot (one interval is kept so a slightly lagging peer gets entries, not a
whole snapshot).  Memory is bounded by two snapshot intervals plus the learn window.

Client replies: the node that took a command records its request id as *awaiting*; when the
slot that held it is applied, it replies with the machine's result, and if the slot turned out
to hold something else it redirects (the command was not executed by that proposal).
"""

from __future__ import annotations

from typing import Protocol

from pypaxos.core.effects import Persist
from pypaxos.multi.effects import Applied, Effect, Redirect, Reply, SnapshotRecord
from pypaxos.multi.log import Batch, batch_size_bytes
from pypaxos.multi.membership import (
    MEMBERSHIP_ORIGIN,
    Membership,
    MembershipState,
    encode_configuration,
)
from pypaxos.multi.messages import Decided, Snapshot


class StateMachine(Protocol):
    """What the log is applied to (``kv.KVStateMachine`` is one; tests use tiny ones).

    Every method must be deterministic: replicas feed it the same commands in the same order
    and must reach the same state and the same results (Schneider 1990).
    """

    def apply(self, command: bytes) -> bytes:
        """Apply the next decided command and return its result."""
        ...

    def query(self, command: bytes) -> bytes:
        """Answer a read-only ``command`` from the current state, changing nothing (not even
        the exactly-once sessions): what read-index reads run (``multi.reads``)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, such that ``restore`` rebuilds an identical machine."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one ``snapshot`` returned."""
        ...


class Replica:
    __slots__ = (
        "applied_index",
        "awaiting",
        "catch_up_max_bytes",
        "catch_up_max_slots",
        "decided",
        "id",
        "learn_window_slots",
        "machine",
        "membership",
        "proposed",
        "retained_from",
        "snapshot_data",
        "snapshot_every_slots",
        "snapshot_membership",
        "snapshot_slot",
    )

    def __init__(
        self,
        node_id: int,
        machine: StateMachine,
        snapshot_every_slots: int,
        catch_up_max_slots: int,
        learn_window_slots: int,
        catch_up_max_bytes: int = 1024 * 1024,
        membership: Membership | None = None,
    ) -> None:
        self.id = node_id
        self.machine = machine
        self.snapshot_every_slots = snapshot_every_slots
        self.catch_up_max_slots = catch_up_max_slots
        self.catch_up_max_bytes = catch_up_max_bytes
        self.learn_window_slots = learn_window_slots
        self.decided: dict[int, Batch] = {}
        self.applied_index = 0  # every slot below is applied (and decided)
        self.snapshot_slot = 0
        self.snapshot_data = machine.snapshot()
        self.retained_from = 0  # decided values are kept for slots >= retained_from
        self.awaiting: set[int] = set()  # request ids this node took and has not answered
        self.proposed: dict[int, list[int]] = {}  # slot -> awaiting request ids proposed there
        # Membership (``multi.membership``): replicated state next to the machine's, applied
        # from change entries, carried by snapshots; ``None`` for a replica without one.
        self.membership = membership
        self.snapshot_membership = self._membership_state()

    def restore(self, record: SnapshotRecord) -> None:
        """Start from a persisted snapshot (recovery)."""
        self.machine.restore(record.data)
        self.applied_index = self.snapshot_slot = self.retained_from = record.slot
        self.snapshot_data = record.data
        self._restore_membership(record.membership)

    def learn(self, slot: int, value: Batch, bounded: bool = True) -> list[Effect]:
        """``value`` is decided in ``slot``; apply whatever became contiguous.

        Values learned from peers must fall in the learn window (memory bound); the leader's
        own decisions are always kept (``bounded=False``): they are few, since it proposes only
        in its window and in slots phase 1 reported, and nobody else may know them yet.
        """
        known = self.decided.get(slot)
        if known is not None:
            assert known == value, f"node {self.id}: slot {slot} decided twice, differently"
            return []
        if slot < self.applied_index:
            return []
        if bounded and slot >= self.applied_index + self.learn_window_slots:
            return []
        self.decided[slot] = value
        return self._apply_ready()

    def track(self, slot: int, request_ids: list[int]) -> None:
        if request_ids:
            self.proposed.setdefault(slot, []).extend(request_ids)

    def _apply_ready(self) -> list[Effect]:
        effects: list[Effect] = []
        while self.applied_index in self.decided:
            slot = self.applied_index
            effects.extend(self._apply(slot, self.decided[slot]))
            self.applied_index += 1
            if self.membership is not None:
                self.membership.fold(self.applied_index)
        if self.applied_index - self.snapshot_slot >= self.snapshot_every_slots:
            effects.append(self._take_snapshot())
        return effects

    def _apply(self, slot: int, value: Batch) -> list[Effect]:
        effects: list[Effect] = [Applied(slot, value)]
        for entry in value:
            if entry.origin == MEMBERSHIP_ORIGIN:
                effects.extend(self._apply_membership(slot, entry.request_id, entry.command))
                continue
            result = self.machine.apply(entry.command)
            if entry.origin == self.id and entry.request_id in self.awaiting:
                self.awaiting.discard(entry.request_id)
                effects.append(Reply(entry.request_id, result))
        effects.extend(self._redirect_lost(self.proposed.pop(slot, [])))
        return effects

    def _apply_membership(self, slot: int, request_id: int, command: bytes) -> list[Effect]:
        """A membership change decided in ``slot``: the proposer answers with the configuration
        it makes (``multi.membership``); an ignored change answers a redirect."""
        if self.membership is None:
            return []
        change, took_effect = self.membership.apply(slot, command)
        if change is None or change.proposer != self.id or request_id not in self.awaiting:
            return []
        self.awaiting.discard(request_id)
        if not took_effect:
            return [Redirect(request_id, None)]
        return [Reply(request_id, encode_configuration(change.config))]

    def _membership_state(self) -> MembershipState | None:
        return None if self.membership is None else self.membership.state

    def _restore_membership(self, state: MembershipState | None) -> None:
        if self.membership is not None:
            self.membership.restore(state)
        self.snapshot_membership = self._membership_state()

    def _redirect_lost(self, request_ids: list[int]) -> list[Effect]:
        lost = [r for r in request_ids if r in self.awaiting]
        self.awaiting.difference_update(lost)
        return [Redirect(r, None) for r in lost]

    def _take_snapshot(self) -> Persist[SnapshotRecord]:
        self.retained_from = self.snapshot_slot
        self.snapshot_slot = self.applied_index
        self.snapshot_data = self.machine.snapshot()
        self.snapshot_membership = self._membership_state()
        self._forget_below(self.retained_from)
        record = SnapshotRecord(self.snapshot_slot, self.snapshot_data, self.snapshot_membership)
        return Persist(record)

    def _forget_below(self, slot: int) -> None:
        for s in [s for s in self.decided if s < slot]:
            del self.decided[s]

    def install(self, msg: Snapshot) -> list[Effect]:
        """Jump ahead to a peer's snapshot (only forward: an older one is ignored)."""
        if msg.slot <= self.applied_index:
            return []
        self.machine.restore(msg.data)
        self.applied_index = self.snapshot_slot = self.retained_from = msg.slot
        self.snapshot_data = msg.data
        self._restore_membership(msg.membership)
        self._forget_below(msg.slot)
        skipped = sorted(s for s in self.proposed if s < msg.slot)
        lost = [r for s in skipped for r in self.proposed.pop(s)]
        record = SnapshotRecord(msg.slot, msg.data, self.snapshot_membership)
        effects: list[Effect] = [Persist(record)]
        return effects + self._redirect_lost(lost) + self._apply_ready()

    def answer_catch_up(self, from_slot: int) -> list[Snapshot | Decided]:
        """Decided values from ``from_slot`` on, preceded by a snapshot if they were compacted.

        The run of values holds at most ``catch_up_max_slots`` slots and
        ``catch_up_max_bytes`` of commands (but always one slot, so it makes progress):
        one answer is one frame and one step of the asker, so its size bounds both the frame
        and how long the asker's event loop is busy with it.  The asker learns our decided
        prefix from ``commit_index`` and asks again as soon as it has applied the run.
        """
        if from_slot >= self.applied_index:
            return []
        answer: list[Snapshot | Decided] = []
        start = from_slot
        if from_slot < self.retained_from:
            snapshot = Snapshot(
                self.id, self.snapshot_slot, self.snapshot_data, self.snapshot_membership
            )
            answer.append(snapshot)
            start = self.snapshot_slot
        stop = min(self.applied_index, start + self.catch_up_max_slots)
        values: list[Batch] = []
        size_bytes = 0
        for slot in range(start, stop):
            value = self.decided[slot]
            size_bytes += batch_size_bytes(value)
            if values and size_bytes > self.catch_up_max_bytes:
                break
            values.append(value)
        if values:
            answer.append(Decided(self.id, start, tuple(values), self.applied_index))
        return answer
