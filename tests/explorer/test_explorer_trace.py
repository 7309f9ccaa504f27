"""A model-checker counterexample replayed in the explorer is the same execution, exactly.

``counterexamples/BUG.txt`` is what ``pypaxos check synod`` printed for each planted bug the
checker catches (``CAUGHT`` in test_model_checker.py, with the timing line left out; the first
line is the command that regenerates it).  Stored, because finding some of them takes minutes;
the cheapest is found again here and compared, so the stored form cannot drift unnoticed.
For every one, the explorer's world replays the steps and its own checks find the checker's
violation at the last step and at no earlier step, and every actor ends in the state the
checker reached.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.bugs import SynodBug
from pypaxos.core.proposer import Proposer
from pypaxos.core.synod import SynodConfig
from pypaxos.explorer.session import Session
from pypaxos.explorer.trace import (
    Counterexample,
    TraceError,
    parse_check_output,
    trace_commands,
    trace_scenario,
)
from pypaxos.explorer.world import ExplorerWorld, build_world
from pypaxos.modelcheck.search import explore, render_trace
from pypaxos.sim.steps import Propose, parse_step

# The model checker's cases are the ones these traces came from: one list, in its test file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "modelcheck"))
from test_model_checker import CAUGHT, options

STORED = Path(__file__).resolve().parent.parent / "modelcheck" / "counterexamples"
BUGS = [bug for bug, _, _ in CAUGHT]


def stored(bug: SynodBug) -> str:
    return (STORED / f"{bug.value}.txt").read_text(encoding="utf-8")


def checker_final_state(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("state reached:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


def described(world: ExplorerWorld) -> list[str]:
    """Each actor as the checker's ``describe_local`` words it (an independent rendering)."""
    out = []
    for node in world.config.all_ids:
        actor = world.actors[node]
        who = world.config.name(node)
        if isinstance(actor, Acceptor):
            s = actor.state
            accepted = "nothing" if s.accepted_value is None else f"{s.accepted_ballot}="
            accepted += s.accepted_value or ""
            text = f"{who}: promised {s.promised}, accepted {accepted}"
        elif isinstance(actor, Proposer):
            text = f"{who}: ballot {actor.ballot}, {actor.phase.value}"
            text += "" if actor.proposal is None else f", proposing {actor.proposal}"
        else:
            decided = world.decisions().get(node)
            text = f"{who}: decided {'nothing' if decided is None else decided}"
        out.append(text + (" (unsynced write pending)" if node in world.unsynced else ""))
    return out


def test_a_stored_counterexample_for_every_bug_the_checker_catches() -> None:
    assert sorted(p.stem for p in STORED.glob("*.txt")) == sorted(b.value for b in BUGS)
    for bug, crashes, shortest in CAUGHT:
        text = stored(bug)
        assert text.startswith("# pypaxos check synod") and f"--bug {bug.value}" in text
        assert f"--max-crashes {crashes}" in text.splitlines()[0]
        assert len(parse_check_output(text).actions) == shortest


@pytest.mark.parametrize("bug", BUGS, ids=str)
def test_replay_finds_the_violation_at_the_last_step_only(bug: SynodBug) -> None:
    text = stored(bug)
    counterexample = parse_check_output(text)
    assert counterexample.config.bugs == {bug}
    session = Session(trace_scenario(counterexample))
    steps = len(counterexample.actions)
    # It opens at the failing step, the violation showing, with every step listed.
    state = session.state()
    assert (state["step"], state["total"]) == (steps, steps)
    assert state["violations"] == list(counterexample.problems)
    assert state["notes"] == list(counterexample.actions)
    assert described(session.world) == checker_final_state(text)
    # Walking back: safe at every earlier step.
    for step in range(steps - 1, -1, -1):
        session.command("back")
        assert session.position == step
        assert session.state()["violations"] == [], f"violation already at step {step}"
    session.command("end")
    assert session.state()["violations"] == list(counterexample.problems)


# found in well under a second
@pytest.mark.parametrize("bug", [SynodBug.LEARNER_COUNTS_DUPLICATES], ids=str)
def test_the_checker_still_finds_the_stored_counterexample(bug: SynodBug) -> None:
    crashes = next(c for b, c, _ in CAUGHT if b == bug)
    violation = explore(options(bug, max_crashes=crashes)).violation
    assert violation is not None
    text = stored(bug)
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("shortest trace"))) + 1
    assert render_trace(violation.trace) == lines[start : start + len(violation.trace)]
    assert violation.problems == parse_check_output(text).problems


def test_a_repeated_delivery_keeps_a_copy_in_flight_until_its_last_use() -> None:
    counterexample = parse_check_output(stored(SynodBug.LEARNER_COUNTS_DUPLICATES))
    commands = trace_commands(counterexample.config, counterexample.steps)
    # Steps 7 and 8 deliver the same Accepted to L1: the first keeps a copy for the second.
    assert commands[6].endswith(" keep") and commands[7].startswith("deliver ")
    assert not commands[7].endswith(" keep")
    assert [c for c in commands if c.endswith(" keep")] == [commands[6]]
    world = build_world(counterexample.config, commands)
    assert not any(dst == world.by_name["L1"] for _, dst, _ in world.in_flight)


def test_crash_flush_and_timer_steps_map_to_explorer_commands() -> None:
    config = SynodConfig(
        proposers=1, acceptors=3, learners=1, bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST})
    )
    actions = [
        "P1 proposes v1",
        "A1 <- Prepare 0.4 from P1",
        "A1's disk flushes its unsynced write",
        "A1 crashes and restarts from its disk",
        "A2 <- Prepare 0.4 from P1",
        "A2 crashes and restarts from its disk (its unsynced write is lost)",
        "P1's phase timer fires",
    ]
    commands = trace_commands(config, [parse_step(action, config) for action in actions])
    assert commands == [
        "propose P1 v1",
        "deliver 0",
        "flush A1",
        "reboot A1",
        "deliver 0",
        "reboot A2",
        "timer P1 phase",
    ]
    world = build_world(config, commands)
    # The flushed promise survived A1's crash; A2's unsynced one did not, as in the checker.
    assert str(world.acceptor(1).state.promised) == "0.4"
    assert str(world.acceptor(2).state.promised) == "⊥"


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ("A1 <- Accept 0.4=v1 from P1", "step 2 (A1 <- Accept 0.4=v1 from P1): no such message"),
        ("A1 <- Prepare 0.4 from P2", "no such message"),
        ("A1's disk flushes its unsynced write", "A1 has no unsynced write"),
    ],
)
def test_a_step_that_does_not_fit_names_itself(action: str, fragment: str) -> None:
    config = SynodConfig(proposers=2, acceptors=3, learners=1)
    steps = [parse_step(line, config) for line in ["P1 proposes v1", action]]
    with pytest.raises(TraceError, match="step 2") as error:
        trace_commands(config, steps)
    assert fragment in str(error.value)


def test_a_report_step_that_is_no_step_is_refused_with_its_number() -> None:
    report = stored(SynodBug.LEARNER_COUNTS_DUPLICATES).replace(
        "  2. A1 <- Prepare 0.4 from P1", "  2. A1 teleports"
    )
    assert "A1 teleports" in report
    with pytest.raises(TraceError, match="step 2: not a step"):
        parse_check_output(report)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hello\n", "no '# pypaxos check synod' line"),
        (
            "# pypaxos check synod --proposers 1\nno violation; a decision is reachable\n",
            "shows no violation",
        ),
        ("# pypaxos check synod --bug nope\nVIOLATION: x\n", "unknown bug"),
    ],
)
def test_reports_that_hold_no_counterexample_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(TraceError, match=fragment):
        parse_check_output(text)


def test_the_scenario_tells_what_broke_and_resets_to_the_start() -> None:
    counterexample = parse_check_output(stored(SynodBug.ACCEPT_BELOW_PROMISE))
    scenario = trace_scenario(counterexample)
    assert "more than one value chosen: ['v1', 'v2']" in scenario.explanation
    assert "accept-below-promise" in scenario.title
    session = Session(scenario)
    session.command("reset")
    assert session.position == 0 and session.state()["next_command"] == "propose P1 v1"
    # Branching off the trace drops the checker's words for the steps discarded.
    session.command("propose P2 v2")
    assert session.state()["notes"] == []


def test_counterexample_without_a_planted_bug_is_titled_so() -> None:
    config = SynodConfig(proposers=1, acceptors=1, learners=0)
    scenario = trace_scenario(
        Counterexample(config, ("made up",), (Propose(config.proposer_ids[0], "v1"),))
    )
    assert "no planted bug" in scenario.title and scenario.script == ("propose P1 v1",)
