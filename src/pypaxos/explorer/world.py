"""The explorer's world: the script ``Interaction`` plus what a person at a screen needs.

``ExplorerWorld`` subclasses :class:`pypaxos.sim.script.Interaction`, so the same real actors,
durability contract and transcript lines are used; it adds messages addressed by their index in
flight (``deliver 3``, ``drop 3``, ``dup 3``, ``deliver 3 keep``), partitions, armed timers on
a virtual clock (``step``), and a ghost record for the page and the checkers.  ``execute_step``
takes a typed ``sim.steps`` record (a counterexample's, a simulated run's) as the command
``command_for`` words it.  Every command is deterministic, so a world rebuilt from the same
command list is identical: that is how the explorer steps back.

More: docs/testing.md, 'The explorer's commands'.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import assert_never

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.effects import CancelTimer, Decide, Effect, SetTimer
from pypaxos.core.learner import CATCH_UP_TIMER, Learner
from pypaxos.core.messages import Accepted, Message
from pypaxos.core.proposer import PHASE_TIMER, RETRY_TIMER, Proposer
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import Value
from pypaxos.explorer.svg import Arrow, Mark
from pypaxos.sim import steps
from pypaxos.sim.checkers import Acceptance, safety_violations
from pypaxos.sim.script import Interaction, ScriptError, describe

TIMER_NAMES: dict[str, tuple[str, ...]] = {
    "proposer": (PHASE_TIMER, RETRY_TIMER),
    "acceptor": (),
    "learner": (CATCH_UP_TIMER,),
}

COMMAND_HELP = (
    "propose P1 x | deliver N | deliver P1 A2 | deliver A2 | deliver all | drop N | dup N | "
    "step | timer P1 retry | crash A1 | restart A1 | partition A1 P2 | heal | deliver N keep | "
    "reboot A1 | flush A1"
)


@dataclass(frozen=True, slots=True)
class Flight:
    """Bookkeeping for one message in flight, kept in step with ``in_flight``."""

    uid: int
    sent_step: int
    sent_row: int


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    step: int
    command: str
    lines: tuple[str, ...]


@dataclass
class ExplorerWorld(Interaction):
    """An ``Interaction`` with index-addressed messages, partitions, timers and a ghost record."""

    flights: list[Flight] = field(default_factory=list)
    timers: dict[int, dict[str, int]] = field(default_factory=dict)  # node -> name -> due tick
    cut_off: frozenset[int] = frozenset()
    now_ticks: int = 0
    step: int = 0
    # Diagram rows: one per step, plus one per extra delivery in a step (``deliver all``), so
    # that every arrow lands on a row of its own.  ``row_steps`` labels each step's first row.
    row: int = 0
    row_steps: dict[int, str] = field(default_factory=dict)
    _delivered_this_step: int = 0
    acceptances: set[Acceptance] = field(default_factory=set)
    proposed: list[Value] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    # Every learner's first decision, and the mind changes seen since (a safety violation the
    # state alone cannot show: the learner's field only holds its latest decision).
    first_decisions: dict[int, Value] = field(default_factory=dict)
    mind_changes: list[str] = field(default_factory=list)
    _next_uid: int = 0

    # -- entry point ------------------------------------------------------------------------

    def execute(self, line: str) -> list[str]:
        """Carry out one command as the next step; raise ``ScriptError`` if it cannot be done.

        A command is checked before it changes anything, so a refused one leaves the world as
        it was.
        """
        words = line.split()
        if not words:
            raise ScriptError("empty command")
        self.step += 1
        saved_row, self._delivered_this_step = self.row, 0
        self.row += 1
        try:
            lines = self._dispatch(words)
        except ScriptError:
            self.step, self.row = self.step - 1, saved_row
            raise
        self.row_steps[saved_row + 1] = str(self.step)
        assert len(self.flights) == len(self.in_flight), "flight bookkeeping out of step"
        self.transcript.append(TranscriptEntry(self.step, " ".join(words), tuple(lines)))
        return lines

    def run(self, line: str) -> list[str]:
        return self.execute(line)

    def execute_step(self, step: steps.Step, keep: bool = False) -> list[str]:
        """Take a typed step as the next step (``keep``: a delivery keeps a copy in flight)."""
        return self.execute(self.command_for(step, keep))

    def command_for(self, step: steps.Step, keep: bool = False) -> str:
        """The command that takes ``step`` in this world (``ScriptError`` if none can)."""
        name = self.config.name
        match step:
            case steps.Propose(node=node, value=value):
                return f"propose {name(node)} {value}"
            case steps.Deliver(to=to, message=msg):
                return f"deliver {self._flight_of(to, msg, newest=False)}" + (
                    " keep" if keep else ""
                )
            case steps.Drop(to=to, message=msg):
                return f"drop {self._flight_of(to, msg, newest=True)}"
            case steps.Reboot(node=node):
                return f"reboot {name(node)}"
            case steps.Crash(node=node):
                return f"crash {name(node)}"
            case steps.Restart(node=node):
                return f"restart {name(node)}"
            case steps.Flush(node=node):
                return f"flush {name(node)}"
            case steps.Timer(node=node, name=timer):
                return f"timer {name(node)} {timer}"
            case _:
                assert_never(step)

    def _flight_of(self, to: int, msg: Message, newest: bool) -> int:
        """The in-flight index of ``msg`` to ``to``: its oldest copy, or its newest."""
        found = [i for i, (_, dst, m) in enumerate(self.in_flight) if dst == to and m == msg]
        if not found:
            raise ScriptError("no such message in flight")
        return found[-1] if newest else found[0]

    def _dispatch(self, words: list[str]) -> list[str]:
        verb, args = words[0], words[1:]
        match verb, len(args):
            case "propose", 2:
                return self._propose(args[0], args[1])
            case "deliver", 2 if args[1] == "keep":
                return self._deliver_keep(self._select(args[:1]))
            case "deliver", 1 | 2:
                return self._deliver(args)
            case "drop", 1 | 2:
                return self._do_drop(self._select(args))
            case "dup", 1 | 2:
                return self._do_dup(self._select(args))
            case "step", 0:
                return self._step()
            case "timer", 1 | 2:
                return self._timer(args[0], args[1] if len(args) == 2 else None)
            case "crash", 1:
                return self._crash(args[0])
            case "restart", 1:
                return self._restart(args[0])
            case "reboot", 1:
                return self._reboot(args[0])
            case "flush", 1:
                return self._flush(args[0])
            case "partition", n if n >= 1:
                return self._partition(args)
            case "heal", 0:
                return self._heal()
            case _:
                raise ScriptError(
                    f"cannot understand {' '.join(words)!r}; commands: {COMMAND_HELP}"
                )

    # -- effects: record timers, flights, acceptances and decisions --------------------------

    def _apply(self, node_id: int, effects: list[Effect]) -> list[str]:
        before = len(self.in_flight)
        out = super()._apply(node_id, effects)
        for sender, _, msg in self.in_flight[before:]:
            self.flights.append(Flight(self._next_uid, self.step, self.row))
            self._next_uid += 1
            if isinstance(msg, Accepted) and self.config.role(sender) == "acceptor":
                self.acceptances.add((sender, msg.ballot, msg.value))
        armed = self.timers.setdefault(node_id, {})
        for effect in effects:
            match effect:
                case SetTimer(name=name, delay_ticks=delay):
                    armed[name] = self.now_ticks + delay
                case CancelTimer(name=name):
                    armed.pop(name, None)
                case Decide(value=value):
                    self._mark(node_id, f"decides {value}", "decide")
                    self._note_decision(node_id, value)
        return out

    def _note_decision(self, node_id: int, value: Value) -> None:
        first = self.first_decisions.setdefault(node_id, value)
        if value != first:
            # Worded as the model checker words it, so a replayed trace reads the same.
            self.mind_changes.append(
                f"learner {self._name(node_id)} changed its decision from {first!r} to {value!r}"
            )

    def _mark(self, node_id: int, label: str, kind: str) -> None:
        self.marks.append(Mark(self.row, self._name(node_id), label, kind))

    # -- messages ---------------------------------------------------------------------------

    def _select(self, args: list[str]) -> int:
        """The in-flight index a command names: ``3``, ``#3`` or ``P1 A2`` (oldest such)."""
        if len(args) == 2:
            return self._index_of(self._id(args[1]), self._oldest(args[0], args[1]))
        text = args[0].removeprefix("#")
        if not text.isdigit():
            raise ScriptError(f"expected a message index or two actor names, got {args[0]!r}")
        index = int(text)
        if index >= len(self.in_flight):
            have = len(self.in_flight)
            span = "nothing is in flight" if have == 0 else f"in flight: #0..#{have - 1}"
            raise ScriptError(f"no message #{index} ({span})")
        return index

    def _deliver(self, args: list[str]) -> list[str]:
        if len(args) == 2 or args[0].removeprefix("#").isdigit():
            return self._deliver_one(self._select(args))
        target = None if args[0] == "all" else self._id(args[0])

        def oldest() -> int | None:
            pending = enumerate(self.in_flight)
            return next((i for i, (_, dst, _) in pending if target in (None, dst)), None)

        index = oldest()
        if index is None:
            raise ScriptError(
                "nothing is in flight" if target is None else f"no message in flight to {args[0]}"
            )
        out: list[str] = []
        while index is not None:
            out.extend(self._deliver_one(index))
            index = oldest()
        return out

    def _deliver_one(self, index: int) -> list[str]:
        sender, to, msg = self.in_flight[index]
        flight = self.flights.pop(index)
        self._delivered_this_step += 1
        if self._delivered_this_step > 1:
            self.row += 1
        arrow = Arrow(
            flight.sent_row,
            self.row,
            self._name(sender),
            self._name(to),
            describe(msg),
            type(msg).__name__,
        )
        if (sender in self.cut_off) != (to in self.cut_off):
            self.in_flight.pop(index)
            self.arrows.append(_with_outcome(arrow, "lost"))
            return [f"  partition: {self._name(sender)} -> {self._name(to)} lost  {describe(msg)}"]
        self.arrows.append(_with_outcome(arrow, "lost" if to in self.crashed else "delivered"))
        return super()._deliver_one(index)

    def _deliver_keep(self, index: int) -> list[str]:
        return self._do_dup(index) + self._deliver_one(index)

    def _do_drop(self, index: int) -> list[str]:
        sender, to, msg = self.in_flight.pop(index)
        flight = self.flights.pop(index)
        names = self._name(sender), self._name(to)
        label = describe(msg)
        self.arrows.append(
            Arrow(flight.sent_row, self.row, *names, label, type(msg).__name__, "dropped")
        )
        return [f"  dropped {names[0]} -> {names[1]}  {label}"]

    def _do_dup(self, index: int) -> list[str]:
        item = self.in_flight[index]
        self.in_flight.append(item)
        original = self.flights[index]
        self.flights.append(Flight(self._next_uid, original.sent_step, original.sent_row))
        self._next_uid += 1
        return [f"  duplicated {self._name(item[0])} -> {self._name(item[1])}  {describe(item[2])}"]

    # -- time -------------------------------------------------------------------------------

    def armed_timers(self) -> list[tuple[int, int, str]]:
        """Armed timers of running actors as ``(due tick, node id, name)``, soonest first."""
        return sorted(
            (due, node, name)
            for node, armed in self.timers.items()
            if node not in self.crashed
            for name, due in armed.items()
        )

    def _step(self) -> list[str]:
        if self.in_flight:
            return self._deliver_one(0)
        armed = self.armed_timers()
        if not armed:
            raise ScriptError("nothing to do: no message in flight and no timer armed")
        _, node, name = armed[0]
        return self._timer(self._name(node), name)

    def _timer(self, actor: str, name: str | None) -> list[str]:
        node = self._id(actor)
        if node in self.crashed:
            raise ScriptError(f"{actor} is down; its timers do not fire")
        armed = self.timers.setdefault(node, {})
        if name is None:
            if not armed:
                raise ScriptError(f"{actor} has no timer armed")
            name = min(armed, key=lambda n: (armed[n], n))
        known = TIMER_NAMES[self.config.role(node)]
        if name not in known:
            choices = ", ".join(known) or "none"
            raise ScriptError(f"{actor} has no timer named {name!r} (its timers: {choices})")
        due = armed.pop(name, self.now_ticks)
        self.now_ticks = max(self.now_ticks, due)
        self._mark(node, f"timer {name}", "timer")
        lines = [f"  {actor} timer {name} fires (tick {self.now_ticks})"]
        return lines + self._apply(node, self.actors[node].on_timer(name))

    # -- actors -----------------------------------------------------------------------------

    def _propose(self, actor: str, value: str) -> list[str]:
        node = self._id(actor)
        if not isinstance(self.actors[node], Proposer):
            raise ScriptError(f"{actor} is not a proposer")
        if node in self.crashed:
            raise ScriptError(f"{actor} is down")
        self.proposed.append(value)
        self._mark(node, f"propose {value}", "propose")
        return self._do_propose(node, value)

    def _crash(self, actor: str) -> list[str]:
        node = self._id(actor)
        if node in self.crashed:
            raise ScriptError(f"{actor} is already down")
        self.timers.pop(node, None)
        self._mark(node, "crash", "crash")
        return self._do_crash(node)

    def _restart(self, actor: str) -> list[str]:
        node = self._id(actor)
        if node not in self.crashed:
            raise ScriptError(f"{actor} is running; crash it first")
        self._mark(node, "restart", "restart")
        return self._do_restart(node)

    def _reboot(self, actor: str) -> list[str]:
        return self._crash(actor) + self._restart(actor)

    def _flush(self, actor: str) -> list[str]:
        return self._do_flush(self._id(actor))

    def _partition(self, names: list[str]) -> list[str]:
        ids = frozenset(self._id(n) for n in names)
        if ids == frozenset(self.config.all_ids):
            raise ScriptError("cutting off every actor is no partition; name a proper subset")
        self.cut_off = ids
        side = " ".join(self._name(i) for i in sorted(ids))
        return [f"  partition: {side} cut off from the rest"]

    def _heal(self) -> list[str]:
        if not self.cut_off:
            raise ScriptError("there is no partition to heal")
        self.cut_off = frozenset()
        return ["  partition healed"]

    # -- views ------------------------------------------------------------------------------

    def decisions(self) -> dict[int, Value]:
        """Each learner that has decided, with its decision."""
        out: dict[int, Value] = {}
        for node in self.config.learner_ids:
            learner = self.actors[node]
            assert isinstance(learner, Learner)
            if learner.decided is not None:
                out[node] = learner.decided
        return out

    def violations(self) -> list[str]:
        """Every broken safety invariant, judged with the correct majority (empty: safe)."""
        names = {i: self.config.name(i) for i in self.config.all_ids}
        quorum = self.config.true_quorum()
        found = safety_violations(self.acceptances, quorum, self.proposed, self.decisions(), names)
        return found + self.mind_changes

    def is_blocked(self, index: int) -> bool:
        """Whether message ``index`` crosses the partition (so it will be lost on delivery)."""
        sender, to, _ = self.in_flight[index]
        return (sender in self.cut_off) != (to in self.cut_off)

    def acceptor(self, node: int) -> Acceptor:
        actor = self.actors[node]
        assert isinstance(actor, Acceptor)
        return actor


def _with_outcome(arrow: Arrow, outcome: str) -> Arrow:
    return dataclasses.replace(arrow, outcome=outcome)


def build_world(config: SynodConfig, commands: list[str]) -> ExplorerWorld:
    """A fresh world with ``commands`` applied in order (raises ``ScriptError`` on a bad one)."""
    world = ExplorerWorld(config)
    for line in commands:
        world.execute(line)
    return world
