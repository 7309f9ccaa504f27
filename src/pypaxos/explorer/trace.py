"""Open a model-checker or simulator counterexample in the explorer, at its failing step.

A counterexample is a list of typed ``sim.steps`` records (a simulated run's carry virtual
times and notes, which are left out); ``ExplorerWorld.command_for`` words each as the explorer
command that takes it, so no step is read back from printed text here.  A saved report is read
into records by ``steps.parse_step``, the renderer's inverse, and ``parse_check_output`` reads
what ``pypaxos check synod`` prints.  The explorer's network consumes a delivered message, so
an earlier delivery of a message delivered twice becomes ``deliver N keep``.

More: docs/testing.md, 'Opening a counterexample'.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.core.messages import Message
from pypaxos.core.synod import SynodConfig
from pypaxos.explorer.scenarios import Scenario
from pypaxos.explorer.world import ExplorerWorld
from pypaxos.sim import steps as steps_
from pypaxos.sim import synod
from pypaxos.sim.script import ScriptError

TRACE_SCENARIO = "counterexample"
SIMULATION_SCENARIO = "simulation"


class TraceError(ScriptError):
    """A counterexample that cannot be replayed in the explorer (or a report not understood)."""


# -- the replay shared by both sources ---------------------------------------------------------


def _replay(config: SynodConfig, records: Sequence[steps_.Step], notes: Sequence[str]) -> list[str]:
    """The explorer commands for ``records``, made by replaying them in a fresh world.

    A delivery that finds no copy left of a message delivered before marks that earlier
    delivery ``keep``, and the replay starts again; each round adds one mark, so it ends.
    """
    keep: set[int] = set()
    while True:
        world = ExplorerWorld(config)
        commands: list[str] = []
        last_delivery: dict[tuple[int, Message], int] = {}
        for number, step in enumerate(records):
            try:
                command = world.command_for(step, keep=number in keep)
            except ScriptError as error:
                earlier = None
                if isinstance(step, steps_.Deliver):
                    earlier = last_delivery.get((step.to, step.message))
                if earlier is not None and earlier not in keep:
                    keep.add(earlier)
                    break
                raise TraceError(f"step {number + 1} ({notes[number]}): {error}") from None
            if isinstance(step, steps_.Deliver):
                last_delivery[step.to, step.message] = number
            try:
                world.execute(command)
            except ScriptError as error:
                raise TraceError(f"step {number + 1} ({notes[number]}): {error}") from None
            commands.append(command)
        else:
            return commands


# -- the model checker ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counterexample:
    """What the explorer needs of a checker violation: the deployment, the problems, the steps."""

    config: SynodConfig
    problems: tuple[str, ...]
    steps: tuple[steps_.Step, ...]

    @property
    def actions(self) -> tuple[str, ...]:
        """Each step as the checker printed it (the explorer shows these as notes)."""
        return tuple(steps_.render_step(step, self.config) for step in self.steps)


def trace_commands(config: SynodConfig, steps: Sequence[steps_.Step]) -> list[str]:
    """One explorer command per checker step (raises ``TraceError`` if a step does not fit)."""
    notes = [steps_.render_step(step, config) for step in steps]
    return _replay(config, steps, notes)


def trace_scenario(counterexample: Counterexample) -> Scenario:
    """A scenario whose script is the counterexample, opening at its last (failing) step."""
    c = counterexample
    bugs = ", ".join(b.value for b in sorted(c.config.bugs)) or "no planted bug"
    steps = len(c.actions)
    return Scenario(
        name=TRACE_SCENARIO,
        title=f"Model checker counterexample ({bugs})",
        explanation=(
            f"pypaxos check synod found a shortest execution of {steps} steps that breaks "
            f"safety: {'; '.join(c.problems)}.  It opens at step {steps}, where the violation "
            "appears; each step is one input to one actor, as the checker printed it.  Step "
            "back and forward through it, or branch off with your own commands."
        ),
        config=c.config,
        script=tuple(trace_commands(c.config, c.steps)),
        notes=c.actions,
        open_at=steps,
    )


# -- the simulator ----------------------------------------------------------------------------


def simulation_scenario(result: synod.SynodResult) -> Scenario:
    """A scenario replaying a simulated run that broke safety, opening where it broke.

    The run's step records up to its violation become the script (its notes are left out:
    they are consequences, or bookkeeping); the page opens at the first step where the world's
    own checks find the violation (losses at send in the same simulator event follow it, one
    explorer step each).
    """
    violation = result.violation
    if violation is None or violation.kind != "safety":
        what = "no violation" if violation is None else "a liveness violation"
        raise TraceError(f"seed {result.seed} had {what}: there is no unsafe state to open")
    cut = result.violation_event
    if cut is None:
        raise TraceError(f"seed {result.seed} was run without a trace: rerun it with one")
    if result.heal_event is not None and result.heal_event < cut:
        raise TraceError(
            f"seed {result.seed} broke safety after the heal, which stops proposers: the "
            "explorer has no step for that"
        )
    config = result.settings.config()
    records: list[steps_.Step] = []
    lines: list[str] = []  # each step as the run printed it (the explorer shows these as notes)
    for event in result.events[:cut]:
        if not isinstance(event.entry, steps_.Note):
            records.append(event.entry)
            lines.append(steps_.render_timed(event, config))
    commands = _replay(config, records, lines)
    world = ExplorerWorld(config)
    opening = None
    for step, command in enumerate(commands, start=1):
        world.execute(command)
        if world.violations():
            opening = step
            break
    if opening is None:
        raise TraceError("the replay reaches no violation: the mapping is not exact")
    bugs = ", ".join(b.value for b in sorted(config.bugs)) or "no planted bug"
    return Scenario(
        name=SIMULATION_SCENARIO,
        title=f"Simulator seed {result.seed} ({bugs})",
        explanation=(
            f"The simulated run of seed {result.seed} broke safety at t={violation.time}: "
            f"{violation.message}.  Its steps are replayed here, one explorer step each "
            f"(timers fire when the run fired them; losses are drops), and the page opens at "
            f"step {opening}, where the violation appears.  Replay it in full with: "
            f"{result.settings.replay_command(result.seed)}"
        ),
        config=config,
        script=tuple(commands),
        notes=tuple(lines),
        open_at=opening,
    )


# -- reading a saved ``pypaxos check synod`` report ------------------------------------------

_STEP_LINE = re.compile(r"\s*\d+\. (?P<action>.+?)(?:  => .*)?")


def parse_check_output(text: str) -> Counterexample:
    """The counterexample in a ``pypaxos check synod`` report (its first line names the run)."""
    lines = text.splitlines()
    header = next((line for line in lines if line.startswith("# pypaxos check synod")), None)
    if header is None:
        raise TraceError("not a report of 'pypaxos check synod': no '# pypaxos check synod' line")
    config = _config_from_header(header)
    start = next((i for i, line in enumerate(lines) if line.startswith("VIOLATION: ")), None)
    if start is None:
        raise TraceError("the report shows no violation, so there is no trace to open")
    problems = tuple(lines[start].removeprefix("VIOLATION: ").split("; "))
    if start + 1 >= len(lines) or not lines[start + 1].startswith("shortest trace"):
        raise TraceError("no 'shortest trace' after the VIOLATION line")
    steps: list[steps_.Step] = []
    for line in lines[start + 2 :]:
        match = _STEP_LINE.fullmatch(line)
        if match is None:
            break
        try:
            steps.append(steps_.parse_step(match["action"].rstrip(), config))
        except steps_.StepParseError as error:
            raise TraceError(f"step {len(steps) + 1}: {error}") from None
    if not steps:
        raise TraceError("the report's trace has no steps")
    return Counterexample(config, problems, tuple(steps))


def _config_from_header(header: str) -> SynodConfig:
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    # Only the deployment matters to a replay; the search bounds are left to the checker.
    parser.add_argument("--proposers", type=int, default=2)
    parser.add_argument("--acceptors", type=int, default=3)
    parser.add_argument("--learners", type=int, default=1)
    parser.add_argument("--bug", action="append", default=[])
    try:
        args, _ = parser.parse_known_args(shlex.split(header.removeprefix("#"))[3:])
        bugs = parse_bugs(args.bug, SynodBug)
        return SynodConfig(args.proposers, args.acceptors, args.learners, bugs)
    except (argparse.ArgumentError, ValueError) as error:
        raise TraceError(f"cannot read the report's first line {header!r}: {error}") from None
