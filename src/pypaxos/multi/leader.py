"""The leader (distinguished proposer) of Multi-Paxos: phase 1 once, then phase 2 per slot.

Paxos Made Simple, section 3: one ``Prepare`` covers every slot from the first undecided one;
from a quorum of promises the leader re-proposes per slot the highest-ballot value reported
(P2c), fills holes with no-ops, and leaves slots below a reported ``log_start`` to catch-up.
Then each batch needs only phase 2, with up to ``window_slots`` slots in flight (van Renesse &
Altinbuken, "Paxos Made Moderately Complex", section 3).  Thrifty (``MultiConfig.thrifty``):
each ``Accept`` goes first only to ``targets``, the quickest voters that make a quorum with the
leader (Moraru et al., "There Is More Consensus in Egalitarian Parliaments", SOSP 2013,
section 4); safety does not depend on who receives it.

This class only does bookkeeping; ``Node`` turns its decisions into messages and records.
More: docs/design.md, 'Multi-Paxos' and 'Thrifty leaders'.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from pypaxos.core.quorum import QuorumSystem
from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.multi.bugs import LogBug
from pypaxos.multi.config import MultiConfig
from pypaxos.multi.log import NOOP, Batch, Entry, Vote
from pypaxos.multi.membership import holds_change
from pypaxos.multi.messages import Accepted, Prepare, Promise


class Phase(Enum):
    IDLE = "idle"
    PREPARING = "preparing"
    LEADING = "leading"


@dataclass(slots=True)
class InFlight:
    value: Batch
    sent_tick: int = 0  # when its ``Accept`` last left (``Node._retransmit`` goes by its age)
    acks: set[int] = field(default_factory=set)


class Leader:
    __slots__ = (
        "ballot",
        "bugs",
        "config",
        "first_slot",
        "hold_cleared",
        "hold_slot",
        "id",
        "inflight",
        "next_slot",
        "phase",
        "promises",
        "queue",
        "quorum",
        "resume_applied",
        "resume_slot",
        "slot_quorum",
        "targets",
    )

    def __init__(self, node_id: int, config: MultiConfig, quorum: QuorumSystem) -> None:
        self.id = node_id
        self.config = config
        self.bugs = config.bugs
        self.quorum = quorum
        self.ballot: Ballot = NULL_BALLOT
        self.phase = Phase.IDLE
        self.first_slot = 0
        self.next_slot = 0
        self.promises: dict[int, Promise] = {}
        self.inflight: dict[int, InFlight] = {}
        self.queue: deque[Entry] = deque()
        self.targets: tuple[int, ...] = ()  # thrifty: who gets each Accept at first
        # Reconfiguration (``multi.membership``): the phase-2 quorum of each slot, when the
        # membership can change; ``quorum`` (phase 1) then spans every configuration it knows.
        self.slot_quorum: Callable[[int], QuorumSystem] | None = None
        # The first slot whose configuration phase 1 could not know (``None``: none): nothing is
        # proposed from there until a new phase 1, once the applied prefix tells it.
        self.resume_slot: int | None = None
        self.resume_applied = 0  # ... once the applied index reaches this
        # A new configuration's first slot, held back until a majority of its voters hold
        # every slot before it on their disks (``Node._durable_hold``; ``None``: no hold), and
        # the last first slot that was cleared (a majority's durable prefixes only grow).
        self.hold_slot: int | None = None
        self.hold_cleared = 0

    # -- phase 1 ----------------------------------------------------------------------------

    def prepare(self, ballot: Ballot, first_slot: int) -> Prepare:
        self.ballot = ballot
        self.phase = Phase.PREPARING
        self.first_slot = first_slot
        self.promises = {}
        self.inflight = {}
        self.resume_slot = None
        return Prepare(self.id, ballot, first_slot)

    def on_promise(self, msg: Promise) -> bool:
        """Count a promise; true once phase 1 has a quorum (the caller then calls take_over)."""
        if self.phase is not Phase.PREPARING or msg.ballot != self.ballot:
            return False
        self.promises[msg.sender] = msg
        return self.quorum.is_phase1_quorum(self.promises.keys())

    def take_over(self) -> list[tuple[int, Batch]]:
        """Become leader; return the (slot, value) re-proposals that phase 1 dictates."""
        self.phase = Phase.LEADING
        self._choose_targets(list(self.promises))
        base = max([self.first_slot, *(p.log_start for p in self.promises.values())])
        if LogBug.NO_REPROPOSE in self.bugs:
            self.next_slot = self.first_slot
            return []
        best = self._best_votes(base)
        top = max(best, default=base - 1)
        if self.slot_quorum is not None:
            known_top = self._known_configuration_top(best, base, top)
            if known_top < top or base > self.first_slot:
                self.resume_slot = known_top + 1
                self.resume_applied = max(known_top + 2 - self.config.alpha_slots, base)
                top = known_top
        self.next_slot = top + 1
        return [(s, best[s].value if s in best else NOOP) for s in range(base, top + 1)]

    def reported_frontier(self) -> int:
        """The first slot after everything phase 1's promisers reported, voted or compacted:
        every value ever chosen lies below it (a phase-2 quorum meets the phase-1 quorum).  It
        exceeds ``next_slot`` while re-proposals wait for a membership change's phase 1
        (``resume_slot``); a read index never goes below it (``Node.read_barrier``)."""
        frontier = self.first_slot
        for promise in self.promises.values():
            frontier = max(frontier, promise.log_start, *(v.slot + 1 for v in promise.votes))
        return frontier

    def _known_configuration_top(self, best: dict[int, Vote], base: int, top: int) -> int:
        """The last slot whose configuration phase 1 covered (``multi.membership``): a change
        reported in slot ``s`` may be chosen and govern from ``s + alpha`` on, so re-proposals
        stop before that; the slots after it wait for the phase 1 that follows the change.  The
        slots between our first slot and ``base`` are decided but unknown to us (a promiser
        compacted them): any may hold a change, so nothing goes beyond our first slot + alpha."""
        if base > self.first_slot:
            top = min(top, self.first_slot + self.config.alpha_slots - 1)
        for slot in range(base, top + 1):
            vote = best.get(slot)
            if vote is not None and holds_change(vote.value):
                return min(top, slot + self.config.alpha_slots - 1)
        return top

    def change_in_flight(self) -> bool:
        """A membership change is queued or proposed and not yet decided."""
        return any(e.origin < 0 for e in self.queue) or any(
            holds_change(f.value) for f in self.inflight.values()
        )

    def _best_votes(self, base: int) -> dict[int, Vote]:
        promises = list(self.promises.values())
        if LogBug.NOOP_OVERWRITES_CHOSEN in self.bugs:
            promises = [p for p in promises if p.sender == self.id]
        best: dict[int, Vote] = {}
        for promise in promises:
            for vote in promise.votes:
                if vote.slot < base:
                    continue
                known = best.get(vote.slot)
                if known is None or self._prefer(vote, known):
                    best[vote.slot] = vote
        return best

    def _prefer(self, vote: Vote, known: Vote) -> bool:
        if LogBug.ADOPT_LOWEST_BALLOT in self.bugs:
            return vote.ballot < known.ballot
        return vote.ballot > known.ballot

    def most_advanced_promiser(self) -> tuple[int, int]:
        """(commit index, node) of the promiser that knows the longest decided prefix."""
        return max((p.commit_index, p.sender) for p in self.promises.values())

    # -- phase 2 ----------------------------------------------------------------------------

    def enqueue(self, entry: Entry) -> bool:
        if len(self.queue) >= self.config.queue_max_commands:
            return False
        self.queue.append(entry)
        return True

    def next_batches(self, commit_index: int) -> list[tuple[int, Batch]]:
        """Take queued entries into new slots while the window has room."""
        if self.phase is not Phase.LEADING:
            return []
        plan: list[tuple[int, Batch]] = []
        stop = self._stop_slot(commit_index + self.config.window_slots)
        while self.queue and self.next_slot < stop:
            plan.append((self.next_slot, self._take_batch()))
            self.next_slot += 1
        return plan

    def fill_until(self, commit_index: int, until_slot: int) -> list[tuple[int, Batch]]:
        """Empty batches in the slots from the next one up to ``until_slot`` (excluded) that
        the window allows, when nothing is queued: what brings a decided membership change
        into force on an idle log (``MultiConfig.fill_to_pending_change``)."""
        if self.phase is not Phase.LEADING or self.queue:
            return []
        stop = self._stop_slot(min(until_slot, commit_index + self.config.window_slots))
        plan: list[tuple[int, Batch]] = []
        while self.next_slot < stop:
            plan.append((self.next_slot, NOOP))
            self.next_slot += 1
        return plan

    def _stop_slot(self, stop: int) -> int:
        """``stop``, or the first slot phase 1 could not know or a hold keeps back if lower."""
        if self.resume_slot is not None:
            stop = min(stop, self.resume_slot)
        if self.hold_slot is not None:
            stop = min(stop, self.hold_slot)
        return stop

    def _take_batch(self) -> Batch:
        batch: list[Entry] = []
        size_bytes = 0
        while self.queue and len(batch) < self.config.batch_max_commands:
            entry = self.queue[0]
            if batch and size_bytes + len(entry.command) > self.config.batch_max_bytes:
                break
            batch.append(self.queue.popleft())
            size_bytes += len(entry.command)
        return tuple(batch)

    def record(self, slot: int, value: Batch, now: int = 0) -> None:
        assert slot not in self.inflight, f"slot {slot} proposed twice in ballot {self.ballot}"
        self.inflight[slot] = InFlight(value, now)

    def on_accepted(self, msg: Accepted) -> tuple[int, Batch] | None:
        """Count a vote; return (slot, value) when the slot is chosen."""
        if self.phase is not Phase.LEADING or msg.ballot != self.ballot:
            return None
        flight = self.inflight.get(msg.slot)
        if flight is None:
            return None
        flight.acks.add(msg.sender)
        quorum = self.quorum if self.slot_quorum is None else self.slot_quorum(msg.slot)
        if LogBug.COMMIT_WITHOUT_QUORUM not in self.bugs and not quorum.is_phase2_quorum(
            flight.acks
        ):
            return None
        del self.inflight[msg.slot]
        if self.config.thrifty:
            acks = flight.acks
            self._choose_targets([*(p for p in self.targets if p in acks), *acks])
        return msg.slot, flight.value

    def _choose_targets(self, first: list[int]) -> None:
        """Thrifty: the fewest peers that make a phase-2 quorum with us, taken from ``first``
        in order, then from the other members (module docstring, "Thrifty")."""
        chosen: list[int] = []
        for peer in [*first, *self.quorum.members]:
            if self.quorum.is_phase2_quorum([*chosen, self.id]):
                break
            if peer != self.id and peer not in chosen:
                chosen.append(peer)
        self.targets = tuple(chosen)

    def stop(self) -> list[Entry]:
        """Stop leading; return the queued entries that will never be proposed by us."""
        self.phase = Phase.IDLE
        self.inflight = {}
        self.promises = {}
        drained = list(self.queue)
        self.queue.clear()
        return drained
