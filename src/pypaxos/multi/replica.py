"""The replica: learns decided slots, applies them in order, snapshots, answers catch-up.

Decided values arrive out of order (from the leader's quorum count, the commit index piggybacked
on ``Accept``/``Heartbeat``, ``Decided`` catch-up answers, or a peer's snapshot); the replica
applies the contiguous prefix to the ``StateMachine`` exactly once per slot, in slot order, so every
node walks through the same sequence of states (the replicated state machine of van Renesse &
Altinbuken, "Paxos Made Moderately Complex", section 2: the "replica" role).

Every ``snapshot_every_slots`` applied slots it asks the shell for a snapshot (``TakeSnapshot``)
and keeps applying: the shell copies the machine out of line (the runtime in a forked process)
and reports it durable (``snapshot_saved``).  Only then does the snapshot slot move, and the
values below the *previous* snapshot are forgotten (one interval is kept so a slightly lagging
peer gets entries, not a whole snapshot); the node then lets the durable log below the new
snapshot go (``CompactLog``).  At most one snapshot is in flight, and the replica holds no copy
of one: a peer that needs it is sent the shell's durable copy in chunks (``SendSnapshot``).
Memory is bounded by two snapshot intervals plus the learn window, plus the intervals applied
while a snapshot is written; past ``log_retained_bytes_max`` the interval kept before the
durable snapshot goes first.

Client replies: the node that took a command records its request id as *awaiting*; when the
slot that held it is applied, it replies with the machine's result, and if the slot turned out
to hold something else it redirects (the command was not executed by that proposal).

Membership (``multi.membership``), when the cluster is reconfigurable, is replicated state next
to the machine's: changes are applied from their log entries, and every snapshot of this
replica starts with one chunk holding the membership at its slot (``snapshot_chunks``), taken
back into the node's membership when a snapshot is recovered or installed.  A fixed-membership
replica's snapshots are the machine's chunks alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pypaxos.multi.bugs import LogBug
from pypaxos.multi.effects import (
    Applied,
    CompactLog,
    Effect,
    Redirect,
    Reply,
    SendSnapshot,
    SnapshotRecord,
    TakeSnapshot,
)
from pypaxos.multi.log import Batch, batch_size_bytes
from pypaxos.multi.membership import (
    MEMBERSHIP_ORIGIN,
    Membership,
    MembershipSnapshotLoader,
    encode_configuration,
    encode_membership_state,
)
from pypaxos.multi.messages import Decided
from pypaxos.multi.snapshots import SnapshotLoader


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

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        """The whole state as chunks of about ``chunk_bytes_max`` each (one entry may exceed
        it), such that loading them in order rebuilds an identical machine."""
        ...

    def snapshot_loader(self) -> SnapshotLoader:
        """A loader that rebuilds this machine from ``snapshot_chunks`` output, chunk by chunk,
        and replaces the state only at ``finish`` (``multi.snapshots``)."""
        ...


class Replica:
    __slots__ = (
        "applied_bytes",
        "applied_index",
        "apply_left",
        "apply_max_commands",
        "awaiting",
        "bugs",
        "catch_up_max_bytes",
        "catch_up_max_slots",
        "decided",
        "durable_index",
        "id",
        "installed_slot",
        "learn_window_slots",
        "log_memory_bytes_max",
        "log_retained_bytes_max",
        "machine",
        "membership",
        "proposed",
        "requested_bytes",
        "retained_bytes",
        "retained_from",
        "snapshot_bytes",
        "snapshot_every_slots",
        "snapshot_growth_percent",
        "snapshot_lag_bytes_max",
        "snapshot_pending",
        "snapshot_size_bytes",
        "snapshot_slot",
        "snapshot_wanted_slot",
        "snapshot_window_chunks",
        "snapshots_installed",
        "written_from",
        "written_to",
    )

    def __init__(
        self,
        node_id: int,
        machine: StateMachine,
        snapshot_every_slots: int,
        catch_up_max_slots: int,
        learn_window_slots: int,
        catch_up_max_bytes: int = 1024 * 1024,
        snapshot_window_chunks: int = 4,
        bugs: frozenset[LogBug] = frozenset(),
        log_retained_bytes_max: int = 16 * 1024 * 1024,
        membership: Membership | None = None,
        apply_max_commands: int = 0,
        snapshot_growth_percent: int = 0,
        snapshot_lag_bytes_max: int = 64 * 1024 * 1024,
        log_memory_bytes_max: int = 0,
    ) -> None:
        self.id = node_id
        # Commands applied per input at most (whole slots, one at least; 0: every ready slot),
        # and what is left of it for the input under way (``new_input`` refills it)
        self.apply_max_commands = apply_max_commands
        self.apply_left = apply_max_commands
        self.machine = machine
        self.snapshot_every_slots = snapshot_every_slots
        self.catch_up_max_slots = catch_up_max_slots
        self.catch_up_max_bytes = catch_up_max_bytes
        self.learn_window_slots = learn_window_slots
        self.decided: dict[int, Batch] = {}
        self.applied_index = 0  # every slot below is applied (and decided)
        self.snapshot_slot = 0  # the latest durable snapshot covers the slots below
        self.snapshot_pending = False  # a TakeSnapshot is out, not yet saved or failed
        # A peer asked for a value this node forgot above its durable snapshot: until a durable
        # snapshot covers this slot, one is asked for at each chance, due or not
        # (``answer_catch_up``; -1: none wanted).
        self.snapshot_wanted_slot = -1
        self.installed_slot = 0  # the slot of the last peer's snapshot installed here
        self.snapshots_installed = 0  # peers' snapshots loaded in this lifetime
        # Every slot below ``durable_index`` comes back from this node's own disk after a crash
        # (its durable snapshot, then its ``LearnedRecord``s and the votes they name): what it
        # reports to the leader, which brings a new configuration into force only once a
        # majority of its voters hold the slots before it (``Node._durable_hold``).  The run of
        # records written since it, not joined to it yet (after an installed snapshot that is
        # not saved), is ``[written_from, written_to)``.
        self.durable_index = 0
        self.written_from = self.written_to = 0
        self.snapshot_window_chunks = snapshot_window_chunks
        self.bugs = bugs
        self.retained_from = 0  # decided values are kept for slots >= retained_from
        # The retained log's memory bound: a snapshot is asked for once half of
        # ``log_retained_bytes_max`` of commands were applied since the last one (as well as
        # every so many slots), and the interval kept before the snapshot is cut to the other
        # half, oldest slot first; so the decided values kept stay within about the bound
        # (plus what is applied while a snapshot is being written).
        self.log_retained_bytes_max = log_retained_bytes_max
        self.retained_bytes = 0  # command bytes of the values in ``decided``
        self.applied_bytes = 0  # command bytes applied in this lifetime
        self.snapshot_bytes = 0  # ``applied_bytes`` when the durable snapshot was asked for
        self.requested_bytes = 0  # ``applied_bytes`` when the pending snapshot was asked for
        # Growth schedule (``snapshot_interval_bytes``): 0 is off; else the interval is this
        # percentage of the last durable snapshot's size, which the shell reports
        # (``snapshot_saved``, ``snapshot_size_known``; 0 while unknown).
        self.snapshot_growth_percent = snapshot_growth_percent
        self.snapshot_size_bytes = 0
        self.snapshot_lag_bytes_max = snapshot_lag_bytes_max
        # The in-memory log's own bound (0: none beyond ``log_retained_bytes_max``): past it,
        # applied values the node holds on disk go oldest first, above the durable snapshot
        # too (``forget_applied``), so the snapshot interval no longer sets the memory held.
        self.log_memory_bytes_max = log_memory_bytes_max
        self.awaiting: set[int] = set()  # request ids this node took and has not answered
        self.proposed: dict[int, list[int]] = {}  # slot -> awaiting request ids proposed there
        # Membership (``multi.membership``): replicated state next to the machine's, applied
        # from change entries, carried by snapshots; ``None`` for a fixed-membership replica.
        self.membership = membership

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        """This replica's state as snapshot chunks: the machine's, led by one chunk of the
        membership when the cluster is reconfigurable (what ``TakeSnapshot`` saves)."""
        if self.membership is not None:
            yield encode_membership_state(self.membership.state)
        yield from self.machine.snapshot_chunks(chunk_bytes_max)

    def snapshot_loader(self) -> SnapshotLoader:
        """A loader for ``snapshot_chunks`` output: the machine's loader, behind one that takes
        the leading membership chunk (into the membership at ``finish``) when reconfigurable."""
        loader = self.machine.snapshot_loader()
        if self.membership is None:
            return loader
        return MembershipSnapshotLoader(self.membership, loader)

    def restore(self, record: SnapshotRecord) -> None:
        """Start from a persisted snapshot (recovery); with no chunks the shell loaded the
        machine already."""
        if record.chunks:
            loader = self.snapshot_loader()
            for chunk in record.chunks:
                loader.load(chunk)
            loader.finish()
        self.applied_index = self.snapshot_slot = self.retained_from = record.slot
        self.durable_index = max(self.durable_index, record.slot)
        self._forget_below(record.slot)

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
        self.retained_bytes += batch_size_bytes(value)
        return self._apply_ready()

    def track(self, slot: int, request_ids: list[int]) -> None:
        if request_ids:
            self.proposed.setdefault(slot, []).extend(request_ids)

    @property
    def apply_pending(self) -> bool:
        """The next slot is decided but not applied yet (``apply_max_commands`` cut a run)."""
        return self.applied_index in self.decided

    def apply_more(self) -> list[Effect]:
        """Apply the next ready slots (what an earlier input's bound left), within what is
        left of this input's bound."""
        return self._apply_ready() if self.apply_pending else []

    def new_input(self) -> None:
        """The node's input is done: the next one may apply ``apply_max_commands`` again."""
        self.apply_left = self.apply_max_commands

    def _apply_ready(self) -> list[Effect]:
        effects: list[Effect] = []
        bounded = self.apply_max_commands > 0
        while self.applied_index in self.decided:
            if bounded and self.apply_left <= 0:
                break  # the rest at the next input (``apply_pending``)
            slot = self.applied_index
            value = self.decided[slot]
            self.apply_left -= len(value)
            effects.extend(self._apply(slot, value))
            self.applied_index += 1
            if self.membership is not None:
                self.membership.fold(self.applied_index)
        if self.retained_bytes > self.log_retained_bytes_max:
            self._forget_before_snapshot()
        effects.extend(self._maybe_snapshot())
        return effects

    def _forget_before_snapshot(self) -> None:
        """Over the byte bound (a snapshot is being written and commands keep coming): let the
        values below the durable snapshot go first, oldest first.  A peer that needed them is
        sent that snapshot instead (``answer_catch_up``); the values since it stay."""
        decided = self.decided
        while (
            self.retained_bytes > self.log_retained_bytes_max
            and self.retained_from < self.snapshot_slot
        ):
            value = decided.pop(self.retained_from, None)
            if value is not None:
                self.retained_bytes -= batch_size_bytes(value)
            self.retained_from += 1

    def _apply(self, slot: int, value: Batch) -> list[Effect]:
        effects: list[Effect] = [Applied(slot, value)]
        for entry in value:
            self.applied_bytes += len(entry.command)
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

    def _redirect_lost(self, request_ids: list[int]) -> list[Effect]:
        lost = [r for r in request_ids if r in self.awaiting]
        self.awaiting.difference_update(lost)
        return [Redirect(r, None) for r in lost]

    def snapshot_interval_bytes(self) -> int:
        """Command bytes applied since the last durable snapshot at which the next one is due.

        Fixed (``snapshot_growth_percent`` 0): half of ``log_retained_bytes_max``.  Growth: that
        half is the floor, above it ``snapshot_growth_percent`` of the last snapshot's size, so
        a snapshot, which copies the whole state, is taken once per so many bytes of commands
        per byte of state: its cost per write stays the same as the state grows (the rule of
        an append-only file rewritten once it grew by a percentage of its last size)."""
        floor_bytes = self.log_retained_bytes_max // 2
        if self.snapshot_growth_percent <= 0:
            return floor_bytes
        return max(floor_bytes, self.snapshot_size_bytes * self.snapshot_growth_percent // 100)

    def snapshot_interval_slots(self) -> int:
        """Applied slots since the last durable snapshot at which the next one is due:
        ``snapshot_every_slots``, stretched by the growth schedule in the proportion it
        stretched the byte interval beyond its floor (small batches would otherwise ask for a
        copy of a large state every so many slots)."""
        floor_bytes = max(self.log_retained_bytes_max // 2, 1)
        interval_bytes = self.snapshot_interval_bytes()
        if interval_bytes <= floor_bytes:
            return self.snapshot_every_slots
        return self.snapshot_every_slots * interval_bytes // floor_bytes

    def snapshot_lag_bound_bytes(self) -> int:
        """How many bytes of commands may be applied beyond the last durable snapshot before
        new slots wait for it (the acceptor's window backstop, ``multi.node``):
        ``snapshot_lag_bytes_max``, or under the growth schedule at least twice the interval,
        so that a snapshot asked for at the interval has as many bytes again of writes to be
        written in; a larger state takes proportionally longer to write."""
        bound_bytes = self.snapshot_lag_bytes_max
        if self.snapshot_growth_percent <= 0:
            return bound_bytes
        return max(bound_bytes, 2 * self.snapshot_interval_bytes())

    def _maybe_snapshot(self) -> list[Effect]:
        """Ask for a snapshot once an interval (``snapshot_interval_slots`` or
        ``snapshot_interval_bytes``) was applied since the last durable one, when an
        installed peer's snapshot is not durable yet, or when a peer needs values forgotten
        above the durable snapshot (``snapshot_wanted_slot``)."""
        if self.snapshot_pending:
            return []
        installed = self.installed_slot > self.snapshot_slot
        due_slots = self.applied_index - self.snapshot_slot >= self.snapshot_interval_slots()
        due_bytes = self.applied_bytes - self.snapshot_bytes >= self.snapshot_interval_bytes()
        wanted = self.snapshot_slot <= self.snapshot_wanted_slot
        due = due_slots or due_bytes or installed or wanted
        if not due or self.applied_index == self.snapshot_slot:
            return []
        self.snapshot_pending = True
        self.requested_bytes = self.applied_bytes
        effects: list[Effect] = [TakeSnapshot(self.applied_index)]
        if LogBug.COMPACT_BEFORE_SNAPSHOT_SAVED in self.bugs:
            effects += self._advance_snapshot(self.applied_index)  # before it is durable
        return effects

    def snapshot_saved(self, slot: int, size_bytes: int = 0) -> list[Effect]:
        """The shell's snapshot of the slots below ``slot`` is durable: compact below it.
        ``size_bytes``: its size as stored (0: unknown, the last known size stays), which the
        growth schedule scales the next interval by."""
        self.snapshot_pending = False
        effects: list[Effect] = []
        if self.snapshot_slot < slot <= self.applied_index:
            self.snapshot_bytes = self.requested_bytes
            self.snapshot_size_known(size_bytes)
            effects += self._advance_snapshot(slot)
            self.note_durable(0, slot)  # what the snapshot holds comes back with it
        return effects + self._maybe_snapshot()

    def snapshot_size_known(self, size_bytes: int) -> None:
        """The durable snapshot is ``size_bytes`` as stored (after a recovery, the file the
        node started from); 0 or less leaves the last known size."""
        if size_bytes > 0:
            self.snapshot_size_bytes = size_bytes

    def snapshot_failed(self) -> list[Effect]:
        """The shell could not write the snapshot: nothing moves; asked again at the next
        apply (not at once: a failing disk would be asked in a loop)."""
        self.snapshot_pending = False
        return []

    def _advance_snapshot(self, slot: int) -> list[Effect]:
        """Keep the interval before the new snapshot (catch-up from the log for a follower a
        little behind), cut to half of ``log_retained_bytes_max``, the oldest slots first."""
        keep_from = max(self.retained_from, self.snapshot_slot)
        self.snapshot_slot = slot
        decided = self.decided
        kept_bytes = sum(
            batch_size_bytes(decided[s]) for s in range(keep_from, slot) if s in decided
        )
        while kept_bytes > self.log_retained_bytes_max // 2 and keep_from < slot:
            value = decided.get(keep_from)
            if value is not None:
                kept_bytes -= batch_size_bytes(value)
            keep_from += 1
        self.retained_from = keep_from
        self._forget_below(keep_from)
        if self.retained_bytes > self.log_retained_bytes_max:
            self._forget_before_snapshot()
        return [CompactLog(slot)]

    def note_durable(self, first_slot: int, end_slot: int) -> None:
        """The slots ``[first_slot, end_slot)`` are on this node's disk now (a ``LearnedRecord``
        of them is in an effect list, or a snapshot below ``end_slot`` was saved): move
        ``durable_index`` when they join it.  A run that does not (the slots before it came
        from a peer's snapshot not saved yet, or were a leader's own votes, which it does not
        record) waits as ``[written_from, written_to)`` until something joins them."""
        if first_slot <= self.durable_index:
            self.durable_index = max(self.durable_index, end_slot)
        elif first_slot == self.written_to:
            self.written_to = end_slot
        else:
            self.written_from, self.written_to = first_slot, end_slot
        if self.written_from <= self.durable_index < self.written_to:
            self.durable_index = self.written_to

    def _forget_below(self, slot: int) -> None:
        decided = self.decided
        for s in [s for s in decided if s < slot]:
            self.retained_bytes -= batch_size_bytes(decided.pop(s))

    def forget_applied(self, end_slot: int) -> None:
        """Over ``log_memory_bytes_max``: forget the oldest values kept, below the durable
        snapshot first and then above it, down to three quarters of the bound (so that this
        runs once per quarter of it, not at every input), and never at or past ``end_slot``.

        The caller passes the end of what this node has applied *and* holds on its own disk
        (``Node``), so nothing forgotten is still to be applied or lost at a crash; a peer that
        asks for a forgotten value gets a snapshot taken for it (``answer_catch_up``)."""
        bound_bytes = self.log_memory_bytes_max
        if bound_bytes <= 0 or self.retained_bytes <= bound_bytes:
            return
        target_bytes = bound_bytes - bound_bytes // 4
        end_slot = min(end_slot, self.applied_index)
        decided = self.decided
        while self.retained_bytes > target_bytes and self.retained_from < end_slot:
            value = decided.pop(self.retained_from, None)
            if value is not None:
                self.retained_bytes -= batch_size_bytes(value)
            self.retained_from += 1

    @property
    def retained_slots(self) -> int:
        """How many decided values this node keeps (applied ones for catch-up, and learned
        ones waiting for a gap to fill)."""
        return len(self.decided)

    def installed(self, slot: int) -> list[Effect]:
        """The machine now holds a peer's snapshot of the slots below ``slot`` (only forward).

        It is not durable yet: a snapshot of it is asked for at once, and until it is saved the
        durable snapshot stays the old one (a crash goes back to it and catches up again).
        """
        assert slot > self.applied_index, "a snapshot is installed only forward"
        self.snapshots_installed += 1
        self.applied_index = self.retained_from = self.installed_slot = slot
        self._forget_below(slot)
        skipped = sorted(s for s in self.proposed if s < slot)
        lost = [r for s in skipped for r in self.proposed.pop(s)]
        return self._redirect_lost(lost) + self._apply_ready()

    def answer_catch_up(self, asker: int, from_slot: int) -> list[Effect | Decided]:
        """Decided values from ``from_slot`` on or, if they were compacted, the first window of
        chunks of our durable snapshot (the asker pulls the rest, then asks for values again).

        Values forgotten above the durable snapshot (``forget_applied``) are in no snapshot
        yet: a fresh one is asked for at once (due or not), and the asker, which keeps asking,
        is sent it once it is durable.  Its slot is our applied index when it was asked for,
        at or past every value forgotten by then, so the asker's next request falls in it: no
        answer loops (a snapshot pending since before the values went is followed by another).

        The run of values holds at most ``catch_up_max_slots`` slots and
        ``catch_up_max_bytes`` of commands (but always one slot, so it makes progress):
        one answer is one frame and one step of the asker, so its size bounds both the frame
        and how long the asker's event loop is busy with it.  The asker learns our decided
        prefix from ``commit_index`` and asks again as soon as it has applied the run.
        """
        if from_slot >= self.applied_index:
            return []
        if from_slot < self.retained_from:
            if self.snapshot_slot <= from_slot:
                # Not in our durable snapshot: only an installed peer's snapshot not saved yet
                # covers it (one was asked for at the install), or it was forgotten above the
                # snapshot (one is asked for now, due or not).  Ask later.
                if from_slot < self.installed_slot:
                    return []
                self.snapshot_wanted_slot = max(self.snapshot_wanted_slot, from_slot)
                return list(self._maybe_snapshot())
            window = self.snapshot_window_chunks
            answer: list[Effect | Decided] = [SendSnapshot(asker, self.snapshot_slot, 0, window)]
            if self.retained_from > max(self.snapshot_slot, self.installed_slot):
                # The values after that snapshot were let go too: the asker will need a fresh
                # one once it has this; its writing starts now, beside the transfer.
                self.snapshot_wanted_slot = max(self.snapshot_wanted_slot, self.snapshot_slot)
                answer += self._maybe_snapshot()
            return answer
        start = from_slot
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
            return [Decided(self.id, start, tuple(values), self.applied_index)]
        return []
