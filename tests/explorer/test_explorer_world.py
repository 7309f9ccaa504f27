"""ExplorerWorld: the script Interaction plus indices, partitions, timers and a ghost record."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypaxos.core.bugs import SynodBug
from pypaxos.core.effects import Decide
from pypaxos.core.messages import Prepare
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import Ballot
from pypaxos.explorer.world import ExplorerWorld, build_world
from pypaxos.sim.script import ScriptError
from pypaxos.sim.steps import Crash, Deliver, Drop, Flush, Propose, Reboot, Restart, Timer

CONFIG = SynodConfig(proposers=2, acceptors=3, learners=1)
GOLDEN = Path(__file__).resolve().parent.parent / "interaction"


def golden_steps(path: Path) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``> `` line of a golden script."""
    steps: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("> "):
            steps.append((line[2:], []))
        elif line.startswith("  ") and steps:
            steps[-1][1].append(line)
    return steps


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.txt")), ids=lambda p: p.stem)
def test_same_output_as_the_golden_scripts(path: Path) -> None:
    """The subclass changes no behaviour: each golden script's lines come out the same."""
    world = ExplorerWorld(CONFIG)
    for command, expected in golden_steps(path):
        if command in ("state", "pending"):
            continue
        try:
            lines = world.execute(command)
        except ScriptError:
            assert command == "deliver all" and expected == []  # we refuse a no-op
            continue
        assert [s for s in lines if " fires (tick " not in s] == expected, command


def test_deliver_drop_and_dup_by_index() -> None:
    world = build_world(CONFIG, ["propose P1 x"])
    assert [world._name(t) for _, t, _ in world.in_flight] == ["A1", "A2", "A3"]
    world.execute("dup 0")
    assert len(world.in_flight) == 4
    world.execute("drop #1")
    assert [world._name(t) for _, t, _ in world.in_flight] == ["A1", "A3", "A1"]
    world.execute("deliver 2")
    assert str(world.acceptor(1).promised) == "0.4"
    assert world.arrows[-1].outcome == "delivered"
    assert [a.outcome for a in world.arrows] == ["dropped", "delivered"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("deliver 9", "no message #9"),
        ("deliver x", "no actor named 'x'"),
        ("propose A1 v", "A1 is not a proposer"),
        ("fly P1", "cannot understand"),
        ("timer A1 phase", "A1 has no timer named 'phase'"),
        ("restart A1", "A1 is running"),
        ("heal", "no partition"),
        ("partition A1 A2 A3 P1 P2 L1", "proper subset"),
        ("deliver 7 keep", "no message #7"),
        ("flush A1", "A1 has no unsynced write"),
        ("reboot Z1", "no actor named 'Z1'"),
    ],
)
def test_bad_commands_are_refused_and_change_nothing(command: str, message: str) -> None:
    world = build_world(CONFIG, ["propose P1 x"])
    before = (world.step, world.row, list(world.in_flight), len(world.transcript))
    with pytest.raises(ScriptError, match=message):
        world.execute(command)
    assert (world.step, world.row, list(world.in_flight), len(world.transcript)) == before


def test_partition_loses_messages_across_it_on_delivery() -> None:
    world = build_world(CONFIG, ["propose P1 x", "partition A3"])
    assert [world.is_blocked(i) for i in range(3)] == [False, False, True]
    lines = world.execute("deliver 2")
    assert "partition" in lines[0] and "lost" in lines[0]
    assert str(world.acceptor(3).promised) == "⊥"
    assert world.arrows[-1].outcome == "lost"
    world.execute("heal")
    world.execute("deliver 0")
    assert str(world.acceptor(1).promised) == "0.4"


def test_step_delivers_oldest_then_fires_the_earliest_timer() -> None:
    world = build_world(CONFIG, ["propose P1 x", "drop 0", "drop 0", "drop 0"])
    assert world.armed_timers() == [(40, CONFIG.proposer_ids[0], "phase")]
    world.execute("step")  # nothing in flight: the phase timer fires, P1 backs off
    assert world.now_ticks == 40
    (due, _, name), *_ = world.armed_timers()
    assert name == "retry" and due > 40
    world.execute("step")  # the retry timer: a new round with a higher ballot
    assert len(world.in_flight) == 3


def test_crashed_actor_loses_timers_and_refuses_commands() -> None:
    world = build_world(CONFIG, ["propose P1 x", "crash P1"])
    assert world.armed_timers() == []
    with pytest.raises(ScriptError, match="P1 is down"):
        world.execute("timer P1 phase")
    with pytest.raises(ScriptError, match="P1 is down"):
        world.execute("propose P1 y")


def test_replay_is_deterministic() -> None:
    commands = ["propose P1 x", "propose P2 y", "step", "step", "dup 1", "step", "step"]
    commands += ["step"] * 30
    first, second = build_world(CONFIG, commands), build_world(CONFIG, commands)
    assert first.transcript == second.transcript
    assert first.arrows == second.arrows and first.acceptances == second.acceptances


def test_deliver_keep_leaves_a_copy_that_can_be_delivered_again() -> None:
    world = build_world(CONFIG, ["propose P1 x"])
    lines = world.execute("deliver 1 keep")
    assert lines[0] == "  duplicated P1 -> A2  Prepare 0.4"
    assert str(world.acceptor(2).promised) == "0.4"
    assert [world._name(t) for _, t, _ in world.in_flight] == ["A1", "A3", "A2", "P1"]
    world.execute("deliver 2")  # the copy: A2 promises again
    assert [world._name(t) for _, t, _ in world.in_flight][-2:] == ["P1", "P1"]


def test_reboot_is_a_crash_and_restart_in_one_step() -> None:
    world = build_world(CONFIG, ["propose P1 x", "deliver 0"])
    lines = world.execute("reboot A1")
    assert world.step == 3 and 1 not in world.crashed
    assert lines[:2] == ["  A1 crashed", "  A1 restarted: promised=0.4 accepted=⊥"]
    with pytest.raises(ScriptError, match="already down"):
        build_world(CONFIG, ["crash A1"]).execute("reboot A1")


def test_an_unsynced_write_is_lost_by_a_crash_unless_flushed_first() -> None:
    config = SynodConfig(
        proposers=1, acceptors=3, learners=1, bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST})
    )
    lost = build_world(config, ["propose P1 x", "deliver 0"])
    assert 1 in lost.unsynced
    lost.execute("reboot A1")
    assert str(lost.acceptor(1).promised) == "⊥" and 1 not in lost.unsynced
    kept = build_world(config, ["propose P1 x", "deliver 0", "flush A1", "reboot A1"])
    assert str(kept.acceptor(1).promised) == "0.4"
    with pytest.raises(ScriptError, match="no unsynced write"):
        kept.execute("flush A1")


def test_a_learner_that_changes_its_decision_is_recorded() -> None:
    world = build_world(CONFIG, [])
    learner = CONFIG.learner_ids[0]
    world._apply(learner, [Decide("x")])
    world._apply(learner, [Decide("x")])  # the same decision again is no change
    assert world.mind_changes == []
    world._apply(learner, [Decide("y")])
    assert world.mind_changes == ["learner L1 changed its decision from 'x' to 'y'"]


def test_step_records_are_taken_as_the_commands_that_name_them() -> None:
    world = ExplorerWorld(CONFIG)
    p1, a1, a2 = world.by_name["P1"], world.by_name["A1"], world.by_name["A2"]
    assert world.execute_step(Propose(p1, "x"))[-1] == "  P1 sets timer phase (40 ticks)"
    prepare = Prepare(p1, Ballot(0, p1))
    # A message is found in flight by equality: #1 is the Prepare to A2.
    assert world.command_for(Deliver(a2, prepare)) == "deliver 1"
    assert world.command_for(Deliver(a2, prepare), keep=True) == "deliver 1 keep"
    world.execute_step(Deliver(a2, prepare), keep=True)
    assert world.command_for(Drop(a2, prepare)) == "drop 2"  # the newest copy: a loss at send
    assert world.command_for(Reboot(a1)) == "reboot A1"
    assert world.command_for(Crash(a1)) == "crash A1"
    assert world.command_for(Restart(a1)) == "restart A1"
    assert world.command_for(Flush(a1)) == "flush A1"
    assert world.command_for(Timer(p1, "phase")) == "timer P1 phase"
    assert [entry.command for entry in world.transcript] == ["propose P1 x", "deliver 1 keep"]
    with pytest.raises(ScriptError, match="no such message in flight"):
        world.command_for(Deliver(a1, Prepare(p1, Ballot(7, p1))))
