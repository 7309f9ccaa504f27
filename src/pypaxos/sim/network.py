"""The simulated network: loss, duplication, delay (hence reordering) and partitions.

Every message is routed once, at the moment it is sent, with the simulator's one seeded
``random.Random``: the route says whether it is dropped, whether a second copy is made, and when
each copy arrives.  Each copy's delay is drawn on its own from ``[delay_min_ticks,
delay_max_ticks]``, so two messages (or two copies of one) can overtake each other, exactly the
"may be lost, duplicated, reordered" of ``core.effects.Send``.  No copy is ever delayed by more
than ``delay_max_ticks``; the heal-phase liveness bound relies on that.

A partition is a tuple of groups of actor ids; a message between two different groups is
dropped.  Actors listed in no group form one more group together, so "isolate A1" is just
``({1},)``.  Actors in ``everywhere`` (clients, in the KV world's ``cut leader`` fault) talk to
every group.  The network knows nothing about actors, messages or protocols: ids in, delays out.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

# Why a message did not get through, as printed in traces ("" means it was routed).
DELIVERED = ""
DROPPED = "dropped"
PARTITIONED = "partitioned"

# The group of every actor that no partition group lists.
_UNLISTED = -1


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Per-message fault probabilities and the delay range, in ticks."""

    drop_prob: float = 0.0
    dup_prob: float = 0.0
    delay_min_ticks: int = 1
    delay_max_ticks: int = 10

    def __post_init__(self) -> None:
        for name, prob in (("drop", self.drop_prob), ("dup", self.dup_prob)):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {prob}")
        if not 1 <= self.delay_min_ticks <= self.delay_max_ticks:
            raise ValueError(
                "need 1 <= delay_min_ticks <= delay_max_ticks, got "
                f"{self.delay_min_ticks}..{self.delay_max_ticks}"
            )

    def reliable(self) -> NetworkSettings:
        """The same network without loss (duplicates and reordering are harmless, they stay)."""
        return replace(self, drop_prob=0.0)


Partition = tuple[frozenset[int], ...]


class Network:
    """Routes messages between integer actor ids; owns no clock and no queue."""

    __slots__ = (
        "_delay_min",
        "_delay_span",
        "_group_of",
        "everywhere",
        "partition",
        "rng",
        "settings",
    )

    def __init__(self, rng: random.Random, settings: NetworkSettings | None = None) -> None:
        self.rng = rng
        self.partition: Partition | None = None
        self.everywhere: frozenset[int] = frozenset()  # actors every group talks to
        self._group_of: dict[int, int] = {}
        self.settings = NetworkSettings()
        self.configure(settings or NetworkSettings())

    def configure(self, settings: NetworkSettings) -> None:
        self.settings = settings
        self._delay_min = settings.delay_min_ticks
        self._delay_span = settings.delay_max_ticks - settings.delay_min_ticks + 1

    def split(
        self, groups: Sequence[Collection[int]] | None, everywhere: Collection[int] = ()
    ) -> None:
        """Partition the network into ``groups`` (``None`` or empty: everyone talks again);
        the actors in ``everywhere`` still talk to every group."""
        self.everywhere = frozenset(everywhere) if groups else frozenset()
        if not groups:
            self.partition = None
            self._group_of = {}
            return
        self.partition = tuple(frozenset(group) for group in groups)
        self._group_of = {}
        for index, group in enumerate(self.partition):
            for node in group:
                if node in self._group_of:
                    raise ValueError(f"actor {node} is in two partition groups")
                self._group_of[node] = index

    def can_talk(self, src: int, dst: int) -> bool:
        group_of = self._group_of
        if self.everywhere and (src in self.everywhere or dst in self.everywhere):
            return True
        return group_of.get(src, _UNLISTED) == group_of.get(dst, _UNLISTED)

    def route(self, src: int, dst: int) -> tuple[str, tuple[int, ...]]:
        """Decide the fate of one message: (why it was lost or ``DELIVERED``, copy delays).

        Random draws happen in a fixed order (drop, duplicate, delays) and are skipped when a
        probability is zero, so a run depends only on the seed and the settings.
        """
        if self._group_of and not self.can_talk(src, dst):
            return PARTITIONED, ()
        rng = self.rng
        settings = self.settings
        if settings.drop_prob and rng.random() < settings.drop_prob:
            return DROPPED, ()
        first = self._delay_min + int(rng.random() * self._delay_span)
        if settings.dup_prob and rng.random() < settings.dup_prob:
            return DELIVERED, (first, self._delay_min + int(rng.random() * self._delay_span))
        return DELIVERED, (first,)
