"""Effects: what an actor asks its shell to do, returned in a list after every input.

The durability contract: every ``Persist`` in a list with ``sync=True`` is on stable storage
before any ``Send`` of the same list leaves the node.  A shell may carry out the list in order
(persist first, then send) or batch many lists into one fsync, but it may never let a send
overtake the persist it follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypaxos.core.types import Value


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``msg`` to the actor ``to`` (best effort: it may be lost, duplicated, reordered)."""

    to: int
    msg: object


@dataclass(frozen=True, slots=True)
class Persist:
    """Write ``state`` (the actor's whole durable state) to stable storage.

    ``sync=False`` means the write may sit in a page cache and be lost by a crash; correct
    actors always sync before replying.
    """

    state: object
    sync: bool = True


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire ``Timeout(name)`` after ``delay_ticks``; replaces a pending timer of that name."""

    name: str
    delay_ticks: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Decide:
    """A learner has learned that ``value`` is chosen."""

    value: Value


Effect = Send | Persist | SetTimer | CancelTimer | Decide
