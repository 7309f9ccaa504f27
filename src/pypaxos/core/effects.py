"""Effects: what an actor asks its shell to do, returned in a list after every input.

The durability contract: every ``Persist`` in a list with ``sync=True`` is on stable storage
before any ``Send`` of the same list leaves the node.  A shell may carry out the list in order
(persist first, then send) or batch many lists into one fsync, but it may never let a send
overtake the persist it follows.

``Send`` and ``Persist`` are generic in what they carry, so each layer names its own: here
``Send[Message]`` and ``Persist[SynodState]``, in ``multi.effects`` the log's messages and
records.  A shell then reads ``effect.msg`` and ``effect.state`` with their real types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

from pypaxos.core.messages import Message
from pypaxos.core.types import Value

if TYPE_CHECKING:  # the states live with their roles, which import this module
    from pypaxos.core.acceptor import AcceptorState
    from pypaxos.core.learner import LearnerState
    from pypaxos.core.proposer import ProposerState

M = TypeVar("M", covariant=True)
S = TypeVar("S", covariant=True)


@dataclass(frozen=True, slots=True)
class Send(Generic[M]):
    """Deliver ``msg`` to the actor ``to`` (best effort: it may be lost, duplicated, reordered)."""

    to: int
    msg: M


@dataclass(frozen=True, slots=True)
class Persist(Generic[S]):
    """Write ``state`` (the actor's whole durable state, or one record to append) to storage.

    ``sync=False`` means the write may sit in a page cache and be lost by a crash; correct
    actors always sync before replying.
    """

    state: S
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


SynodState: TypeAlias = "AcceptorState | ProposerState | LearnerState"
"""What a single-decree role persists: its whole durable state, replaced on every write."""

Effect: TypeAlias = (
    "Send[Message] | Persist[SynodState] | SetTimer | CancelTimer | Decide"  # a string: as above
)
