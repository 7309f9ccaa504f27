"""Planted bugs: classic Paxos mistakes that can be switched on in the real actors.

They exist to show that the simulator and the model checker are not vacuous: each one, when
switched on, must be caught (tests/sim and tests/modelcheck prove it).  Correct code passes an
empty set.

Each layer has its own enum (``SynodBug`` here, ``multi.bugs.LogBug``, ``kv.bugs.KvBug``), all
built on ``PlantedBug``: a member's value is the name ``--bug NAME`` and ``bugs = [...]`` take,
and it carries a one-line description for ``--bug list``.  Protocol code tests membership of
a member (``SynodBug.SMALL_QUORUM in self.bugs``), so a misspelt bug is an attribute error that
mypy reports, and a bug of another layer is a non-overlapping container check, never a switch
that is silently off.  Names from a command line or a config file go through ``parse_bugs``
only, which rejects unknown names with ``UnknownBug``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Self, TypeVar, overload


class PlantedBug(enum.Enum):
    """A layer's planted bug: value is its command-line name, ``description`` one line on it."""

    _value_: str
    description: str

    def __new__(cls, name: str, description: str) -> Self:
        member = object.__new__(cls)
        member._value_ = name
        member.description = description
        return member

    @property
    def value(self) -> str:
        """The name ``--bug`` takes (typed: ``Enum.value`` would be ``Any``)."""
        return self._value_

    def __str__(self) -> str:
        return self._value_

    def __lt__(self, other: object) -> bool:
        """Order by name, so a set of bugs prints the same way every run."""
        if not isinstance(other, PlantedBug):
            return NotImplemented
        return self._value_ < other._value_


class SynodBug(PlantedBug):
    """Planted mistakes in the single-decree roles (``core``)."""

    ACCEPT_BELOW_PROMISE = (
        "accept-below-promise",
        "an acceptor accepts an Accept whose ballot is below its promise",
    )
    PROMISE_ANY_BALLOT = (
        "promise-any-ballot",
        "an acceptor promises a ballot lower than the one it already promised",
    )
    IGNORE_PROMISED_VALUES = (
        "ignore-promised-values",
        "a proposer ignores accepted values reported in promises",
    )
    ADOPT_FIRST_PROMISE = (
        "adopt-first-promise",
        "a proposer adopts the first reported value, not the highest-ballot one",
    )
    LEARNER_MIXES_BALLOTS = (
        "learner-mixes-ballots",
        "a learner counts Accepted for one value across different ballots",
    )
    LEARNER_COUNTS_DUPLICATES = (
        "learner-counts-duplicates",
        "a learner counts duplicate Accepted messages from one acceptor",
    )
    REPLY_BEFORE_PERSIST = (
        "reply-before-persist",
        "an acceptor replies before its new state is synced to disk",
    )
    SMALL_QUORUM = ("small-quorum", "quorums of floor(n/2) acceptors, which need not intersect")
    FORGET_PROMISE_ON_RESTART = (
        "forget-promise-on-restart",
        "a restarted acceptor forgets its promise (keeps only accepts)",
    )
    PROPOSER_FORGETS_BALLOT = (
        "proposer-forgets-ballot",
        "a proposer does not persist its ballot and reuses it on restart",
    )


class UnknownBug(ValueError):
    """A bug name that none of the families asked for knows."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown bug {name!r}; known: {', '.join(known)}")
        self.name = name
        self.known = known


B = TypeVar("B", bound=PlantedBug)
C = TypeVar("C", bound=PlantedBug)


@overload
def parse_bugs(names: Iterable[str], family: type[B], /) -> frozenset[B]: ...


@overload
def parse_bugs(names: Iterable[str], family: type[B], other: type[C], /) -> frozenset[B | C]: ...


def parse_bugs(names: Iterable[str], *families: type[PlantedBug]) -> frozenset[PlantedBug]:
    """The members of ``families`` named ``names``; ``UnknownBug`` on the first unknown name.

    The one way a name from a command line or a config file becomes a planted bug.
    """
    by_name = {bug.value: bug for family in families for bug in family}
    chosen = set()
    for name in names:
        if name not in by_name:
            raise UnknownBug(name, tuple(sorted(by_name)))
        chosen.add(by_name[name])
    return frozenset(chosen)


def require_family(
    bugs: Iterable[object], family: type[PlantedBug] | tuple[type[PlantedBug], ...]
) -> None:
    """Fail loudly (``TypeError``) if ``bugs`` holds anything but members of ``family``.

    A membership test would just miss a bare string or another layer's bug, leaving it
    silently off; configs call this when they are built.
    """
    strays = sorted(repr(b) for b in bugs if not isinstance(b, family))
    if strays:
        families = family if isinstance(family, tuple) else (family,)
        expected = " or ".join(f.__name__ for f in families)
        raise TypeError(f"planted bugs must be {expected} members, not {', '.join(strays)}")
