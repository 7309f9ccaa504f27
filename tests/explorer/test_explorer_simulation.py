"""A simulated run that broke safety, replayed in the explorer, is the same run.

For one seed of each planted bug the simulator catches under its default faults (``pypaxos sim
synod``), the explorer's world replays the run's events: its own checks find the simulator's
violation at the step of the simulator's violating event (only the losses logged in that same
event follow it) and at no earlier step, and every actor and every disk ends as in the
simulator.
"""

from __future__ import annotations

import dataclasses

import pytest

from pypaxos.cli import explore as cmd
from pypaxos.cli.main import main
from pypaxos.cli.sim_synod import FAULTY
from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.explorer.session import Session
from pypaxos.explorer.trace import TraceError, simulation_scenario
from pypaxos.explorer.world import build_world
from pypaxos.sim.script import describe_actor
from pypaxos.sim.steps import Drop, parse_timed
from pypaxos.sim.synod import SynodResult, SynodWorld, run_synod

# (bug, the first seed of FAULTY settings whose run breaks safety)
UNSAFE_SEEDS = [
    ("accept-below-promise", 3),
    ("adopt-first-promise", 82),
    ("forget-promise-on-restart", 1830),
    ("ignore-promised-values", 0),
    ("learner-counts-duplicates", 7),
    ("learner-mixes-ballots", 86),
    ("promise-any-ballot", 0),
    ("reply-before-persist", 42),
    ("small-quorum", 1),
]


def simulated(bug: str, seed: int) -> tuple[SynodWorld, SynodResult]:
    bugs = parse_bugs([bug], SynodBug)
    world = SynodWorld(dataclasses.replace(FAULTY, bugs=bugs), seed, trace=True)
    result = world.run()
    assert world.violation is not None and world.violation.kind == "safety", (bug, seed)
    return world, result


@pytest.mark.parametrize(("bug", "seed"), UNSAFE_SEEDS, ids=[b for b, _ in UNSAFE_SEEDS])
def test_replay_breaks_safety_where_the_simulator_did(bug: str, seed: int) -> None:
    sim, result = simulated(bug, seed)
    assert sim.violation is not None
    scenario = simulation_scenario(result)
    assert scenario.open_at is not None
    session = Session(scenario)
    state = session.state()
    assert state["step"] == scenario.open_at
    assert "; ".join(state["violations"]) == sim.violation.message
    session.command("back")
    assert session.state()["violations"] == []
    # Only losses of messages sent in the violating event come after it.
    after = [
        parse_timed(note, scenario.config).entry for note in scenario.notes[scenario.open_at :]
    ]
    assert all(isinstance(step, Drop) for step in after)
    # The whole run replayed: every actor and every disk as the simulator left them.
    world = build_world(scenario.config, list(scenario.script))
    for node in scenario.config.all_ids:
        assert sim.is_up(node) == (node not in world.crashed)
        if sim.is_up(node):
            assert describe_actor(world.actors[node]) == describe_actor(sim.actor(node))
        assert world.durable.get(node) == sim.disk.read(node)
        assert (node in world.unsynced) == sim.disk.unsynced(node)


def test_a_run_without_a_safety_violation_cannot_be_opened() -> None:
    safe = run_synod(FAULTY, 0, trace=True)
    assert safe.violation is None
    with pytest.raises(TraceError, match="seed 0 had no violation"):
        simulation_scenario(safe)


def test_sim_explore_opens_the_first_unsafe_seed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Session, int, bool]] = []

    def serve(session: Session, port: int, open_browser: bool) -> int:
        served.append((session, port, open_browser))
        return 0

    monkeypatch.setattr(cmd, "serve_session", serve)
    argv = [
        "sim",
        "synod",
        "--no-swarm",
        "--bug",
        "accept-below-promise",
        "--seed",
        "3",
        "--explore",
    ]
    assert main([*argv, "--port", "0", "--no-browser"]) == 1
    ((session, port, open_browser),) = served
    assert (port, open_browser) == (0, False)
    state = session.state()
    assert state["scenario"]["name"] == "simulation" and "seed 3" in state["scenario"]["title"]
    assert state["violations"] == ["more than one value chosen: ['v1', 'v2']"]
    out = capsys.readouterr().out
    assert "seeds 3..3" in out and f"at step {state['step']}" in out


def test_sim_explore_without_a_violation_serves_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> int:
        raise AssertionError("the explorer must not be started")

    monkeypatch.setattr(cmd, "serve_session", refuse)
    assert main(["sim", "synod", "--seed", "0", "--explore"]) == 0
    assert "no safety violation, so nothing to explore" in capsys.readouterr().out
