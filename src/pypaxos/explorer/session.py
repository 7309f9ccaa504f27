"""One person's exploration: a scenario, the commands applied so far, and a position in them.

The world is never edited backwards.  Stepping back rebuilds it from the first ``k`` commands
(the actors are deterministic, so the replay is exact); stepping forward re-applies the next
recorded command.  A new command at position ``k < len(commands)`` discards the recorded
future, as an editor's undo history does.  ``state()`` is everything the page shows, as JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.bugs import SynodBug
from pypaxos.core.learner import Learner
from pypaxos.core.proposer import Proposer
from pypaxos.core.synod import SynodConfig
from pypaxos.explorer.scenarios import SCENARIOS, Scenario
from pypaxos.explorer.svg import Arrow, kind_of, render_diagram
from pypaxos.explorer.world import TIMER_NAMES, build_world
from pypaxos.sim.checkers import chosen_values
from pypaxos.sim.script import ScriptError, describe, describe_actor

Json = dict[str, Any]  # what the browser gets: any JSON value under a key

# Commands that move in the history instead of changing the world.
NAVIGATION = ("back", "forward", "reset", "end", "goto")


class Session:
    """A command history over one deployment, with a cursor."""

    def __init__(self, scenario: Scenario, extra_bugs: frozenset[SynodBug] = frozenset()) -> None:
        self.load(scenario, extra_bugs)

    def load(self, scenario: Scenario, extra_bugs: frozenset[SynodBug] = frozenset()) -> None:
        """Start ``scenario`` afresh: setup applied, its script waiting ahead."""
        bugs = scenario.config.bugs | extra_bugs
        self.scenario = scenario
        self.extra_bugs = frozenset(extra_bugs)
        self.config: SynodConfig = dataclasses.replace(scenario.config, bugs=bugs)
        self.commands: list[str] = list(scenario.commands)
        # The scenario's words per step, for as long as the recorded history is the scenario's.
        self.notes: list[str] = list(scenario.notes[: len(self.commands)])
        self.start = len(scenario.setup)
        opening = self.start if scenario.open_at is None else scenario.open_at
        self.world = build_world(self.config, self.commands[:opening])

    @property
    def position(self) -> int:
        return self.world.step

    # -- moving -----------------------------------------------------------------------------

    def command(self, line: str) -> None:
        """Apply one command line: a world command or a navigation (back, forward, goto N...)."""
        words = line.split()
        if words and words[0] in NAVIGATION:
            self._navigate(words)
            return
        position = self.position
        try:
            self.world.execute(line)
        except ScriptError:
            self.world = build_world(self.config, self.commands[:position])
            raise
        del self.commands[position:]
        del self.notes[position:]
        self.commands.append(" ".join(words))

    def goto(self, step: int) -> None:
        if not 0 <= step <= len(self.commands):
            raise ScriptError(f"no step {step}; the history has steps 0..{len(self.commands)}")
        if step >= self.position:
            for line in self.commands[self.position : step]:
                self.world.execute(line)
        else:
            self.world = build_world(self.config, self.commands[:step])

    def _navigate(self, words: list[str]) -> None:
        match words:
            case ["back"]:
                if self.position == 0:
                    raise ScriptError("already at the beginning")
                self.goto(self.position - 1)
            case ["forward"]:
                if self.position == len(self.commands):
                    raise ScriptError("nothing ahead: no later step was recorded")
                self.goto(self.position + 1)
            case ["reset"]:
                self.goto(self.start)
            case ["end"]:
                self.goto(len(self.commands))
            case ["goto", step] if step.isdigit():
                self.goto(int(step))
            case _:
                raise ScriptError(f"cannot understand {' '.join(words)!r}")

    # -- the page's view --------------------------------------------------------------------

    def state(self) -> Json:
        world, config = self.world, self.config
        names = {i: config.name(i) for i in config.all_ids}
        quorum = config.true_quorum()
        decisions = world.decisions()
        chosen = sorted(chosen_values(world.acceptances, quorum))
        violations = world.violations()
        ahead = self.commands[self.position :]
        return {
            "scenario": {
                "name": self.scenario.name,
                "title": self.scenario.title,
                "explanation": self.scenario.explanation,
            },
            "config": {
                "proposers": config.proposers,
                "acceptors": config.acceptors,
                "learners": config.learners,
                "bugs": [b.value for b in sorted(config.bugs)],
            },
            "step": self.position,
            "total": len(self.commands),
            "setup_steps": self.start,
            "next_command": ahead[0] if ahead else None,
            "now_ticks": world.now_ticks,
            "actors": [self._actor(i) for i in self._column_order()],
            "in_flight": [self._flight(i) for i in range(len(world.in_flight))],
            "partition": [names[i] for i in sorted(world.cut_off)],
            "transcript": [
                {"step": e.step, "command": e.command, "lines": [s.strip() for s in e.lines]}
                for e in world.transcript
            ],
            "history": list(self.commands),
            "notes": list(self.notes),
            "chosen": chosen[0] if len(chosen) == 1 else None,
            "chosen_values": chosen,
            "decisions": {names[n]: v for n, v in sorted(decisions.items())},
            "violations": violations,
            "quiescent": not world.in_flight and not world.armed_timers(),
            "diagram_svg": self.diagram(),
        }

    def diagram(self) -> str:
        """The sequence diagram so far, with messages still in flight drawn faint."""
        world = self.world
        pending = [
            Arrow(
                flight.sent_row,
                world.row + 0.7,
                world.config.name(sender),
                world.config.name(to),
                describe(msg),
                type(msg).__name__,
                "pending",
            )
            for flight, (sender, to, msg) in zip(world.flights, world.in_flight, strict=True)
        ]
        names = [self.config.name(i) for i in self._column_order()]
        return render_diagram(
            names,
            [*world.arrows, *pending],
            world.marks,
            last_row=world.row + 1,
            row_labels=world.row_steps,
        )

    def _column_order(self) -> list[int]:
        """Proposers, acceptors, learners: the order of the page's columns."""
        c = self.config
        return [*c.proposer_ids, *c.acceptor_ids, *c.learner_ids]

    def _actor(self, node: int) -> Json:
        world = self.world
        actor = world.actors[node]
        role = self.config.role(node)
        armed = world.timers.get(node, {}) if node not in world.crashed else {}
        state: Json
        if isinstance(actor, Acceptor):
            s = actor.state
            state = {
                "promised": str(s.promised),
                "accepted_ballot": str(s.accepted_ballot),
                "accepted_value": s.accepted_value,
            }
        elif isinstance(actor, Proposer):
            state = {
                "phase": actor.phase.value,
                "ballot": str(actor.ballot),
                "value": actor.proposal,
                "own_value": actor.own_value,
                "promises": [self.config.name(a) for a in sorted(actor.promises)],
                "accepted_from": [self.config.name(a) for a in sorted(actor.accepted_from)],
                "chosen": actor.chosen,
            }
        else:
            assert isinstance(actor, Learner)
            state = {"decided": actor.decided}
        return {
            "name": self.config.name(node),
            "id": node,
            "role": role,
            "down": node in world.crashed,
            "cut_off": node in world.cut_off,
            "summary": describe_actor(actor),
            "state": state,
            "timer_names": list(TIMER_NAMES[role]),
            "timers": [{"name": n, "due": d} for n, d in sorted(armed.items())],
        }

    def _flight(self, index: int) -> Json:
        world = self.world
        sender, to, msg = world.in_flight[index]
        label = describe(msg)
        return {
            "index": index,
            "uid": world.flights[index].uid,
            "from": self.config.name(sender),
            "to": self.config.name(to),
            "kind": kind_of(Arrow(0, 0, "", "", label)),
            "label": label,
            "sent_step": world.flights[index].sent_step,
            "blocked": world.is_blocked(index),
            "to_down": to in world.crashed,
        }


def scenario_list(scenarios: Mapping[str, Scenario] = SCENARIOS) -> list[Json]:
    return [
        {
            "name": s.name,
            "title": s.title,
            "explanation": s.explanation,
            "bugs": [b.value for b in sorted(s.config.bugs)],
        }
        for s in scenarios.values()
    ]
