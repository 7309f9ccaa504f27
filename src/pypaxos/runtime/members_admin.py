"""The runtime's side of reconfiguration: who the members are, where they listen, and the
``PAXOS.MEMBER`` admin command.

The membership is replicated state (``multi.membership``).  A change that adds a node carries
its advertised peer and client addresses as the member's opaque address record
(``AdvertisedAddress``, msgpack), which the protocol keeps with the configuration but never
reads.  ``MemberBook`` turns the node's membership into a view with addresses: a member's own
record, else its ``[[members]]`` entry in ``cluster.toml`` (the first configuration's members
have no record), else what ``identity.json`` recorded.  A view newer than the node's own state
(a joining node knows the membership it was added to before it has caught up) comes from
``identity.json``.

``PAXOS.MEMBER`` (an ``admin`` command when the cluster has ``[[users]]``):

* ``LIST``: ``[epoch, pending, initial, [member...]]``: the latest configuration's epoch, what
  is pending (``""``, or ``"epoch E from slot S"``), the first configuration's voters
  (``"1,2,3"``), and per member ``[id, role, peer, client, caught_up, lag, leader]``: role
  ``voter`` or ``learner``, ``caught_up`` ``yes``/``no``/``unknown`` (only the leader knows its
  followers' progress), ``lag`` in slots (``-1``: unknown), ``leader`` 1 for the leader.
* ``ADD id peer client``: add a learner that will be reached at those addresses;
  ``PROMOTE id``: make a caught-up learner a voter; ``REMOVE id``; ``REPLACE old new``: promote
  the caught-up learner ``new`` and remove the voter ``old`` in one change.  Each answers the
  new configuration's epoch (an integer) once the change is decided and applied on the leader.

Only the leader proposes: another node answers ``-TRYAGAIN not the leader ...`` naming it (the
client follows, as for any ``TRYAGAIN``).  A refusal (``MembershipRefused``) is
``-ERR membership refused (REASON): DETAIL`` with REASON one of ``RefusalReason``'s values.  A
change whose outcome is not known (the leader changed or the request timed out) is
``-TRYAGAIN outcome unknown ...``: ``LIST`` tells whether it was made; a change is never resent
by the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec

from pypaxos.multi import Role
from pypaxos.multi.membership import (
    MEMBER_ADDRESS_BYTES_MAX,
    NODE_ID_MAX,
    AddLearner,
    Change,
    Configuration,
    MembershipRefused,
    MembershipState,
    Promote,
    RefusalReason,
    Remove,
    Replace,
    decode_configuration,
)
from pypaxos.runtime.config import ClusterConfig
from pypaxos.runtime.identity import RecordedMember, RecordedMembership
from pypaxos.runtime.router import Failure, Router
from pypaxos.runtime.server_commands import NodeCommand as NodeCommand
from pypaxos.transport.resp import encode_bulk, encode_error, encode_integer
from pypaxos.transport.tcp import parse_address

if TYPE_CHECKING:
    from pypaxos.runtime.server import RespConnection

REFUSED_PREFIX: Final = "membership refused"
ADDRESS_CHARS_MAX: Final = 255


class AdvertisedAddress(msgspec.Struct, frozen=True, array_like=True):
    """A member's address record: where peers dial it and where clients are sent."""

    peer: str
    client: str


def encode_address(peer: str, client: str) -> bytes:
    return msgspec.msgpack.encode(AdvertisedAddress(peer, client))


def decode_address(record: bytes) -> AdvertisedAddress | None:
    """The record's addresses, ``None`` unless it holds two valid ``host:port`` ones."""
    try:
        address = msgspec.msgpack.decode(record, type=AdvertisedAddress)
        parse_address(address.peer)
        parse_address(address.client)
    except (msgspec.DecodeError, ValueError):
        return None
    return address


# -- the view ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberView:
    id: int
    voter: bool
    peer: str  # "" when no address is known
    client: str


@dataclass(frozen=True, slots=True)
class MembershipView:
    """The latest configuration this node knows, with addresses."""

    epoch: int
    members: tuple[MemberView, ...]
    governing: tuple[int, ...]  # the members of every configuration in force or pending
    pending_from: int | None  # the first slot of a pending configuration

    @property
    def member_ids(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members)

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members if m.voter)

    def member(self, node_id: int) -> MemberView | None:
        return next((m for m in self.members if m.id == node_id), None)

    def recorded(self) -> RecordedMembership:
        """What ``identity.json`` keeps of it."""
        members = tuple(RecordedMember(m.id, m.voter, m.peer, m.client) for m in self.members)
        return RecordedMembership(self.epoch, members)


class MemberBook:
    """The membership with addresses (module docstring); ``view`` after every change."""

    def __init__(
        self, config: ClusterConfig, node_id: int, recorded: RecordedMembership | None
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.recorded = recorded
        self.current: MembershipView | None = None
        # The newest epoch known to include this node: a later one without it removed it.
        self.member_epoch = -1
        if recorded is not None and any(m.id == node_id for m in recorded.members):
            self.member_epoch = recorded.epoch
        elif node_id in config.genesis_voters:
            self.member_epoch = 0

    def view(self, state: MembershipState) -> MembershipView:
        latest = state.latest
        recorded = self._newer_record(latest)
        if recorded is not None:
            epoch, members = recorded
            governing = {m.id for m in members} | set(latest.members)
            view = MembershipView(epoch, members, tuple(sorted(governing)), None)
        else:
            governing = {i for c in (state.current, state.pending) if c for i in c.members}
            pending_from = state.pending_from if state.pending is not None else None
            view = MembershipView(
                latest.epoch, self._members(latest), tuple(sorted(governing)), pending_from
            )
        if self.node_id in view.member_ids:
            self.member_epoch = max(self.member_epoch, view.epoch)
        self.current = view
        return view

    def in_force(self, state: MembershipState) -> MembershipView:
        """The configuration in force at this node's applied index, without a pending one
        (``state.current``; the record when this node's log is behind it): what
        ``identity.json`` keeps.  A configuration that is decided but not yet in force governs
        no slot, so a joiner restarted from it (a joiner starts from its record) would count a
        quorum of it over slots the old voters still hold."""
        config = state.current
        recorded = self._newer_record(config)
        if recorded is not None:
            epoch, members = recorded
            return MembershipView(epoch, members, tuple(m.id for m in members), None)
        members = self._members(config)
        return MembershipView(config.epoch, members, tuple(sorted(config.members)), None)

    def _members(self, config: Configuration) -> tuple[MemberView, ...]:
        return tuple(
            MemberView(i, i in config.voters, *self._addresses(i, config)) for i in config.members
        )

    def _newer_record(self, config: Configuration) -> tuple[int, tuple[MemberView, ...]] | None:
        """The recorded membership's epoch and members when it is newer than ``config`` (this
        node's log is behind its record), else ``None``."""
        recorded = self.recorded
        if recorded is None or recorded.epoch <= config.epoch:
            return None
        members = tuple(
            MemberView(m.id, m.voter, *self._addresses(m.id, None)) for m in recorded.members
        )
        return recorded.epoch, members

    def removed(self, view: MembershipView) -> bool:
        """Does ``view`` say this node was removed (a configuration newer than the last one
        known to include it leaves it out)?"""
        return self.node_id not in view.member_ids and view.epoch > self.member_epoch

    def _addresses(self, node_id: int, config: Configuration | None) -> tuple[str, str]:
        record = config.address_of(node_id) if config is not None else None
        if record is not None:
            address = decode_address(record)
            if address is not None:
                return address.peer, address.client
        member = self.config.find_member(node_id)
        if member is not None:
            return member.peer, member.client
        for known in (self.current, self.recorded):
            found = next((m for m in known.members if m.id == node_id), None) if known else None
            if found is not None and found.peer:
                return found.peer, found.client
        return "", ""

    def client_of(self, node_id: int) -> str:
        """A member's client address, ``""`` when unknown."""
        found = self.current.member(node_id) if self.current is not None else None
        if found is not None:
            return found.client
        member = self.config.find_member(node_id)
        return member.client if member is not None else ""


# -- the command -------------------------------------------------------------------------------


def parse_change(args: tuple[bytes, ...]) -> Change | str:
    """The change ``PAXOS.MEMBER ADD|PROMOTE|REMOVE|REPLACE`` asks for, or why it is invalid."""
    sub, rest = args[0], args[1:]
    ids: list[int] = []
    for raw in rest[: 2 if sub == b"REPLACE" else 1]:
        if not raw.isdigit() or len(raw) > 10 or int(raw) > NODE_ID_MAX:
            return f"node id must be an integer in [0, {NODE_ID_MAX}], got {raw!r}"
        ids.append(int(raw))
    if sub == b"ADD":
        addresses: list[str] = []
        for what, raw in zip(("peer", "client"), rest[1:], strict=True):
            text = raw.decode(errors="replace")
            try:
                if len(text) > ADDRESS_CHARS_MAX:
                    raise ValueError(f"over {ADDRESS_CHARS_MAX} characters")
                parse_address(text)
            except ValueError as error:
                return f"{what} address: {error}"
            addresses.append(text)
        record = encode_address(addresses[0], addresses[1])
        assert len(record) <= MEMBER_ADDRESS_BYTES_MAX
        return AddLearner(ids[0], record)
    if sub == b"PROMOTE":
        return Promote(ids[0])
    if sub == b"REMOVE":
        return Remove(ids[0])
    return Replace(ids[0], ids[1])


class MembersAdmin:
    """Answers ``PAXOS.MEMBER`` on a node's client port (``RespServer.member_admin``)."""

    def __init__(self, router: Router, book: MemberBook) -> None:
        self.router = router
        self.book = book

    def handle(self, conn: RespConnection, command: NodeCommand) -> None:
        slot = conn.new_slot(1)
        if command.args[0] == b"LIST":
            conn.fill(slot, self.list_reply())
            return
        change = parse_change(command.args)
        if isinstance(change, str):
            conn.fill(slot, encode_error(f"ERR {change}"))
            return

        silent = self._never_answered(change)
        if silent is not None:
            detail = f"learner {silent} has never answered the leader (is it running?)"
            refusal = MembershipRefused(0, RefusalReason.LEARNER_BEHIND, detail)
            conn.fill(slot, self._reply(refusal))
            return

        def done(outcome: bytes | MembershipRefused | Failure) -> None:
            conn.fill(slot, self._reply(outcome))

        self.router.submit_change(change, done)

    def _never_answered(self, change: Change) -> int | None:
        """The learner a change promotes, when this node leads and has never heard from it:
        the protocol counts a learner's lag from its last answer, and a young log is short
        enough for one that never started to look caught up."""
        node = self.router.driver.node
        promoted = change.node_id if isinstance(change, Promote) else None
        if isinstance(change, Replace):
            promoted = change.new_id
        if promoted is None or node.role is not Role.LEADER:
            return None
        if promoted not in node.members().latest.learners:
            return None  # the protocol's own refusal says what is wrong
        return None if promoted in node.follower_applied else promoted

    def _reply(self, outcome: bytes | MembershipRefused | Failure) -> bytes:
        if isinstance(outcome, Failure):
            if outcome is Failure.BUSY:
                return encode_error("BUSY the leader's queue is full; try again")
            return encode_error(
                "TRYAGAIN outcome unknown: the leader changed or the change timed out; it may "
                "or may not have been made (see PAXOS.MEMBER LIST)"
            )
        if isinstance(outcome, MembershipRefused):
            if outcome.reason is RefusalReason.NOT_LEADER:
                return self._not_leader(outcome.leader_id)
            reason = outcome.reason.value
            return encode_error(f"ERR {REFUSED_PREFIX} ({reason}): {outcome.detail}")
        try:
            config = decode_configuration(outcome)
        except (msgspec.DecodeError, ValueError):
            return encode_error("ERR the change's answer does not decode")
        return encode_integer(config.epoch)

    def _not_leader(self, leader_id: int | None) -> bytes:
        if leader_id is None or leader_id == self.router.node_id:
            return encode_error("TRYAGAIN not the leader, and no leader is known yet")
        client = self.book.client_of(leader_id)
        where = f" at {client}" if client else ""
        return encode_error(f"TRYAGAIN not the leader: node {leader_id} leads{where}")

    def list_reply(self) -> bytes:
        node = self.router.driver.node
        view = self.book.view(node.members())
        state = node.members()
        pending = ""
        if state.pending is not None:
            pending = f"epoch {state.pending.epoch} from slot {state.pending_from}"
        initial = ",".join(str(i) for i in self.book.config.genesis_voters)
        leading = node.role is Role.LEADER
        leader_id = node.id if leading else node.leader_id
        applied = node.applied_index
        rows: list[bytes] = []
        for member in view.members:
            lag = _lag(member.id, node.id, applied, leading, node.follower_applied)
            if lag is None:
                caught_up = "unknown"
            else:
                caught_up = "yes" if lag <= node.config.promote_lag_max_slots else "no"
            rows.append(
                _array(
                    [
                        encode_integer(member.id),
                        encode_bulk(b"voter" if member.voter else b"learner"),
                        encode_bulk(member.peer.encode()),
                        encode_bulk(member.client.encode()),
                        encode_bulk(caught_up.encode()),
                        encode_integer(-1 if lag is None else lag),
                        encode_integer(int(member.id == leader_id)),
                    ]
                )
            )
        return _array(
            [
                encode_integer(view.epoch),
                encode_bulk(pending.encode()),
                encode_bulk(initial.encode()),
                _array(rows),
            ]
        )


def _array(items: list[bytes]) -> bytes:
    """A RESP array of replies already encoded."""
    return b"*" + str(len(items)).encode() + b"\r\n" + b"".join(items)


def _lag(
    member: int, me: int, applied: int, leading: bool, follower_applied: dict[int, int]
) -> int | None:
    if member == me:
        return 0 if leading else None
    if not leading or member not in follower_applied:
        return None
    return max(0, applied - follower_applied[member])
