"""Machine-readable log lines of the configurations a node used and the removals it acted on.

A node writes one ``membership-record {json}`` line to its log (INFO) for each of:

* ``chosen``: a change it applied from the decided log took effect (``Membership.taken``):
  the configuration and the first slot it governs;
* ``state``: its membership changed (a change applied, one coming into force, a snapshot
  restored), and once at start: the configuration in force at its applied index, and the
  pending one with its first slot.  ``source`` says why: ``start`` (recovered from its own
  data), ``joined`` (a joining node starts from the configuration it was added to, read from
  ``identity.json``, and uses it for no quorum), ``change`` (while running);
* ``removed``: it stopped because a peer's removal notice said a newer configuration leaves
  it out (``RemovalNotice``).

Nothing in the node reads these lines: they are for a checker that sees every node's log at
once (``torture.membership_history``), which holds each configuration used and each removal
acted on against the chosen history.  ``parse`` is the one reader of the format.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from pypaxos.multi.membership import Configuration, MembershipState, RemovalNotice

PREFIX: Final = "membership-record "
LINE_CHARS_MAX: Final = 64 * 1024  # a line longer than this is not a record (bounded parse)


class ConfigSeen(msgspec.Struct, frozen=True):
    """A configuration without its address records: what the checker compares."""

    epoch: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]

    @classmethod
    def of(cls, config: Configuration) -> ConfigSeen:
        return cls(config.epoch, tuple(config.voters), tuple(config.learners))

    @property
    def members(self) -> frozenset[int]:
        return frozenset((*self.voters, *self.learners))


class ChosenRecord(msgspec.Struct, frozen=True, tag="chosen"):
    """A change applied from the decided log took effect, governing from ``first_slot`` on."""

    node_id: int
    config: ConfigSeen
    first_slot: int


class StateRecord(msgspec.Struct, frozen=True, tag="state"):
    """The membership this node used at ``applied_index``."""

    node_id: int
    source: Literal["start", "joined", "change"]
    applied_index: int
    current: ConfigSeen
    pending: ConfigSeen | None = None
    pending_from: int | None = None


class RemovedRecord(msgspec.Struct, frozen=True, tag="removed"):
    """This node stopped on ``told_by``'s notice that configuration ``epoch`` leaves it out."""

    node_id: int
    told_by: int
    epoch: int
    slot: int  # the notice's first slot of that configuration, ``SLOT_UNKNOWN`` if not known


Record = ChosenRecord | StateRecord | RemovedRecord

_decoder = msgspec.json.Decoder(Record)


def chosen_line(node_id: int, first_slot: int, config: Configuration) -> str:
    record = ChosenRecord(node_id, ConfigSeen.of(config), first_slot)
    return PREFIX + msgspec.json.encode(record).decode()


def state_line(
    node_id: int,
    source: Literal["start", "joined", "change"],
    applied_index: int,
    state: MembershipState,
) -> str:
    pending = ConfigSeen.of(state.pending) if state.pending is not None else None
    pending_from = state.pending_from if state.pending is not None else None
    record = StateRecord(
        node_id, source, applied_index, ConfigSeen.of(state.current), pending, pending_from
    )
    return PREFIX + msgspec.json.encode(record).decode()


def removed_line(node_id: int, told_by: int, notice: RemovalNotice) -> str:
    record = RemovedRecord(node_id, told_by, notice.epoch, notice.slot)
    return PREFIX + msgspec.json.encode(record).decode()


def parse(line: str) -> Record | None:
    """The record in a log line, ``None`` when the line holds none; ``ValueError`` when it
    holds one that does not decode (a log is the checker's input: it says so, precisely)."""
    at = line.find(PREFIX)
    if at < 0 or len(line) > LINE_CHARS_MAX:
        return None
    try:
        return _decoder.decode(line[at + len(PREFIX) :].strip())
    except msgspec.DecodeError as error:
        raise ValueError(f"a membership record that does not decode: {error}") from None
