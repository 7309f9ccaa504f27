"""One typed record per step of a single-decree execution, with one renderer and one parser.

A step is one input to one actor: a proposal, a message delivered (or lost), a crash, a restart
(or both at once, as the model checker takes them), an unsynced write reaching the disk, a
timer firing.  The model checker's counterexamples are made of these records and the explorer
replays them, so no runner's printed words need reading back; ``parse_step`` is the inverse of
``render_step`` (a test round-trips random steps).  A simulated run is a list of ``Timed``
entries, steps or ``Note`` s (never replayed), printed by ``render_timed`` and read back by
``parse_timed``::

    t=   12  A1 <- Prepare 0.4 from P1
    t=   57  -- L1 decides v1

More (the text forms): docs/testing.md, 'Step records'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import assert_never

from pypaxos.core.messages import (
    Accept,
    Accepted,
    Decided,
    Message,
    Nack,
    Prepare,
    Promise,
    Query,
)
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import NULL_BALLOT, Ballot, Value


class StepParseError(ValueError):
    """A line that is not a step in the one text form (the message says which part)."""


@dataclass(frozen=True, slots=True)
class Propose:
    node: int
    value: Value


@dataclass(frozen=True, slots=True)
class Deliver:
    """``message`` (from ``message.sender``) arrives at ``to``."""

    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class Drop:
    """``message`` to ``to`` is lost: it will never arrive."""

    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class Reboot:
    """A crash and an immediate restart from the disk (the model checker's crash)."""

    node: int
    lost_unsynced: bool = False  # an unsynced write was pending and is gone


@dataclass(frozen=True, slots=True)
class Crash:
    node: int
    lost_unsynced: bool = False


@dataclass(frozen=True, slots=True)
class Restart:
    node: int


@dataclass(frozen=True, slots=True)
class Flush:
    """The disk writes out an unsynced write (only the bug "reply-before-persist" makes one)."""

    node: int


@dataclass(frozen=True, slots=True)
class Timer:
    node: int
    name: str


Step = Propose | Deliver | Drop | Reboot | Crash | Restart | Flush | Timer


@dataclass(frozen=True, slots=True)
class Note:
    """A trace line that is no step: a consequence of steps (a decision) or bookkeeping."""

    text: str


@dataclass(frozen=True, slots=True)
class Timed:
    """One entry of a simulated run's trace, at virtual time ``time`` (ticks)."""

    time: int
    entry: Step | Note


_LOST = " (its unsynced write is lost)"
_NOTE = "-- "


# -- rendering --------------------------------------------------------------------------------


def render_ballot(ballot: Ballot) -> str:
    return str(ballot)


def render_message(msg: Message) -> str:
    """A short readable form that names every field but the sender: ``Accept 0.4=v1``."""
    match msg:
        case Prepare():
            return f"Prepare {msg.ballot}"
        case Promise():
            if msg.accepted_value is None:
                return f"Promise {msg.ballot} (nothing accepted)"
            return f"Promise {msg.ballot} (accepted {msg.accepted_ballot}={msg.accepted_value})"
        case Accept():
            return f"Accept {msg.ballot}={msg.value}"
        case Accepted():
            return f"Accepted {msg.ballot}={msg.value}"
        case Nack():
            return f"Nack {msg.ballot} (promised {msg.promised})"
        case Query():
            return "Query"
        case Decided():
            return f"Decided {msg.value}"
        case _:
            assert_never(msg)


def render_step(step: Step, config: SynodConfig) -> str:
    """The step in the one text form (see the module docstring)."""
    name = config.name
    match step:
        case Propose(node=node, value=value):
            return f"{name(node)} proposes {value}"
        case Deliver(to=to, message=msg):
            return f"{name(to)} <- {render_message(msg)} from {name(msg.sender)}"
        case Drop(to=to, message=msg):
            return f"{name(to)} <-x {render_message(msg)} from {name(msg.sender)}"
        case Reboot(node=node, lost_unsynced=lost):
            return f"{name(node)} crashes and restarts from its disk" + (_LOST if lost else "")
        case Crash(node=node, lost_unsynced=lost):
            return f"{name(node)} crashes" + (_LOST if lost else "")
        case Restart(node=node):
            return f"{name(node)} restarts from its disk"
        case Flush(node=node):
            return f"{name(node)}'s disk flushes its unsynced write"
        case Timer(node=node, name=timer):
            return f"{name(node)}'s {timer} timer fires"
        case _:
            assert_never(step)


def render_timed(timed: Timed, config: SynodConfig) -> str:
    """One trace line: ``t=   12  A1 <- Prepare 0.4 from P1``, or ``t=   57  -- L1 decides v1``."""
    entry = timed.entry
    text = f"{_NOTE}{entry.text}" if isinstance(entry, Note) else render_step(entry, config)
    return f"t={timed.time:5d}  {text}"


# -- parsing ----------------------------------------------------------------------------------

_NAME = r"[A-Z]\d+"
_WORD = r"[^\s=()]+"  # a value or a timer name
_BALLOT = r"⊥|\d+\.\d+"
_STEPS = [
    (re.compile(rf"(?P<node>{_NAME}) proposes (?P<value>{_WORD})"), "propose"),
    (
        re.compile(rf"(?P<to>{_NAME}) (?P<arrow><-x?) (?P<message>.+) from (?P<sender>{_NAME})"),
        "message",
    ),
    (
        re.compile(
            rf"(?P<node>{_NAME}) crashes and restarts from its disk(?P<lost>{re.escape(_LOST)})?"
        ),
        "reboot",
    ),
    (re.compile(rf"(?P<node>{_NAME}) crashes(?P<lost>{re.escape(_LOST)})?"), "crash"),
    (re.compile(rf"(?P<node>{_NAME}) restarts from its disk"), "restart"),
    (re.compile(rf"(?P<node>{_NAME})'s disk flushes its unsynced write"), "flush"),
    (re.compile(rf"(?P<node>{_NAME})'s (?P<timer>{_WORD}) timer fires"), "timer"),
]
_MESSAGES = [
    (re.compile(rf"Prepare (?P<ballot>{_BALLOT})"), "prepare"),
    (re.compile(rf"Promise (?P<ballot>{_BALLOT}) \(nothing accepted\)"), "promise"),
    (
        re.compile(
            rf"Promise (?P<ballot>{_BALLOT}) "
            rf"\(accepted (?P<accepted>{_BALLOT})=(?P<value>{_WORD})\)"
        ),
        "promise",
    ),
    (re.compile(rf"Accept (?P<ballot>{_BALLOT})=(?P<value>{_WORD})"), "accept"),
    (re.compile(rf"Accepted (?P<ballot>{_BALLOT})=(?P<value>{_WORD})"), "accepted"),
    (re.compile(rf"Nack (?P<ballot>{_BALLOT}) \(promised (?P<promised>{_BALLOT})\)"), "nack"),
    (re.compile(r"Query"), "query"),
    (re.compile(rf"Decided (?P<value>{_WORD})"), "decided"),
]


def parse_ballot(text: str) -> Ballot:
    if text == "⊥":
        return NULL_BALLOT
    round_, _, node = text.partition(".")
    return Ballot(int(round_), int(node))


def parse_message(text: str, sender: int) -> Message:
    """The message ``render_message`` words as ``text``, sent by ``sender``."""
    for pattern, kind in _MESSAGES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        fields = m.groupdict()
        ballot = parse_ballot(fields["ballot"]) if fields.get("ballot") else NULL_BALLOT
        match kind:
            case "prepare":
                return Prepare(sender, ballot)
            case "promise":
                if fields.get("accepted") is None:
                    return Promise(sender, ballot)
                accepted = parse_ballot(fields["accepted"])
                return Promise(sender, ballot, accepted, fields["value"])
            case "accept":
                return Accept(sender, ballot, fields["value"])
            case "accepted":
                return Accepted(sender, ballot, fields["value"])
            case "nack":
                return Nack(sender, ballot, parse_ballot(fields["promised"]))
            case "query":
                return Query(sender)
            case _:
                return Decided(sender, fields["value"])
    raise StepParseError(f"not a message: {text!r}")


def parse_step(text: str, config: SynodConfig) -> Step:
    """The step ``render_step`` words as ``text`` (``StepParseError`` if it is none)."""
    ids = {config.name(node): node for node in config.all_ids}

    def node_id(name: str) -> int:
        if name not in ids:
            raise StepParseError(f"no actor {name} in this deployment")
        return ids[name]

    for pattern, kind in _STEPS:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        match kind:
            case "propose":
                return Propose(node_id(m["node"]), m["value"])
            case "message":
                msg = parse_message(m["message"], node_id(m["sender"]))
                to = node_id(m["to"])
                return Drop(to, msg) if m["arrow"] == "<-x" else Deliver(to, msg)
            case "reboot":
                return Reboot(node_id(m["node"]), m["lost"] is not None)
            case "crash":
                return Crash(node_id(m["node"]), m["lost"] is not None)
            case "restart":
                return Restart(node_id(m["node"]))
            case "flush":
                return Flush(node_id(m["node"]))
            case _:
                return Timer(node_id(m["node"]), m["timer"])
    raise StepParseError(f"not a step: {text!r}")


_TIMED = re.compile(r"t=\s*(?P<time>\d+)  (?P<entry>.*)")


def parse_timed(text: str, config: SynodConfig) -> Timed:
    """The entry ``render_timed`` words as ``text`` (``StepParseError`` if it is none)."""
    m = _TIMED.fullmatch(text)
    if m is None:
        raise StepParseError(f"not a trace line (no 't=' time first): {text!r}")
    entry = m["entry"]
    if entry.startswith(_NOTE):
        return Timed(int(m["time"]), Note(entry.removeprefix(_NOTE)))
    return Timed(int(m["time"]), parse_step(entry, config))
