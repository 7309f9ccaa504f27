"""Quorum systems: which sets of acceptors are enough for phase 1 and for phase 2.

Paxos needs only that every phase-1 quorum intersects every phase-2 quorum (Howard, Malkhi and
Spiegelman, "Flexible Paxos", 2016).  ``Majority`` is the classic choice; a flexible system can
replace it anywhere a ``QuorumSystem`` is taken.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol


class QuorumSystem(Protocol):
    @property
    def members(self) -> tuple[int, ...]: ...

    def is_phase1_quorum(self, ids: Collection[int]) -> bool: ...

    def is_phase2_quorum(self, ids: Collection[int]) -> bool: ...


class Majority:
    """Any strict majority of ``members`` (``threshold`` overrides the size, for planted bugs)."""

    __slots__ = ("_member_set", "members", "threshold")

    def __init__(self, members: Iterable[int], threshold: int | None = None) -> None:
        self.members = tuple(sorted(set(members)))
        if not self.members:
            raise ValueError("a quorum system needs at least one member")
        self._member_set = frozenset(self.members)
        self.threshold = len(self.members) // 2 + 1 if threshold is None else threshold

    def _count(self, ids: Collection[int]) -> int:
        return len(self._member_set.intersection(ids))

    def is_phase1_quorum(self, ids: Collection[int]) -> bool:
        return self._count(ids) >= self.threshold

    def is_phase2_quorum(self, ids: Collection[int]) -> bool:
        return self._count(ids) >= self.threshold


class FlexibleGrid:
    """Flexible Paxos with explicit sizes: ``q1 + q2 > n`` keeps every pair intersecting."""

    __slots__ = ("_member_set", "members", "phase1_size", "phase2_size")

    def __init__(self, members: Iterable[int], phase1_size: int, phase2_size: int) -> None:
        self.members = tuple(sorted(set(members)))
        self._member_set = frozenset(self.members)
        if phase1_size + phase2_size <= len(self.members):
            raise ValueError(
                f"phase1_size + phase2_size must exceed {len(self.members)} members "
                f"(got {phase1_size} + {phase2_size}) or quorums need not intersect"
            )
        self.phase1_size = phase1_size
        self.phase2_size = phase2_size

    def is_phase1_quorum(self, ids: Collection[int]) -> bool:
        return len(self._member_set.intersection(ids)) >= self.phase1_size

    def is_phase2_quorum(self, ids: Collection[int]) -> bool:
        return len(self._member_set.intersection(ids)) >= self.phase2_size
