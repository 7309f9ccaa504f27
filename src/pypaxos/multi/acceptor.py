"""The slot-wise acceptor: one promise for the whole log, one accepted proposal per slot.

Multi-Paxos keeps a single promised ballot for every slot at once (Paxos Made Simple, section
3: "phase 1 for infinitely many instances" with one message), and per slot the last proposal
accepted.  Rules, as in the single-decree ``core.acceptor``:

* ``Prepare(b, s)`` with ``b > promised``: promise ``b``; report the votes of slots ``>= s``.
* ``Accept(b, slot, v)`` with ``b >= promised``: accept ``(b, v)`` in ``slot``.
* Anything lower: ``Nack(promised)``.

Two bounds keep memory finite however long the run: slots below ``log_start`` were compacted
into a snapshot (they are decided; an ``Accept`` for them is ignored and a promise reports
``log_start`` instead of votes), and slots at or beyond ``window_start + log_window_slots`` are
ignored until the node catches up.  Ignoring a message is always safe in Paxos.

``window_start`` is ``log_start`` or, once the node has applied further (its snapshot is still
being written), the applied index the node passes in ``window_floor``: the window bounds the
votes not yet known decided, and the decided ones waiting for a durable snapshot are bounded
by the node (``MultiConfig.snapshot_lag_bytes_max``).  Counted from ``log_start`` alone, a
snapshot that takes longer to write than the window takes to fill stopped every write until it
was durable.

Every change comes with the ``Persist`` record (see ``effects``) that must be durable before the
reply leaves; ``recover`` rebuilds the acceptor from those records.
"""

from __future__ import annotations

from collections.abc import Iterable

from pypaxos.core.effects import Persist
from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.multi.bugs import LogBug
from pypaxos.multi.effects import AcceptRecord, PromiseRecord, Record, SnapshotRecord
from pypaxos.multi.log import Vote
from pypaxos.multi.messages import Accept, Accepted, Nack, Prepare, Promise


class SlotAcceptor:
    __slots__ = (
        "accepted",
        "bugs",
        "chosen_floor",
        "id",
        "log_start",
        "log_window_slots",
        "promised",
        "window_floor",
    )

    def __init__(
        self, node_id: int, log_window_slots: int, bugs: frozenset[LogBug] = frozenset()
    ) -> None:
        self.id = node_id
        self.log_window_slots = log_window_slots
        self.bugs = bugs
        self.promised: Ballot = NULL_BALLOT
        self.accepted: dict[int, Vote] = {}
        self.log_start = 0
        self.window_floor = 0  # the node's applied index, when it may count the window from it
        # Every slot below is decided, applied and on this node's disk, and its vote was let
        # go from memory (``forget_chosen``); a promise reports it like ``log_start``.
        self.chosen_floor = 0

    @classmethod
    def recover(
        cls,
        node_id: int,
        log_window_slots: int,
        records: Iterable[Record],
        bugs: frozenset[LogBug] = frozenset(),
    ) -> SlotAcceptor:
        """Replay persisted records in append order (the latest record of a slot wins)."""
        acceptor = cls(node_id, log_window_slots, bugs)
        promised = NULL_BALLOT
        for record in records:
            match record:
                case PromiseRecord():
                    promised = max(promised, record.ballot)
                case AcceptRecord():
                    vote = Vote(record.slot, record.ballot, record.value)
                    acceptor.accepted[record.slot] = vote
                case SnapshotRecord():
                    acceptor.compact(record.slot)
        highest_accepted = max((v.ballot for v in acceptor.accepted.values()), default=NULL_BALLOT)
        if LogBug.FORGET_PROMISE_ON_RECOVER in bugs:
            promised = NULL_BALLOT
        acceptor.promised = max(promised, highest_accepted)
        acceptor.compact(acceptor.log_start)
        return acceptor

    def prepare(
        self, msg: Prepare, commit_index: int, durable_index: int = 0
    ) -> tuple[Persist[PromiseRecord] | None, Promise | Nack]:
        """Phase 1b.  ``durable_index``: the node's prefix of decided slots on its own disk,
        reported as ``log_start`` when higher (a reconfigurable node passes it): the leader
        proposes nothing below it and learns those slots from us, as below a snapshot."""
        if msg.ballot <= self.promised:
            return None, Nack(self.id, msg.ballot, self.promised)
        self.promised = msg.ballot
        log_start = max(self.log_start, durable_index)
        if LogBug.FORGOTTEN_VOTES_UNREPORTED not in self.bugs:
            log_start = max(log_start, self.chosen_floor)
        if LogBug.PROMISE_HIDES_COMPACTION in self.bugs:
            log_start = min(log_start, msg.first_slot)
        votes = tuple(v for s, v in sorted(self.accepted.items()) if s >= msg.first_slot)
        promise = Promise(self.id, msg.ballot, msg.first_slot, log_start, commit_index, votes)
        return Persist(PromiseRecord(msg.ballot)), promise

    def accept(self, msg: Accept) -> tuple[Persist[AcceptRecord] | None, Accepted | Nack | None]:
        """Phase 2b for one slot; ``None`` means "ignored" (compacted or beyond the window)."""
        if msg.ballot < self.promised:
            return None, Nack(self.id, msg.ballot, self.promised)
        if not self.log_start <= msg.slot < self.window_start + self.log_window_slots:
            return None, None
        self.promised = msg.ballot
        reply = Accepted(self.id, msg.ballot, msg.slot)
        previous = self.accepted.get(msg.slot)
        if previous is not None and previous.ballot == msg.ballot:
            # One value per slot per ballot: a leader never proposes twice in a ballot.
            assert previous.value == msg.value, f"two values in slot {msg.slot} at {msg.ballot}"
            return None, reply
        assert previous is None or previous.ballot < msg.ballot, "ballots only grow per slot"
        self.accepted[msg.slot] = Vote(msg.slot, msg.ballot, msg.value)
        return Persist(AcceptRecord(msg.slot, msg.ballot, msg.value)), reply

    @property
    def window_start(self) -> int:
        """Where the window of slots this acceptor votes in begins (see the module docstring)."""
        return max(self.log_start, self.window_floor)

    def forget_chosen(self, slot: int) -> None:
        """Let the votes below ``slot`` go from memory (not from the disk): the node decided,
        applied and holds on its own disk every slot there (``Node``), so a promise reports
        ``slot`` as its floor instead, and a leader learns those slots rather than filling
        them (as below a snapshot).  The window is not moved: it still counts from
        ``log_start`` or ``window_floor``, so the snapshot backstop holds as before."""
        start = max(self.log_start, self.chosen_floor)
        if slot <= start:
            return
        self.chosen_floor = slot
        accepted = self.accepted
        for s in range(start, slot):
            accepted.pop(s, None)

    def compact(self, slot: int) -> None:
        """Forget votes below ``slot``: every slot there is decided and in a snapshot."""
        self.log_start = max(self.log_start, slot)
        for s in [s for s in self.accepted if s < self.log_start]:
            del self.accepted[s]
