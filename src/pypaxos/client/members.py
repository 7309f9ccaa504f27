"""The replies of ``PAXOS.MEMBER`` (``runtime.members_admin``) as values, for the clients.

``LIST`` is ``[epoch, pending, initial, [[id, role, peer, client, caught_up, lag, leader],
...]]``; a change answers the new configuration's epoch; a refusal is
``-ERR membership refused (REASON): DETAIL`` (``MembershipRefusedError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pypaxos.client.errors import ClientProtocolError, CommandError, MembershipRefusedError
from pypaxos.client.replies import ErrorReply, Reply

_REFUSED = re.compile(r"membership refused \(([a-z-]+)\): (.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    id: int
    role: str  # "voter" or "learner"
    peer: str  # "" when the answering node does not know it
    client: str
    caught_up: bool | None  # None: the answering node does not know (only the leader does)
    lag_slots: int | None
    leader: bool

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role,
            "peer": self.peer,
            "client": self.client,
            "caught_up": self.caught_up,
            "lag_slots": self.lag_slots,
            "leader": self.leader,
        }


@dataclass(frozen=True, slots=True)
class MembershipInfo:
    epoch: int
    pending: str  # "" or "epoch E from slot S"
    initial_members: tuple[int, ...]
    members: tuple[MemberInfo, ...]

    def member(self, node_id: int) -> MemberInfo | None:
        return next((m for m in self.members if m.id == node_id), None)

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members if m.role == "voter")

    @property
    def learners(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members if m.role == "learner")

    def as_json(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "pending": self.pending,
            "initial_members": list(self.initial_members),
            "members": [m.as_json() for m in self.members],
        }


def parse_membership(reply: Reply) -> MembershipInfo:
    """``PAXOS.MEMBER LIST``'s reply; ``ClientProtocolError`` if it is not one."""
    problem = ClientProtocolError(f"PAXOS.MEMBER LIST answered {reply!r}")
    if not isinstance(reply, list) or len(reply) != 4:
        raise problem
    epoch, pending, initial, rows = reply
    if not (
        isinstance(epoch, int)
        and isinstance(pending, bytes)
        and isinstance(initial, bytes)
        and isinstance(rows, list)
    ):
        raise problem
    members = [_member(row, problem) for row in rows]
    try:
        ids = tuple(int(part) for part in initial.decode().split(",") if part)
    except ValueError:
        raise problem from None
    return MembershipInfo(epoch, pending.decode(), ids, tuple(members))


def _member(row: Reply, problem: ClientProtocolError) -> MemberInfo:
    if not isinstance(row, list) or len(row) != 7:
        raise problem
    node_id, role, peer, client, caught_up, lag, leader = row
    if not (
        isinstance(node_id, int)
        and isinstance(lag, int)
        and isinstance(leader, int)
        and isinstance(role, bytes)
        and isinstance(peer, bytes)
        and isinstance(client, bytes)
        and isinstance(caught_up, bytes)
    ):
        raise problem
    return MemberInfo(
        node_id,
        role.decode(errors="replace"),
        peer.decode(errors="replace"),
        client.decode(errors="replace"),
        {b"yes": True, b"no": False}.get(caught_up),
        None if lag < 0 else lag,
        bool(leader),
    )


def change_error(error: CommandError) -> CommandError:
    """A ``MembershipRefusedError`` for a refusal, else ``error`` itself."""
    reply: ErrorReply = error.reply
    match = _REFUSED.fullmatch(reply.message) if reply.kind == "ERR" else None
    if match is None:
        return error
    return MembershipRefusedError(reply, match.group(1), match.group(2))
