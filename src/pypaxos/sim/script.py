"""A tiny language for driving single-decree actors by hand, one step at a time.

Golden interaction tests (tests/interaction/*.txt) and the demo are written in it.  Each command
line starts with ``> ``; everything the command causes is printed below it.  Commands:

    propose P1 x        proposer P1 starts proposing value x
    deliver P1 A2       deliver the oldest pending message from P1 to A2
    deliver A2          deliver every pending message addressed to A2, oldest first
    deliver all         deliver pending messages, oldest first, until none is left
    drop P1 A2          lose the oldest pending message from P1 to A2
    dup P1 A2           duplicate the oldest pending message from P1 to A2
    timer P1 phase      fire P1's timer named "phase"
    crash A1            A1 loses all volatile state; messages delivered while down are lost
    restart A1          A1 comes back with exactly what it had synced to disk
    pending             list the messages in flight
    state               show every actor's state

Actors are named as in ``SynodConfig.name``: A1.. acceptors, P1.. proposers, L1.. learners.  The
script is a shell like the simulator: it honours the durability contract by applying every
``Persist`` in an effect list before queueing its sends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.effects import CancelTimer, Decide, Effect, Persist, Send, SetTimer
from pypaxos.core.learner import Learner
from pypaxos.core.messages import Accept, Accepted, Decided, Message, Nack, Promise
from pypaxos.core.proposer import Proposer
from pypaxos.core.synod import SynodActor, SynodConfig


class ScriptError(ValueError):
    """A script line that cannot be carried out (unknown actor, no such message...)."""


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
    in_flight: list[tuple[int, int, Message]] = field(default_factory=list)
    crashed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.by_name = {self.config.name(i): i for i in self.config.all_ids}
        for node_id in self.config.all_ids:
            self.actors[node_id] = self.config.build(node_id, None, self.rng)

    def run(self, line: str) -> list[str]:
        words = line.split()
        if not words:
            return []
        handler = getattr(self, f"_cmd_{words[0].replace('-', '_')}", None)
        if handler is None:
            raise ScriptError(f"unknown command {words[0]!r}")
        out: list[str] = handler(*words[1:])
        return out

    def _id(self, name: str) -> int:
        try:
            return self.by_name[name]
        except KeyError:
            raise ScriptError(f"no actor named {name!r}") from None

    def _name(self, node_id: int) -> str:
        return self.config.name(node_id)

    def _apply(self, node_id: int, effects: list[Effect]) -> list[str]:
        """Carry out effects: persists first (the durability contract), then the rest."""
        out: list[str] = []
        me = self._name(node_id)
        for effect in effects:
            if isinstance(effect, Persist):
                if effect.sync:
                    self.durable[node_id] = effect.state
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

    def _find(self, sender: str, to: str) -> int:
        s, t = self._id(sender), self._id(to)
        for i, (frm, dst, _) in enumerate(self.in_flight):
            if frm == s and dst == t:
                return i
        raise ScriptError(f"no message in flight from {sender} to {to}")

    def _cmd_propose(self, name: str, value: str) -> list[str]:
        actor = self.actors[self._id(name)]
        if not isinstance(actor, Proposer):
            raise ScriptError(f"{name} is not a proposer")
        return self._apply(actor.id, actor.propose(value))

    def _cmd_deliver(self, first: str, second: str | None = None) -> list[str]:
        if second is not None:
            return self._deliver_one(self._find(first, second))
        out: list[str] = []
        if first == "all":
            while self.in_flight:
                out.extend(self._deliver_one(0))
            return out
        target = self._id(first)
        while any(dst == target for _, dst, _ in self.in_flight):
            index = next(i for i, (_, dst, _) in enumerate(self.in_flight) if dst == target)
            out.extend(self._deliver_one(index))
        return out

    def _cmd_drop(self, sender: str, to: str) -> list[str]:
        _, _, msg = self.in_flight.pop(self._find(sender, to))
        return [f"  dropped {sender} -> {to}  {describe(msg)}"]

    def _cmd_dup(self, sender: str, to: str) -> list[str]:
        item = self.in_flight[self._find(sender, to)]
        self.in_flight.append(item)
        return [f"  duplicated {sender} -> {to}  {describe(item[2])}"]

    def _cmd_timer(self, name: str, timer: str) -> list[str]:
        node_id = self._id(name)
        return self._apply(node_id, self.actors[node_id].on_timer(timer))

    def _cmd_crash(self, name: str) -> list[str]:
        node_id = self._id(name)
        self.crashed.add(node_id)
        return [f"  {name} crashed"]

    def _cmd_restart(self, name: str) -> list[str]:
        node_id = self._id(name)
        self.crashed.discard(node_id)
        actor = self.config.build(node_id, self.durable.get(node_id), self.rng)
        self.actors[node_id] = actor
        restarted = f"  {name} restarted: {describe_actor(actor)}"
        return [restarted, *self._apply(node_id, actor.start())]

    def _cmd_pending(self) -> list[str]:
        return [
            f"  {self._name(s)} -> {self._name(t)}  {describe(m)}" for s, t, m in self.in_flight
        ] or ["  (nothing in flight)"]

    def _cmd_state(self) -> list[str]:
        return [
            f"  {self._name(i)}{' (down)' if i in self.crashed else ''}: "
            f"{describe_actor(self.actors[i])}"
            for i in self.config.all_ids
        ]


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
