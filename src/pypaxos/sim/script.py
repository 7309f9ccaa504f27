"""A tiny language for driving single-decree actors by hand, one step at a time.

Golden interaction tests (tests/interaction/*.txt) and the demo are written in it: a command
line starts with ``> ``, and everything it causes is printed below it (as etcd-raft's
interaction tests do).  ``Interaction.parse`` reads a line into a typed record, the same
``sim.steps`` record every runner uses for an input to an actor (a message is named by what it
is, not where it sits), and ``execute_command`` carries it out, so a checker's or simulator's
steps run here as a script's do.  Like the simulator, it applies every ``Persist`` of an effect
list before queueing its sends; an unsynced write waits for ``flush`` and a crash loses it.

More (the commands): docs/testing.md, 'The single-decree script language'.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import assert_never

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.effects import CancelTimer, Decide, Effect, Persist, Send, SetTimer
from pypaxos.core.learner import Learner
from pypaxos.core.messages import Accept, Accepted, Decided, Message, Nack, Promise
from pypaxos.core.proposer import Proposer
from pypaxos.core.synod import SynodActor, SynodConfig
from pypaxos.sim.steps import (
    Crash,
    Deliver,
    Drop,
    Flush,
    Propose,
    Reboot,
    Restart,
    Step,
    Timer,
)


class ScriptError(ValueError):
    """A script line that cannot be carried out (unknown actor, no such message...)."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The network duplicates ``message`` to ``to``: one more copy of it is in flight."""

    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class DeliverEach:
    """Deliver the oldest message to ``to`` (``None``: to anyone) until none is left."""

    to: int | None


@dataclass(frozen=True, slots=True)
class Pending:
    """List the messages in flight."""


@dataclass(frozen=True, slots=True)
class ShowState:
    """Show every actor's state."""


Command = Step | Duplicate | DeliverEach | Pending | ShowState

USAGE = {
    "propose": "propose P1 x",
    "deliver": "deliver P1 A2 | deliver A2 | deliver all",
    "drop": "drop P1 A2",
    "dup": "dup P1 A2",
    "timer": "timer P1 phase",
    "crash": "crash A1",
    "restart": "restart A1",
    "reboot": "reboot A1",
    "flush": "flush A1",
    "pending": "pending",
    "state": "state",
}


def describe(msg: Message) -> str:
    """One message as a trace shows it, e.g. ``Promise 1.4 accepted=0.5:x``."""
    kind = type(msg).__name__
    ballot = getattr(msg, "ballot", None)
    parts = [kind] if ballot is None else [kind, str(ballot)]
    match msg:
        case Promise():
            accepted, value = msg.accepted_ballot, msg.accepted_value
            parts.append("accepted=⊥" if value is None else f"accepted={accepted}:{value}")
        case Accept() | Accepted() | Decided():
            parts.append(str(msg.value))
        case Nack():
            parts.append(f"promised={msg.promised}")
    return " ".join(parts)


def describe_actor(actor: SynodActor) -> str:
    if isinstance(actor, Acceptor):
        s = actor.state
        accepted = "⊥" if s.accepted_value is None else f"{s.accepted_ballot}:{s.accepted_value}"
        return f"promised={s.promised} accepted={accepted}"
    if isinstance(actor, Proposer):
        return f"phase={actor.phase.value} ballot={actor.ballot} value={actor.proposal}"
    assert isinstance(actor, Learner)
    return f"decided={actor.decided}"


@dataclass
class Interaction:
    """The world a script drives: actors, their disks and the messages in flight."""

    config: SynodConfig
    seed: int = 0
    actors: dict[int, SynodActor] = field(default_factory=dict)
    durable: dict[int, object] = field(default_factory=dict)
    # An unsynced write per actor, which a crash loses and ``flush`` makes durable.
    unsynced: dict[int, object] = field(default_factory=dict)
    in_flight: list[tuple[int, int, Message]] = field(default_factory=list)
    crashed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.by_name = {self.config.name(i): i for i in self.config.all_ids}
        for node_id in self.config.all_ids:
            self.actors[node_id] = self.config.build(node_id, None, self.rng)

    def run(self, line: str) -> list[str]:
        """Carry out one script line (nothing for a blank one)."""
        return self.execute_command(self.parse(line)) if line.split() else []

    # -- reading a line ----------------------------------------------------------------------

    def parse(self, line: str) -> Command:
        """The record ``line`` stands for, read against the messages now in flight."""
        match line.split():
            case ["propose", actor, value]:
                return Propose(self._id(actor), value)
            case ["deliver", "all"]:
                return DeliverEach(None)
            case ["deliver", actor]:
                return DeliverEach(self._id(actor))
            case ["deliver", sender, to]:
                return Deliver(self._id(to), self._oldest(sender, to))
            case ["drop", sender, to]:
                return Drop(self._id(to), self._oldest(sender, to))
            case ["dup", sender, to]:
                return Duplicate(self._id(to), self._oldest(sender, to))
            case ["timer", actor, timer]:
                return Timer(self._id(actor), timer)
            case ["crash", actor]:
                return Crash(self._id(actor))
            case ["restart", actor]:
                return Restart(self._id(actor))
            case ["reboot", actor]:
                return Reboot(self._id(actor))
            case ["flush", actor]:
                return Flush(self._id(actor))
            case ["pending"]:
                return Pending()
            case ["state"]:
                return ShowState()
            case [verb, *_] if verb in USAGE:
                raise ScriptError(f"cannot understand {line.strip()!r}; usage: {USAGE[verb]}")
            case [verb, *_]:
                raise ScriptError(f"unknown command {verb!r}; commands: {', '.join(USAGE)}")
            case _:
                raise ScriptError("empty command")

    def _id(self, name: str) -> int:
        try:
            return self.by_name[name]
        except KeyError:
            raise ScriptError(f"no actor named {name!r}") from None

    def _name(self, node_id: int) -> str:
        return self.config.name(node_id)

    def _oldest(self, sender: str, to: str) -> Message:
        """The oldest message in flight from ``sender`` to ``to``."""
        s, t = self._id(sender), self._id(to)
        for frm, dst, msg in self.in_flight:
            if frm == s and dst == t:
                return msg
        raise ScriptError(f"no message in flight from {sender} to {to}")

    # -- carrying a record out ---------------------------------------------------------------

    def execute_command(self, command: Command) -> list[str]:
        """Carry out one record; what it caused, one indented line each."""
        match command:
            case Propose(node=node, value=value):
                return self._do_propose(node, value)
            case Deliver(to=to, message=msg):
                return self._deliver_one(self._index_of(to, msg))
            case Drop(to=to, message=msg):
                return self._do_drop(self._index_of(to, msg))
            case Duplicate(to=to, message=msg):
                return self._do_dup(self._index_of(to, msg))
            case DeliverEach(to=to):
                return self._deliver_each(to)
            case Timer(node=node, name=timer):
                return self._apply(node, self.actors[node].on_timer(timer))
            case Crash(node=node):
                return self._do_crash(node)
            case Restart(node=node):
                return self._do_restart(node)
            case Reboot(node=node):
                return self._do_crash(node) + self._do_restart(node)
            case Flush(node=node):
                return self._do_flush(node)
            case Pending():
                return [
                    f"  {self._name(s)} -> {self._name(t)}  {describe(m)}"
                    for s, t, m in self.in_flight
                ] or ["  (nothing in flight)"]
            case ShowState():
                return [
                    f"  {self._name(i)}{' (down)' if i in self.crashed else ''}: "
                    f"{describe_actor(self.actors[i])}"
                    for i in self.config.all_ids
                ]
            case _:
                assert_never(command)

    def _index_of(self, to: int, msg: Message) -> int:
        """Where the oldest copy of ``msg`` to ``to`` is in flight."""
        for i, (_, dst, m) in enumerate(self.in_flight):
            if dst == to and m == msg:
                return i
        raise ScriptError(f"no message in flight to {self._name(to)}: {describe(msg)}")

    def _apply(self, node_id: int, effects: list[Effect]) -> list[str]:
        """Carry out effects: persists first (the durability contract), then the rest."""
        out: list[str] = []
        me = self._name(node_id)
        for effect in effects:
            if isinstance(effect, Persist):
                if effect.sync:
                    self.durable[node_id] = effect.state
                    self.unsynced.pop(node_id, None)
                else:
                    self.unsynced[node_id] = effect.state
                out.append(f"  {me} persists{'' if effect.sync else ' (unsynced)'}")
        for effect in effects:
            match effect:
                case Send(to=to, msg=msg):
                    self.in_flight.append((node_id, to, msg))
                    out.append(f"  {me} -> {self._name(to)}  {describe(msg)}")
                case SetTimer(name=name, delay_ticks=delay):
                    out.append(f"  {me} sets timer {name} ({delay} ticks)")
                case CancelTimer():
                    pass
                case Decide(value=value):
                    out.append(f"  {me} decides {value}")
        return out

    def _deliver_one(self, index: int) -> list[str]:
        _, to, msg = self.in_flight.pop(index)
        if to in self.crashed:
            return [f"  {self._name(to)} is down: message lost"]
        return self._apply(to, self.actors[to].handle(msg))

    def _deliver_each(self, target: int | None) -> list[str]:
        out: list[str] = []
        while True:
            pending = enumerate(self.in_flight)
            index = next((i for i, (_, dst, _) in pending if target in (None, dst)), None)
            if index is None:
                return out
            out.extend(self._deliver_one(index))

    def _do_drop(self, index: int) -> list[str]:
        sender, to, msg = self.in_flight.pop(index)
        return [f"  dropped {self._name(sender)} -> {self._name(to)}  {describe(msg)}"]

    def _do_dup(self, index: int) -> list[str]:
        sender, to, msg = item = self.in_flight[index]
        self.in_flight.append(item)
        return [f"  duplicated {self._name(sender)} -> {self._name(to)}  {describe(msg)}"]

    def _do_propose(self, node: int, value: str) -> list[str]:
        actor = self.actors[node]
        if not isinstance(actor, Proposer):
            raise ScriptError(f"{self._name(node)} is not a proposer")
        return self._apply(node, actor.propose(value))

    def _do_crash(self, node: int) -> list[str]:
        self.crashed.add(node)
        self.unsynced.pop(node, None)  # it never reached the disk
        return [f"  {self._name(node)} crashed"]

    def _do_restart(self, node: int) -> list[str]:
        self.crashed.discard(node)
        actor = self.config.build(node, self.durable.get(node), self.rng)
        self.actors[node] = actor
        restarted = f"  {self._name(node)} restarted: {describe_actor(actor)}"
        return [restarted, *self._apply(node, actor.start())]

    def _do_flush(self, node: int) -> list[str]:
        if node not in self.unsynced:
            raise ScriptError(f"{self._name(node)} has no unsynced write to flush")
        self.durable[node] = self.unsynced.pop(node)
        return [f"  {self._name(node)}'s disk flushes its unsynced write"]


def run_script(text: str, config: SynodConfig | None = None) -> str:
    """Run the ``> `` lines of ``text`` and return the transcript (commands and their output)."""
    world = Interaction(config or SynodConfig(proposers=2, acceptors=3, learners=1))
    out: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("#") or (raw.strip() == "" and not out):
            out.append(raw)
        elif raw.startswith("> "):
            out.append(raw)
            out.extend(world.run(raw[2:]))
        elif raw.strip() == "":
            out.append(raw)
    return "\n".join(out).rstrip("\n") + "\n"
