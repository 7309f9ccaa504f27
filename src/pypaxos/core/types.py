"""Ballots: the totally ordered proposal numbers of Paxos.

A ballot is ``(round, node_id)`` compared lexicographically, so two proposers never share one
(Paxos Made Simple, section 2.2: "different proposers choose their numbers from disjoint sets").
``NULL_BALLOT`` sorts below every real ballot and stands for "nothing promised or accepted",
so no code ever compares ``None`` with a ballot.
"""

from __future__ import annotations

import msgspec


class Ballot(msgspec.Struct, frozen=True, order=True, array_like=True):
    """A proposal number; real ballots have ``round >= 0`` and ``node_id >= 0``."""

    round: int
    node_id: int

    def next_for(self, node_id: int) -> Ballot:
        """The smallest ballot owned by ``node_id`` that is higher than this one."""
        if self.is_null():
            return Ballot(0, node_id)
        candidate = Ballot(self.round, node_id)
        if candidate > self:
            return candidate
        return Ballot(self.round + 1, node_id)

    def is_null(self) -> bool:
        return self.round < 0

    def __str__(self) -> str:
        return "⊥" if self.is_null() else f"{self.round}.{self.node_id}"


NULL_BALLOT = Ballot(-1, -1)

# A proposed value.  Single-decree Paxos treats values as opaque; strings keep traces readable
# and states hashable for the model checker.
Value = str
