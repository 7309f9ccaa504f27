"""Reconfiguration: the membership is replicated state, changed by a log entry.

The algorithm is Lamport's alpha-reconfiguration (Lamport, Malkhi and Zhou, "Reconfiguring a
State Machine", 2010, section 4; van Renesse and Altinbuken, "Paxos Made Moderately Complex",
2015, section on reconfiguration): a change decided in slot ``s`` governs every slot from
``s + alpha`` on, with ``alpha = window_slots``.  A leader proposes a slot only below its applied
index plus its window, so it always knows the configuration of every slot it has in flight: all
the changes that may govern them sit in slots it has already applied.

A ``Configuration`` is an epoch, the voters (the acceptors whose majority decides) and the
learners (they receive the decided log and catch up, are counted in no quorum and never
campaign).  The replicated ``MembershipState`` holds the configuration in force (``current``)
and at most one decided-but-not-yet-active one (``pending``, from ``pending_from`` on): one
change at a time, which the leader enforces with a typed refusal and the apply rule enforces
again (a change whose epoch is not the next one, or that arrives while another is pending, is
ignored on every replica alike).

Why it is safe, in short (docs/design.md, "Reconfiguration"):

* every slot ``n`` has one configuration, a function of the decided slots ``<= n - alpha``, so
  every node that knows it agrees on it;
* phase 1 of a leader whose first undecided slot is ``a`` gathers a majority of *each*
  configuration that may govern a slot from ``a`` on that it can know of (``current`` and
  ``pending``: ``phase1_quorum``), and re-proposes a reported value only in slots whose
  configuration it knows: below ``s + alpha`` for the first reported vote ``s`` that holds a
  change (``Leader.take_over``);
* phase 2 of slot ``n`` counts a majority of ``config_at(n)`` (``quorum_at``);
* a leader that applies a change of voters runs phase 1 again, in a higher ballot, before it
  proposes in a slot the new configuration governs (``Node._membership_moved``).

The membership travels with snapshots (the first chunk of a reconfigurable replica's snapshot,
``encode_membership_state``, ``MembershipSnapshotLoader``):
after a crash a node knows the configuration of every slot up to its snapshot plus alpha, and
learns the rest by replaying the log, which is all a leader needs (it acts only on slots whose
configuration its applied prefix determines).  Acceptors never consult it.

A node removed while it was cut off never applies its removal (its peers stop talking to it).
A peer whose configuration no longer has it says so when it dials (``Membership.notice_for``,
a ``RemovalNotice``, carried by the shell's handshake refusal), and the node takes it as its
removal only if that configuration is newer than every one it knows (``judge_removal``):
configurations form one chain, one epoch per change, so a decided configuration of a higher
epoch without the node was decided after the last one with it.  An older claim (a peer that
has not caught up, or has not applied the change that added the node) changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Final

import msgspec

from pypaxos.core.quorum import Majority, QuorumSystem
from pypaxos.multi.bugs import LogBug
from pypaxos.multi.log import Batch, Entry

if TYPE_CHECKING:
    from pypaxos.multi.snapshots import SnapshotLoader

MEMBERSHIP_ORIGIN: Final = -1
"""The ``Entry.origin`` of a membership change.  Node ids are ``>= 0`` and a node stamps client
commands with its own id, so no client command can pose as a change."""

NODE_ID_MAX: Final = 2**31 - 1
"""The highest node id a peer message may name once membership can change (a node cannot know
the members added after its applied index, so it checks ids against this bound instead)."""


MEMBER_ADDRESS_BYTES_MAX: Final = 1024
"""The largest address record a change may carry for one member."""

REMOVALS_KEPT: Final = 64
"""How many removals a node remembers the epoch and first slot of (``Membership.removals``)."""

CHANGES_TAKEN_KEPT: Final = 16
"""How many of the last changes applied from the log a node keeps (``Membership.taken``)."""

SLOT_UNKNOWN: Final = -1
"""A ``RemovalNotice``'s slot when the peer learned its configuration from a snapshot."""


class RemovalNotice(msgspec.Struct, frozen=True, array_like=True):
    """A member's word that its configuration ``epoch`` does not have ``node_id``.

    ``slot`` is the first slot that configuration governs when the member applied the change
    that removed the node itself (``SLOT_UNKNOWN`` otherwise: ``epoch`` is then its latest
    configuration's, which has the node neither)."""

    node_id: int
    epoch: int
    slot: int = SLOT_UNKNOWN


class RemovalVerdict(Enum):
    """What a node makes of a ``RemovalNotice`` (``judge_removal``)."""

    REMOVED = "removed"  # a newer configuration than any it knows leaves it out
    STALE = "stale"  # not newer than a configuration it knows: the peer is behind
    OTHER_NODE = "other-node"  # the notice names another node


def judge_removal(node_id: int, known_epoch: int, notice: RemovalNotice) -> RemovalVerdict:
    """Does ``notice``, from a member of this node's own cluster over an authenticated link,
    mean that node ``node_id`` was removed?  ``known_epoch``: the newest configuration epoch
    the node knows, one that has it (else it already knows it was removed)."""
    if notice.node_id != node_id:
        return RemovalVerdict.OTHER_NODE
    if notice.epoch <= known_epoch:
        return RemovalVerdict.STALE
    return RemovalVerdict.REMOVED


class MemberAddress(msgspec.Struct, frozen=True, array_like=True):
    """An opaque record of where a member can be reached, carried with the configuration for
    the shell (the runtime's advertised peer and client addresses); the protocol never reads
    it, so the simulator and the model checker run without any."""

    node_id: int
    record: bytes


class Configuration(msgspec.Struct, frozen=True, array_like=True):
    """One configuration: its epoch, its voters, its (non-voting) learners, and the address
    records of the members that were added with one (sorted by node id)."""

    epoch: int
    voters: tuple[int, ...]
    learners: tuple[int, ...] = ()
    addresses: tuple[MemberAddress, ...] = ()

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted({*self.voters, *self.learners}))

    def address_of(self, node_id: int) -> bytes | None:
        """The address record ``node_id`` was added with, if any."""
        for entry in self.addresses:
            if entry.node_id == node_id:
                return entry.record
        return None


class MembershipState(msgspec.Struct, frozen=True, array_like=True):
    """The replicated membership: ``current`` governs the slots below ``pending_from`` (from
    wherever the node's log starts), ``pending`` (if any) the slots from ``pending_from`` on.
    Once ``pending`` is in force it becomes ``current`` and ``pending_from`` stays, the first
    slot it governs (0 for the first configuration, and in snapshots of earlier versions)."""

    current: Configuration
    pending: Configuration | None = None
    pending_from: int = 0

    @property
    def latest(self) -> Configuration:
        return self.current if self.pending is None else self.pending

    def config_at(self, slot: int) -> Configuration:
        if self.pending is not None and slot >= self.pending_from:
            return self.pending
        return self.current

    def governing_from(self, slot: int) -> list[Configuration]:
        """Every configuration known to govern some slot ``>= slot``."""
        configs = [self.config_at(slot)]
        if self.pending is not None and self.pending_from > slot:
            configs.append(self.pending)
        return configs


class MembershipChange(msgspec.Struct, frozen=True, array_like=True):
    """A change as it sits in the log: who proposed it and the whole configuration it makes."""

    proposer: int
    config: Configuration


def encode_change(change: MembershipChange) -> bytes:
    return msgspec.msgpack.encode(change)


def decode_change(command: bytes) -> MembershipChange | None:
    try:
        return msgspec.msgpack.decode(command, type=MembershipChange)
    except msgspec.DecodeError:
        return None


def encode_configuration(config: Configuration) -> bytes:
    """A configuration as the proposer's ``Reply`` carries it."""
    return msgspec.msgpack.encode(config)


def decode_configuration(data: bytes) -> Configuration:
    return msgspec.msgpack.decode(data, type=Configuration)


def encode_membership_state(state: MembershipState) -> bytes:
    """The leading chunk of a reconfigurable replica's snapshot (``Replica.snapshot_chunks``)."""
    return msgspec.msgpack.encode(state)


def decode_membership_state(data: bytes) -> MembershipState:
    """A snapshot's membership chunk; ``ValueError`` (msgspec's errors are ``ValueError``s)
    when it does not decode or names no voters (a peer's or a disk's bytes are untrusted)."""
    state = msgspec.msgpack.decode(data, type=MembershipState)
    for config in (state.current, state.pending):
        if config is not None and not config.voters:
            raise ValueError(f"a snapshot's membership has no voters in epoch {config.epoch}")
        if config is not None and any(
            len(a.record) > MEMBER_ADDRESS_BYTES_MAX for a in config.addresses
        ):
            raise ValueError("a snapshot's membership has an oversized address record")
    return state


def holds_change(value: Batch) -> bool:
    return any(entry.origin == MEMBERSHIP_ORIGIN for entry in value)


def change_entry(request_id: int, change: MembershipChange) -> Entry:
    return Entry(MEMBERSHIP_ORIGIN, request_id, encode_change(change))


# -- the operations a client asks for ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddLearner:
    """Add ``node_id`` as a learner; ``address`` is its opaque address record (may be empty)."""

    node_id: int
    address: bytes = b""


@dataclass(frozen=True, slots=True)
class Promote:
    """Make a caught-up learner a voter."""

    node_id: int


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove a voter or a learner (the leader too: it steps down once the change applies)."""

    node_id: int


@dataclass(frozen=True, slots=True)
class Replace:
    """Promote the caught-up learner ``new_id`` and remove the voter ``old_id`` in one change."""

    old_id: int
    new_id: int


Change = AddLearner | Promote | Remove | Replace


class RefusalReason(Enum):
    NOT_LEADER = "not-leader"
    CHANGE_IN_FLIGHT = "change-in-flight"
    UNKNOWN_MEMBER = "unknown-member"
    ALREADY_MEMBER = "already-member"
    NOT_A_LEARNER = "not-a-learner"
    LEARNER_BEHIND = "learner-behind"
    NO_VOTER_LEFT = "no-voter-left"
    BAD_NODE_ID = "bad-node-id"
    BAD_ADDRESS = "bad-address"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class MembershipRefused:
    """Effect: the change ``request_id`` asked for was not proposed, and why.  ``leader_id`` is
    a hint for ``NOT_LEADER`` (``None`` when unknown)."""

    request_id: int
    reason: RefusalReason
    detail: str
    leader_id: int | None = None


def next_configuration(latest: Configuration, change: Change) -> Configuration | MembershipRefused:
    """The configuration ``change`` makes of ``latest`` (request id 0 in a refusal: the caller
    fills it in)."""
    voters, learners = list(latest.voters), list(latest.learners)
    members = set(voters) | set(learners)
    addresses = {entry.node_id: entry.record for entry in latest.addresses}

    def refuse(reason: RefusalReason, detail: str) -> MembershipRefused:
        return MembershipRefused(0, reason, detail)

    match change:
        case AddLearner(node, address):
            if not 0 <= node <= NODE_ID_MAX:
                return refuse(RefusalReason.BAD_NODE_ID, f"node id {node} out of range")
            if node in members:
                return refuse(RefusalReason.ALREADY_MEMBER, f"node {node} is already a member")
            if len(address) > MEMBER_ADDRESS_BYTES_MAX:
                detail = f"node {node}'s address record is over {MEMBER_ADDRESS_BYTES_MAX} bytes"
                return refuse(RefusalReason.BAD_ADDRESS, detail)
            learners.append(node)
            if address:
                addresses[node] = address
        case Promote(node):
            if node not in learners:
                return refuse(RefusalReason.NOT_A_LEARNER, f"node {node} is not a learner")
            learners.remove(node)
            voters.append(node)
        case Remove(node):
            if node not in members:
                return refuse(RefusalReason.UNKNOWN_MEMBER, f"node {node} is not a member")
            if voters == [node]:
                return refuse(RefusalReason.NO_VOTER_LEFT, f"node {node} is the last voter")
            (voters if node in voters else learners).remove(node)
            addresses.pop(node, None)
        case Replace(old, new):
            if old not in voters:
                return refuse(RefusalReason.UNKNOWN_MEMBER, f"node {old} is not a voter")
            if new not in learners:
                return refuse(RefusalReason.NOT_A_LEARNER, f"node {new} is not a learner")
            voters.remove(old)
            learners.remove(new)
            voters.append(new)
            addresses.pop(old, None)
    kept = tuple(MemberAddress(n, addresses[n]) for n in sorted(addresses))
    return Configuration(latest.epoch + 1, tuple(sorted(voters)), tuple(sorted(learners)), kept)


def promoted_by(change: Change) -> int | None:
    match change:
        case Promote(node) | Replace(_, node):
            return node
        case AddLearner() | Remove():
            return None


class JointQuorum:
    """A quorum of each of several quorum systems at once (phase 1 across configurations)."""

    __slots__ = ("members", "parts")

    def __init__(self, parts: Iterable[QuorumSystem]) -> None:
        self.parts = tuple(parts)
        self.members = tuple(sorted({m for part in self.parts for m in part.members}))

    def is_phase1_quorum(self, ids: Collection[int]) -> bool:
        return all(part.is_phase1_quorum(ids) for part in self.parts)

    def is_phase2_quorum(self, ids: Collection[int]) -> bool:
        return all(part.is_phase2_quorum(ids) for part in self.parts)


class _AnyNodeId:
    """Every id in ``[0, NODE_ID_MAX]``: the senders a reconfigurable node accepts."""

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, int) and 0 <= node_id <= NODE_ID_MAX


class Membership:
    """A node's copy of the replicated membership, and the quorums it implies."""

    __slots__ = (
        "alpha_slots",
        "bugs",
        "changes_applied",
        "former_voters",
        "majorities",
        "removals",
        "state",
        "taken",
        "taken_count",
        "version",
    )

    def __init__(
        self, genesis: Configuration, alpha_slots: int, bugs: frozenset[LogBug] = frozenset()
    ) -> None:
        self.state = MembershipState(genesis)
        self.alpha_slots = alpha_slots
        self.bugs = bugs
        self.version = 0  # bumped at every change of ``state`` (the node refreshes its views)
        self.changes_applied = 0  # change entries applied, ignored ones too (phase 1 again)
        self.former_voters: set[int] = set()  # only for the planted bug ``removed-still-counted``
        # The quorum systems of the last configurations asked for (phase 2 asks per vote).
        self.majorities: list[tuple[Configuration, QuorumSystem]] = []
        # The members the changes this node applied took out, with the configuration that did
        # it (not replicated: a node that learns a configuration from a snapshot has no entry).
        self.removals: dict[int, RemovalNotice] = {}
        # The last changes applied from the decided log that took effect, oldest first, each
        # with the first slot it governs, and how many ever did: the shell's record of the
        # chosen history (torture checks every configuration a node used against it).
        self.taken: list[tuple[int, Configuration]] = []
        self.taken_count = 0

    def _set(self, state: MembershipState) -> None:
        if state != self.state:
            self.state = state
            self.version += 1

    def restore(self, state: MembershipState | None) -> None:
        """Take the membership a snapshot carried (``None``: a snapshot from before it had one)."""
        if state is not None:
            self._set(state)

    def apply(self, slot: int, command: bytes) -> tuple[MembershipChange | None, bool]:
        """Apply the change decided in ``slot``: the change read (``None`` if unreadable) and
        whether it took effect (not if its epoch is not the next one, or another change is
        still pending: every replica ignores it alike)."""
        self.changes_applied += 1
        change = decode_change(command)
        if change is None:
            return None, False
        state = self.state
        if LogBug.TWO_CHANGES_IN_FLIGHT in self.bugs:
            if change.config.epoch <= state.current.epoch:
                return change, False
        elif state.pending is not None or change.config.epoch != state.latest.epoch + 1:
            return change, False
        self.former_voters.update(state.latest.voters)
        first_slot = slot + self.alpha_slots
        self._set(MembershipState(state.current, change.config, first_slot))
        self._note_removals(state.latest, change.config, first_slot)
        self.taken = [*self.taken[1 - CHANGES_TAKEN_KEPT :], (first_slot, change.config)]
        self.taken_count += 1
        return change, True

    def _note_removals(self, before: Configuration, after: Configuration, first_slot: int) -> None:
        for node_id in set(after.members) - set(before.members):
            self.removals.pop(node_id, None)  # added back
        for node_id in sorted(set(before.members) - set(after.members)):
            self.removals.pop(node_id, None)
            self.removals[node_id] = RemovalNotice(node_id, after.epoch, first_slot)
        while len(self.removals) > REMOVALS_KEPT:
            del self.removals[next(iter(self.removals))]  # the oldest

    def notice_for(self, node_id: int) -> RemovalNotice | None:
        """What to tell ``node_id`` when it dials this node: ``None`` while a configuration this
        node knows (in force or pending) has it, else the removal this node applied, or else
        (it learned its configuration from a snapshot) its latest configuration, slot unknown."""
        state = self.state
        if any(node_id in c.members for c in (state.current, state.pending) if c is not None):
            return None
        known = self.removals.get(node_id)
        if known is not None:
            return known
        return RemovalNotice(node_id, state.latest.epoch)

    def adopt_early(self, slot: int, config: Configuration) -> None:
        """The planted bug ``config-before-chosen``: use ``config`` at once, for every slot,
        when it was only proposed."""
        self.former_voters.update(self.state.latest.voters)
        self._set(MembershipState(config))

    def fold(self, applied_index: int) -> None:
        """Every slot below ``applied_index`` is applied: a pending configuration whose first
        slot is reached becomes the current one (a function of the applied index only, so every
        replica folds at the same point and snapshots agree)."""
        state = self.state
        if state.pending is not None and state.pending_from <= applied_index:
            # ``pending_from`` stays: the first slot the configuration in force governs
            # (a leader holds it back until a majority of its voters hold the slots before it).
            self._set(MembershipState(state.pending, None, state.pending_from))

    # -- views ------------------------------------------------------------------------------

    def _majority(self, config: Configuration) -> QuorumSystem:
        if LogBug.REMOVED_STILL_COUNTED in self.bugs:
            counted = set(config.voters) | self.former_voters
            return Majority(counted, len(config.voters) // 2 + 1)
        for known, majority in self.majorities:
            if known is config:
                return majority
        made = Majority(config.voters)
        self.majorities = [(config, made), *self.majorities[:1]]
        return made

    def quorum_at(self, slot: int) -> QuorumSystem:
        """Who must accept a value in ``slot`` for it to be chosen (phase 2)."""
        return self._majority(self.state.config_at(slot))

    def phase1_quorum(self, first_slot: int) -> JointQuorum:
        """Promises a leader needs for every slot from ``first_slot`` on whose configuration it
        can know: a majority of each configuration governing such a slot."""
        configs = self.state.governing_from(first_slot)
        if LogBug.LEADER_IGNORES_PENDING_CHANGE in self.bugs:
            configs = configs[:1]
        return JointQuorum(self._majority(c) for c in configs)

    def voters_from(self, slot: int) -> tuple[int, ...]:
        configs = self.state.governing_from(slot)
        if LogBug.LEADER_IGNORES_PENDING_CHANGE in self.bugs:
            configs = configs[:1]  # its Prepare does not even go to the pending voters
        voters = {v for c in configs for v in c.voters}
        if LogBug.REMOVED_STILL_COUNTED in self.bugs:
            voters |= self.former_voters  # it keeps asking them, and counting their votes
        return tuple(sorted(voters))

    def members_from(self, slot: int) -> tuple[int, ...]:
        configs = self.state.governing_from(slot)
        return tuple(sorted({m for c in configs for m in c.members}))

    def is_voter(self, node_id: int) -> bool:
        """A voter of the latest configuration: only those campaign."""
        return node_id in self.state.latest.voters

    def change_pending(self, applied_index: int) -> bool:
        """A decided change is not yet in force at ``applied_index``."""
        state = self.state
        return state.pending is not None and state.pending_from > applied_index


ANY_NODE_ID: Final = _AnyNodeId()


class MembershipSnapshotLoader:
    """Loads a reconfigurable replica's snapshot: the first chunk is the membership, the rest
    go to the machine's loader; the membership is taken only at ``finish``, once the machine's
    state is swapped in (both or neither)."""

    __slots__ = ("_machine_loader", "_membership", "_state")

    def __init__(self, membership: Membership, machine_loader: SnapshotLoader) -> None:
        self._membership = membership
        self._machine_loader = machine_loader
        self._state: MembershipState | None = None

    def load(self, chunk: bytes) -> None:
        if self._state is None:
            self._state = decode_membership_state(chunk)
        else:
            self._machine_loader.load(chunk)

    def finish(self) -> None:
        if self._state is None:
            raise ValueError("a reconfigurable snapshot starts with its membership, none came")
        self._machine_loader.finish()
        self._membership.restore(self._state)
